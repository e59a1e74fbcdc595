import { spawn, type ChildProcess } from 'node:child_process';
import { get } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import type { DevServerState } from '@berth/domain';
import type { Logger } from 'pino';

/** One state change of the dev server, as the agent reports it (`devserver.state`). */
export interface DevServerReport {
  state: DevServerState;
  port: number;
  restarts: number;
  since: string;
  /** 1, 2, 3... in this agent's life: berth keeps the highest, SQS may reorder. */
  sequence: number;
}

export interface DevServerTuning {
  /** The first restart's delay; each crash in a row doubles it, up to `backoffMaxMs`. */
  backoffBaseMs: number;
  backoffMaxMs: number;
  /** Up this long, it counts as stable: the next crash starts the backoff over. */
  stableAfterMs: number;
  /** How often the server is asked (an HTTP GET of the ready path) while it is starting. */
  probeIntervalMs: number;
  /** How long one such request may take to answer before it counts as a failure. */
  probeTimeoutMs: number;
  /** How often the server is asked while it is up; `liveProbeMisses` failures in a row make it `starting`. */
  liveProbeIntervalMs: number;
  liveProbeMisses: number;
  /** A stop's SIGTERM is followed by SIGKILL after this. */
  stopGraceMs: number;
  /** [0, 1): the jitter's source; Math.random outside tests. */
  random: () => number;
}

export const DEFAULT_DEV_SERVER_TUNING: DevServerTuning = {
  backoffBaseMs: 1000,
  backoffMaxMs: 30_000,
  stableAfterMs: 60_000,
  probeIntervalMs: 200,
  probeTimeoutMs: 3000,
  liveProbeIntervalMs: 2000,
  liveProbeMisses: 3,
  stopGraceMs: 3000,
  random: Math.random,
};

/**
 * The delay before the restart after `crashesInRow` crashes in a row (1 for the first):
 * exponential, capped, and multiplied by a random factor in [0.5, 1) so that many containers
 * whose servers crashed together (a bad shared dependency) do not restart in step.
 */
export function restartDelayMs(
  crashesInRow: number,
  tuning: Pick<DevServerTuning, 'backoffBaseMs' | 'backoffMaxMs' | 'random'>,
): number {
  const exponent = Math.max(crashesInRow - 1, 0);
  const ceiling = Math.min(tuning.backoffMaxMs, tuning.backoffBaseMs * 2 ** Math.min(exponent, 30));
  return Math.round(ceiling * (0.5 + tuning.random() / 2));
}

/**
 * Whether an HTTP server answers `GET <path>` on 127.0.0.1:port with a status below 500 within
 * `timeoutMs` (the server's readiness). A 404 or a redirect still means it is serving; a 5xx,
 * a refused or reset connection, something that is not HTTP, or no answer in time is not
 * ready. A connection of its own each time (no keep-alive pool), so a server that stopped
 * accepting is noticed; only the status line and headers are awaited, the body is dropped.
 */
export function serverAnswers(port: number, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const request = get(
      {
        host: '127.0.0.1',
        port,
        path,
        agent: false,
        headers: { 'user-agent': 'berth-workspace-agent (dev server readiness)' },
        signal: AbortSignal.timeout(timeoutMs),
      },
      (response) => {
        resolve((response.statusCode ?? 500) < 500);
        // The body is not needed: the connection goes, and its cut short body is no error.
        response.once('error', () => undefined);
        request.destroy();
      },
    );
    request.once('error', () => resolve(false));
  });
}

function isGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // The group is gone already.
  }
}

export interface DevServerOptions {
  /** BERTH_DEV_SERVER_COMMAND, run with `/bin/sh -c`. */
  command: string;
  port: number;
  /** BERTH_DEV_SERVER_READY_PATH: what the readiness probe GETs (path and query). */
  readyPath: string;
  /** The main checkout, or the worktree of BERTH_DEV_SERVER_THREAD. */
  cwd: string;
  /** Added to the agent's own environment (PORT is set here). */
  env: Record<string, string>;
  logger: Logger;
  /** Told every state change, in order; must not throw (the agent logs a failed send). */
  report: (report: DevServerReport) => void;
  /** Told the process group of every start: the local runtime ends it with the agent. */
  onProcessGroup?: (pgid: number) => void;
  tuning?: Partial<DevServerTuning>;
}

/**
 * The container's dev server (docs/contract.md, "The dev server"): started by `start()`,
 * `up` once it answers HTTP on its port with a status below 500, started again with backoff whenever its process ends, until
 * `stop()` ends it (SIGTERM to its process group, SIGKILL after a grace).
 */
export class DevServer {
  readonly #options: DevServerOptions;
  readonly #tuning: DevServerTuning;
  readonly #log: Logger;
  readonly #stopping = new AbortController();
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #loop: Promise<void> | undefined;
  #sequence = 0;
  #restarts = 0;
  #state: DevServerState | undefined;

  constructor(options: DevServerOptions) {
    this.#options = options;
    this.#tuning = { ...DEFAULT_DEV_SERVER_TUNING, ...options.tuning };
    this.#log = options.logger.child({ devServer: { port: options.port } });
  }

  /** The last state reported; undefined before the start. */
  get state(): DevServerState | undefined {
    return this.#state;
  }

