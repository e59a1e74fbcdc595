import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, rmSync, writeFileSync } from 'node:fs';

export interface ServiceProcessOptions {
  name: string;
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  logFile: string;
  /** Standard error, when it should not go to `logFile` (the rehearsal keeps stdout for EMF). */
  errorLogFile?: string;
  cwd?: string;
  /** Told of every exit that was not asked for, before any restart. */
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
  /** Where the current pid is written, so tests and the soak test can kill a service. */
  pidFile?: string;
  /** Called when the service keeps dying right after start. */
  onGiveUp: () => void;
}

/**
 * One berth service as a child process, restarted when it dies (as ECS would restart a
 * service task), with a back-off, and given up on after repeated fast crashes.
 */
export class ServiceProcess {
  readonly name: string;
  private readonly options: ServiceProcessOptions;
  private child: ChildProcess | undefined;
  private stopping = false;
  private fastCrashes = 0;

  constructor(options: ServiceProcessOptions) {
    this.name = options.name;
    this.options = options;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  start(): void {
    const log = openSync(this.options.logFile, 'a');
    const errors =
      this.options.errorLogFile === undefined ? log : openSync(this.options.errorLogFile, 'a');
    const startedAt = Date.now();
    // Its own process group, so a terminal's Ctrl-C reaches only the stack, which then stops
    // services in order; the IPC channel lets a service notice when the stack itself is gone.
    const child = spawn(this.options.command, this.options.args, {
      env: this.options.env,
      ...(this.options.cwd === undefined ? {} : { cwd: this.options.cwd }),
      stdio: ['ignore', log, errors, 'ipc'],
      detached: true,
    });
    closeSync(log);
    if (errors !== log) closeSync(errors);
    this.child = child;
    if (this.options.pidFile && child.pid !== undefined)
      writeFileSync(this.options.pidFile, `${child.pid}\n`);
    child.on('exit', (code, signal) => {
      if (this.stopping) return;
      this.options.onExit?.(code, signal);
      const lived = Date.now() - startedAt;
      this.fastCrashes = lived < 5_000 ? this.fastCrashes + 1 : 0;
      process.stdout.write(
        `berth: ${this.name} exited (code ${code}, signal ${signal}); see ${this.options.logFile}\n`,
      );
      if (this.fastCrashes >= 5) {
        process.stdout.write(`berth: ${this.name} keeps crashing; giving up\n`);
        this.options.onGiveUp();
        return;
      }
      setTimeout(
        () => {
          if (!this.stopping) this.start();
        },
        250 * 2 ** this.fastCrashes,
      ).unref();
    });
  }

  async waitForHttp(url: string, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const ok = await fetch(url)
        .then((response) => response.ok)
        .catch(() => false);
      if (ok) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    throw new Error(
      `${this.name} did not become ready at ${url} within ${timeoutMs} ms (see ${this.options.logFile})`,
    );
  }

  async stop(graceMs = 15_000): Promise<void> {
    this.stopping = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
    if (this.options.pidFile) rmSync(this.options.pidFile, { force: true });
  }
}
