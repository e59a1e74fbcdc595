import type { BerthEvent } from '@berth/domain';

export type FeedListener = (event: BerthEvent) => void;

/**
 * Fans the lifecycle events this replica receives (through its invalidation queue) out to the
 * console's server-sent-event streams. One queue per replica, however many browsers watch:
 * a browser never gets a queue of its own. A listener that throws is dropped, never the feed.
 */
export class LifecycleFeed {
  readonly #listeners = new Set<FeedListener>();

  /** Adds a listener; the returned function removes it. */
  subscribe(listener: FeedListener): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  publish(event: BerthEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        this.#listeners.delete(listener);
      }
    }
  }

  get listenerCount(): number {
    return this.#listeners.size;
  }
}
