import type { PreviewService } from '@berth/core';
import {
  CapacityExceededError,
  ConflictError,
  devServerJson,
  isLive,
  previewTouchIntervalMs,
  type ContainerRecord,
} from '@berth/domain';

/** A running container that reported no dev server this long after its start has none. */
const NO_DEV_SERVER_AFTER_MS = 30_000;

interface ReadyTarget {
  kind: 'ready';
  upstream: string;
  touchIntervalMs: number;
}

export type Target =
  | ReadyTarget
  | { kind: 'waiting'; detail: string }
  | { kind: 'refused'; status: number; title: string; detail: string };

export interface TargetOptions {
  preview: PreviewService;
  /** How long a ready target is reused without reading the store again. */
  cacheTtlMs: number;
  /** Longest a request is held while the container or its dev server starts. */
  holdMs: number;
  /** How often a held request reads the store again. */
  pollMs: number;
  /** BERTH_IDLE_TIMEOUT: a container without a policy of its own idles for this long. */
  idleTimeoutMs: number;
  /** A container that failed less than this ago is not started again by a preview request. */
  failedRecentlyMs?: number;
}

/**
 * Where a container's preview is served from, found from its record: started when it is not
 * live (the same find-or-start as a discover, quotas included), held a moment while it starts,
 * and cached for a short while once ready (the proxy's own failure drops it).
 */
export class Targets {
  private readonly options: TargetOptions;
  private readonly ready = new Map<string, { target: ReadyTarget; until: number }>();

  constructor(options: TargetOptions) {
    this.options = options;
  }

  forget(containerId: string): void {
    this.ready.delete(containerId);
  }

  async resolve(containerId: string): Promise<Target> {
    const cached = this.ready.get(containerId);
    if (cached && cached.until > Date.now()) return cached.target;
    this.ready.delete(containerId);

    const deadline = Date.now() + this.options.holdMs;
    let record = await this.options.preview.read(containerId);
    for (;;) {
      const target = await this.decide(containerId, record);
      if (target.kind !== 'waiting' || Date.now() + this.options.pollMs > deadline) {
        if (target.kind === 'ready') this.remember(containerId, target);
        return target;
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.pollMs));
      record = await this.options.preview.read(containerId);
    }
  }

  private remember(containerId: string, target: ReadyTarget): void {
    if (this.options.cacheTtlMs <= 0) return;
    if (this.ready.size >= 10_000) {
      const oldest = this.ready.keys().next().value;
      if (oldest !== undefined) this.ready.delete(oldest);
    }
    this.ready.set(containerId, { target, until: Date.now() + this.options.cacheTtlMs });
  }

  private async decide(containerId: string, stored: ContainerRecord | undefined): Promise<Target> {
    let record = stored;
    if (!record || !isLive(record.status)) {
      const failedAt = record?.status === 'failed' ? Date.parse(record.stoppedAt ?? '') : NaN;
      if (Date.now() - failedAt < (this.options.failedRecentlyMs ?? 60_000)) {
        // Not started again at once: a waiting page refreshing itself would restart a
        // container that fails at each start for ever.
        return {
          kind: 'refused',
          status: 502,
          title: 'The preview could not start',
          detail: `The container failed (${record?.stopReason ?? 'no reason given'}). Reload in a minute to try again.`,
        };
      }
      try {
        record = (await this.options.preview.open(containerId)).container;
      } catch (error) {
        if (error instanceof CapacityExceededError) {
          return {
            kind: 'refused',
            status: 429,
            title: 'The preview cannot start now',
            detail: error.message,
          };
        }
        if (error instanceof ConflictError) {
          return { kind: 'waiting', detail: 'The previous container is still stopping.' };
        }
        throw error;
      }
    }
    switch (record.status) {
      case 'starting':
        return { kind: 'waiting', detail: 'The container is starting.' };
      case 'terminating':
        return {
          kind: 'waiting',
          detail: 'The container is stopping; a new one starts once it has stopped.',
        };
      case 'running':
        break;
      case 'stopped':
      case 'failed':
        // Ended between its start and this read: the next request starts it again.
        return { kind: 'waiting', detail: 'The container is starting.' };
    }
    // Where the agent reported its dev server (issue 19 item 1): proxied only once `up`.
    const devServer = devServerJson(record);
    if (!devServer) {
      const runningFor = Date.now() - Date.parse(record.startedAt ?? record.createdAt);
      if (runningFor > NO_DEV_SERVER_AFTER_MS) {
        return {
          kind: 'refused',
          status: 502,
          title: 'No dev server',
          detail: 'This container runs no dev server (BERTH_DEV_SERVER_COMMAND is not set).',
        };
      }
      return { kind: 'waiting', detail: 'The dev server is starting.' };
    }
    if (devServer.state === 'crashed') {
      return { kind: 'waiting', detail: 'The dev server stopped; the container restarts it.' };
    }
    if (devServer.state !== 'up' || !devServer.url) {
      return { kind: 'waiting', detail: 'The dev server is starting.' };
    }
    return {
      kind: 'ready',
      upstream: devServer.url,
      touchIntervalMs: previewTouchIntervalMs(record, this.options.idleTimeoutMs),
    };
  }
}
