/**
 * Runs jobs at fixed intervals, never two runs of one job at once; `stop` waits for the runs
 * in progress so a shutdown never cuts a stop in half.
 */
export class Scheduler {
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly running = new Map<string, Promise<void>>();
  private readonly log: { error(o: object, m: string): void };
  private readonly onError: () => void;
  private stopped = false;

  constructor(log: { error(o: object, m: string): void }, onError: () => void = () => {}) {
    this.log = log;
    this.onError = onError;
  }

  every(
    name: string,
    intervalMs: number,
    job: () => Promise<void>,
    options: { runAtStart?: boolean } = {},
  ): void {
    const run = (): void => {
      if (this.stopped || this.running.has(name)) return;
      const pending = job()
        .catch((error: unknown) => {
          this.onError();
          this.log.error({ job: name, err: error }, 'scheduled job failed');
        })
        .finally(() => this.running.delete(name));
      this.running.set(name, pending);
    };
    this.timers.push(setInterval(run, intervalMs));
    if (options.runAtStart) run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    await Promise.all(this.running.values());
  }
}