  /** Starts it and keeps it running in the background until `stop()`. */
  start(): void {
    if (this.#stopping.signal.aborted) return;
    this.#loop ??= this.#keepRunning().catch((error: unknown) => {
      this.#log.error({ err: error }, 'the dev server supervision failed; no more restarts');
    });
  }

  /** Ends it and every process it started, and starts it no more. Safe to call twice. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    const child = this.#child;
    if (child?.pid !== undefined && isGroupAlive(child.pid)) {
      const pgid = child.pid;
      this.#log.info({ pgid }, 'stopping the dev server');
      signalGroup(pgid, 'SIGTERM');
      const killed = setTimeout(() => {
        if (isGroupAlive(pgid)) {
          this.#log.warn({ pgid, graceMs: this.#tuning.stopGraceMs }, 'dev server killed');
          signalGroup(pgid, 'SIGKILL');
        }
      }, this.#tuning.stopGraceMs);
      await this.#exited;
      // Its children may outlive the shell a moment: the whole group goes before the save.
      const deadline = Date.now() + this.#tuning.stopGraceMs;
      while (isGroupAlive(pgid) && Date.now() < deadline) await delay(25);
      if (isGroupAlive(pgid)) signalGroup(pgid, 'SIGKILL');
      clearTimeout(killed);
    }
    await this.#loop;
  }

  #report(state: DevServerState): void {
    this.#state = state;
    this.#sequence += 1;
    const report: DevServerReport = {
      state,
      port: this.#options.port,
      restarts: this.#restarts,
      since: new Date().toISOString(),
      sequence: this.#sequence,
    };
    this.#log.info({ state, restarts: this.#restarts, sequence: this.#sequence }, 'dev server');
    this.#options.report(report);
  }

  async #keepRunning(): Promise<void> {
    const signal = this.#stopping.signal;
    let crashesInRow = 0;
    while (!signal.aborted) {
      const exit = this.#spawn();
      this.#report('starting');
      const upAt = await this.#awaitUp(exit);
      if (upAt !== undefined && !signal.aborted) {
        this.#report('up');
        await this.#watchWhileUp(exit);
      }
      const { code, signal: killedBy } = await exit;
      if (signal.aborted) return;
      const upFor = upAt === undefined ? 0 : Date.now() - upAt;
      crashesInRow = upFor >= this.#tuning.stableAfterMs ? 1 : crashesInRow + 1;
      const wait = restartDelayMs(crashesInRow, this.#tuning);
      this.#log.warn(
        { code, signal: killedBy, upForMs: upFor, crashesInRow, restartInMs: wait },
        'the dev server exited; starting it again after a backoff',
      );
      this.#report('crashed');
      try {
        await delay(wait, undefined, { signal });
      } catch {
        return;
      }
      this.#restarts += 1;
    }
  }

  #spawn(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const { command, cwd, env, port } = this.#options;
    const child = spawn('/bin/sh', ['-c', command], {
      cwd,
      // eslint-disable-next-line no-restricted-properties -- the dev server inherits the agent's environment (credentials already taken out), as a workload does
      env: { ...process.env, ...env, PORT: String(port) },
      // Its output joins the agent's log stream (the task's log on ECS).
      stdio: ['ignore', 'inherit', 'inherit'],
      // A process group of its own: a stop reaches whatever it started, not only the shell.
      detached: true,
    });
    this.#child = child;
    if (child.pid !== undefined) this.#options.onProcessGroup?.(child.pid);
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('error', (error) => {
        this.#log.error({ err: error }, 'the dev server could not be started');
        resolve({ code: null, signal: null });
      });
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
    this.#exited = exit.then(() => undefined);
    return exit;
  }

  /**
   * While it is up, asks it now and then (the same probe): a server that stops answering, or
   * answers with 5xx (hung, broken by an edit, or
   * restarting inside its own process, as a dev server does on a config change) is `starting`
   * again until it answers. Resolves when its process ends or a stop begins.
   */
  async #watchWhileUp(
    exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  ): Promise<void> {
    let ended = false;
    void exit.then(() => {
      ended = true;
    });
    const signal = this.#stopping.signal;
    let misses = 0;
    while (!ended && !signal.aborted) {
      try {
        await Promise.race([delay(this.#tuning.liveProbeIntervalMs, undefined, { signal }), exit]);
      } catch {
        return;
      }
      if (ended || signal.aborted) return;
      if (await this.#answers()) {
        misses = 0;
        continue;
      }
      misses += 1;
      if (misses < this.#tuning.liveProbeMisses || ended || signal.aborted) continue;
      this.#log.warn(
        { misses, readyPath: this.#options.readyPath },
        'the dev server stopped answering (an error status, no answer or no connection)',
      );
      this.#report('starting');
      if ((await this.#awaitUp(exit)) === undefined || signal.aborted) return;
      this.#report('up');
      misses = 0;
    }
  }

  #answers(): Promise<boolean> {
    return serverAnswers(this.#options.port, this.#options.readyPath, this.#tuning.probeTimeoutMs);
  }

  /** Asks the server until it answers (resolves with when), the process ends or a stop begins. */
  async #awaitUp(
    exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>,
  ): Promise<number | undefined> {
    let ended = false;
    void exit.then(() => {
      ended = true;
    });
    const signal = this.#stopping.signal;
    while (!ended && !signal.aborted) {
      if (await this.#answers()) return ended ? undefined : Date.now();
      try {
        await Promise.race([delay(this.#tuning.probeIntervalMs, undefined, { signal }), exit]);
      } catch {
        return undefined;
      }
    }
    return undefined;
  }
}
