import { spawn, type ChildProcess } from 'node:child_process';
import { appendFile } from 'node:fs/promises';
import { constants } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';

export interface WorkloadRequest {
  /** The thread's worktree. */
  cwd: string;
  /** Given on standard input. */
  text: string;
  /** Added to the agent's own environment (CONTAINER_ID, BERTH_SESSION_ID, ...). */
  env: Record<string, string>;
}

export interface WorkloadResult {
  stdout: string;
  exitCode: number;
  /** Set when the workload was ended by a signal (exitCode is then 128 + its number). */
  signal: NodeJS.Signals | null;
  /** Standard output went past what one answer can carry and was cut. */
  truncated: boolean;
}

export interface Workload {
  run(request: WorkloadRequest): Promise<WorkloadResult>;
  /** Asks every running workload to end (SIGTERM), kills those still running after `killAfterMs`. */
  interrupt(killAfterMs: number): Promise<void>;
  /** Ends every process a workload left behind (background jobs included). */
  stopAll(): Promise<void>;
  readonly running: number;
}

/** What is kept of standard output; the queue cannot carry much more in one message anyway. */
export const MAX_STDOUT_BYTES = 256 * 1024;

/**
 * After the workload's shell exits, how long to wait for its standard output to close: a
 * background job it started may hold the pipe open for ever.
 */
const OUTPUT_DRAIN_MS = 2000;

function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal] ?? 0;
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
    // The group is already gone.
  }
}

interface Running {
  child: ChildProcess;
  done: Promise<WorkloadResult>;
}

/**
 * `BERTH_WORKLOAD_COMMAND` through `/bin/sh -c`, once per message. Each run gets a process group
 * of its own so that interrupting it reaches whatever it started, not only the shell.
 */
export interface WorkloadOptions {
  /**
   * Told the process group of every workload as it starts, before anything else can happen:
   * the local runtime ends these groups with the agent, however the agent ends.
   */
  onProcessGroup?: (pgid: number) => void;
}

export class ShellWorkload implements Workload {
  readonly #command: string;
  readonly #onProcessGroup: (pgid: number) => void;
  readonly #running = new Set<Running>();
  /** Process groups that may still have members: the shell exited but left jobs behind. */
  readonly #groups = new Set<number>();

  constructor(command: string, options: WorkloadOptions = {}) {
    this.#command = command;
    this.#onProcessGroup = options.onProcessGroup ?? (() => undefined);
  }

  get running(): number {
    return this.#running.size;
  }

  run(request: WorkloadRequest): Promise<WorkloadResult> {
    const child = spawn('/bin/sh', ['-c', this.#command], {
      cwd: request.cwd,
      // eslint-disable-next-line no-restricted-properties -- a workload inherits the agent's environment (credentials already taken out)
      env: { ...process.env, ...request.env },
      stdio: ['pipe', 'pipe', 'inherit'],
      detached: true,
    });
    if (child.pid !== undefined) this.#onProcessGroup(child.pid);
    const done = new Promise<WorkloadResult>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let kept = 0;
      let truncated = false;
      let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
      let settled = false;

      const finish = (): void => {
        if (settled || exit === undefined) return;
        settled = true;
        const { code, signal } = exit;
        resolve({
          stdout: Buffer.concat(chunks).toString('utf8'),
          exitCode: code ?? (signal ? 128 + signalNumber(signal) : 1),
          signal,
          truncated,
        });
      };

      child.stdout?.on('data', (chunk: Buffer) => {
        if (kept >= MAX_STDOUT_BYTES) {
          truncated = true;
          return;
        }
        const room = MAX_STDOUT_BYTES - kept;
        if (chunk.length > room) truncated = true;
        const part = chunk.length > room ? chunk.subarray(0, room) : chunk;
        chunks.push(part);
        kept += part.length;
      });
      // A workload that never reads its input closes the pipe early; that is not an error.
      child.stdin?.on('error', () => undefined);
      child.stdin?.end(request.text);

      child.once('error', (error) => {
        if (settled) return;
        settled = true;
        reject(error);
      });
      child.once('exit', (code, signal) => {
        exit = { code, signal };
        if (child.pid !== undefined && isGroupAlive(child.pid)) this.#groups.add(child.pid);
        const drain = setTimeout(() => {
          child.stdout?.destroy();
          finish();
        }, OUTPUT_DRAIN_MS);
        drain.unref();
      });
      child.once('close', finish);
    });
    const entry: Running = { child, done };
    this.#running.add(entry);
    const forget = (): void => {
      this.#running.delete(entry);
    };
    done.then(forget, forget);
    return done;
  }

  async interrupt(killAfterMs: number): Promise<void> {
    const entries = [...this.#running];
    for (const { child } of entries) {
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGTERM');
    }
    const all = Promise.allSettled(entries.map((entry) => entry.done));
    const timer = setTimeout(() => {
      for (const { child } of entries) {
        if (child.pid !== undefined && child.exitCode === null && child.signalCode === null) {
          signalGroup(child.pid, 'SIGKILL');
        }
      }
    }, killAfterMs);
    await all;
    clearTimeout(timer);
  }

  async stopAll(): Promise<void> {
    const groups = new Set(this.#groups);
    for (const { child } of this.#running) if (child.pid !== undefined) groups.add(child.pid);
    const alive = [...groups].filter(isGroupAlive);
    for (const pgid of alive) signalGroup(pgid, 'SIGTERM');
    const deadline = Date.now() + 1000;
    while (alive.some(isGroupAlive) && Date.now() < deadline) await delay(50);
    for (const pgid of alive) if (isGroupAlive(pgid)) signalGroup(pgid, 'SIGKILL');
    this.#groups.clear();
  }
}

/**
 * The local stack's built-in workload: appends the text (and a newline) to `CHAT.md` in the
 * worktree and prints the text back.
 */
export class ChatFileWorkload implements Workload {
  #running = 0;

  get running(): number {
    return this.#running;
  }

  async run(request: WorkloadRequest): Promise<WorkloadResult> {
    this.#running += 1;
    try {
      await appendFile(join(request.cwd, 'CHAT.md'), `${request.text}\n`);
      return { stdout: request.text, exitCode: 0, signal: null, truncated: false };
    } finally {
      this.#running -= 1;
    }
  }

  interrupt(): Promise<void> {
    return Promise.resolve();
  }

  stopAll(): Promise<void> {
    return Promise.resolve();
  }
}

export function createWorkload(
  command: string | undefined,
  options: WorkloadOptions = {},
): Workload {
  return command === undefined ? new ChatFileWorkload() : new ShellWorkload(command, options);
}
