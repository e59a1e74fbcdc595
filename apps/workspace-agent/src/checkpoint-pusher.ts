import type { Logger } from 'pino';
import type { SaveResult } from './git-workspace.ts';

/** A commit on a thread's branch that berth is to hear about once it is pushed. */
export interface Checkpoint {
  sessionId: string;
  threadId: string;
  branch: string;
  commit: string;
  /** The input message (its SQS MessageId) whose run made it, or the revert's request. */
  messageId: string;
  files: string[];
  filesTotal: number;
  /** For a revert: the checkpoint whose tree it restores. */
  revertOf?: string;
  createdAt: string;
  /** When the workload's run ended (for the push-latency figure). */
  endedAt: number;
}

export interface CheckpointPusherOptions {
  intervalMs: number;
  push: (branches: string[]) => Promise<SaveResult>;
  /** Told each checkpoint once its branch is on the remote. */
  announce: (checkpoint: Checkpoint) => Promise<void>;
  logger: Logger;
  now?: () => number;
}

/**
 * Pushes checkpoints soon after they are made, and at most once per interval: the first
 * checkpoint after a quiet interval is pushed at once; those made while a push runs or within
 * the interval after it wait for the next push, which takes them all (one `git push` of every
 * branch concerned). A failed push keeps its checkpoints for the next one; the stop's save
 * pushes whatever is left.
 */
export class CheckpointPusher {
  readonly #options: CheckpointPusherOptions;
  readonly #now: () => number;
  #pending: Checkpoint[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #lastPushAt = Number.NEGATIVE_INFINITY;
  #closed = false;

  constructor(options: CheckpointPusherOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
  }

  get pending(): number {
    return this.#pending.length;
  }

  add(checkpoint: Checkpoint): void {
    this.#pending.push(checkpoint);
    this.#schedule();
  }

  #schedule(): void {
    if (this.#closed || this.#timer !== undefined || this.#running !== undefined) return;
    if (this.#pending.length === 0) return;
    const wait = Math.max(0, this.#lastPushAt + this.#options.intervalMs - this.#now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#run();
    }, wait);
  }

  #run(): Promise<void> {
    const batch = this.#pending.splice(0);
    this.#lastPushAt = this.#now();
    this.#running = this.#pushBatch(batch).finally(() => {
      this.#running = undefined;
      this.#schedule();
    });
    return this.#running;
  }

  async #pushBatch(batch: Checkpoint[]): Promise<void> {
    if (batch.length === 0) return;
    let result: SaveResult;
    try {
      result = await this.#options.push(batch.map((c) => c.branch));
    } catch (error) {
      this.#options.logger.error({ err: error }, 'checkpoint push failed; trying again later');
      this.#pending.unshift(...batch);
      return;
    }
    const retry: Checkpoint[] = [];
    for (const checkpoint of batch) {
      if (result.pushed.includes(checkpoint.branch)) {
        try {
          await this.#options.announce(checkpoint);
        } catch (error) {
          this.#options.logger.error(
            { commit: checkpoint.commit, err: error },
            'could not announce a pushed checkpoint; trying again with the next push',
          );
          retry.push(checkpoint);
        }
      } else if (result.fallbacks.some((f) => f.branch === checkpoint.branch)) {
        // Not on the branch: the remote moved and the two did not merge. It is on the fallback
        // ref, which the stop reports; as a checkpoint of the thread it does not exist.
        this.#options.logger.warn(
          { commit: checkpoint.commit, branch: checkpoint.branch },
          'checkpoint went to a fallback ref; not announced',
        );
      } else {
        retry.push(checkpoint);
      }
    }
    if (retry.length > 0) {
      this.#options.logger.warn(
        { failures: result.failures, left: retry.length },
        'some checkpoints were not pushed; trying again later',
      );
      this.#pending.unshift(...retry);
    }
  }

  /**
   * Pushes and announces what is pending now (the stop calls it before its save, so the save
   * has only what came after). Resolves once that push is done; never throws.
   */
  async flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#running !== undefined) await this.#running;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    if (this.#pending.length > 0) await this.#run();
  }

  /** No more timers: after the stop's flush. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
