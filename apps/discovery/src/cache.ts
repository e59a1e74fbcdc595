import type { ContainerRecord } from '@berth/domain';

/**
 * Discovery's in-process cache. It only ever holds `running` containers, keeps each for at
 * most `ttlMs`, and drops a container as soon as this process learns it is stopping (its own
 * stop route, or a lifecycle event), so it never hands out a stopped or failed container
 * for longer than the event takes to arrive, and never longer than `ttlMs`.
 */
export class ContainerCache {
  private readonly entries = new Map<
    string,
    { container: ContainerRecord; expiresAt: number; answer?: string }
  >();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: { ttlMs: number; maxEntries?: number; now?: () => number }) {
    this.ttlMs = options.ttlMs;
    this.maxEntries = options.maxEntries ?? 10_000;
    this.now = options.now ?? Date.now;
  }

  get(containerId: string): ContainerRecord | undefined {
    return this.live(containerId)?.container;
  }

  /**
   * The answer for a cached container, made by `serialize` once per cached record and reused
   * until the record leaves the cache: the record cannot change while it is cached.
   */
  answer(
    containerId: string,
    serialize: (container: ContainerRecord) => string,
  ): string | undefined {
    const entry = this.live(containerId);
    if (!entry) return undefined;
    entry.answer ??= serialize(entry.container);
    return entry.answer;
  }

  private live(containerId: string) {
    const entry = this.entries.get(containerId);
    if (!entry) return undefined;
    if (entry.expiresAt <= this.now() || entry.container.status !== 'running') {
      this.entries.delete(containerId);
      return undefined;
    }
    return entry;
  }

  put(container: ContainerRecord): void {
    if (container.status !== 'running' || this.ttlMs <= 0) {
      this.entries.delete(container.containerId);
      return;
    }
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    this.entries.set(container.containerId, { container, expiresAt: this.now() + this.ttlMs });
  }

  invalidate(containerId: string): void {
    this.entries.delete(containerId);
  }

  get size(): number {
    return this.entries.size;
  }
}
