import { parseContainerId, previewTouchIntervalMs, type ContainerRecord } from '@berth/domain';
import type { ContainerRecords } from './container-records.ts';
import type { ContainerService, FoundContainer } from './containers.ts';
import { silentLogger, type CoreDeps } from './deps.ts';

export type PreviewTouch = 'touched' | 'recent' | 'not_running';

/**
 * What the preview gateway asks of berth (docs/design.md, "Preview URLs"): the container a
 * preview opens, started when it is not live (the same find-or-start as a discover, quotas
 * included), and the activity its requests count as.
 */
export class PreviewService {
  private readonly deps: CoreDeps;
  private readonly records: ContainerRecords;
  private readonly containers: ContainerService;

  constructor(deps: CoreDeps, records: ContainerRecords, containers: ContainerService) {
    this.deps = deps;
    this.records = records;
    this.containers = containers;
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  /** The container as the store has it, or undefined. */
  read(containerId: string): Promise<ContainerRecord | undefined> {
    return this.deps.store.getContainer(containerId);
  }

  /**
   * The live container a preview of `containerId` is served from: the one running or starting,
   * or a new generation when it is stopped or failed (a 429 when a quota refuses it, a retryable
   * 409 while the previous one is still stopping).
   */
  async open(containerId: string): Promise<FoundContainer> {
    const found = await this.containers.findOrStart(parseContainerId(containerId));
    if (found.source !== 'store') {
      this.log.info({ containerId, source: found.source }, 'preview started its container');
    }
    return found;
  }

  /**
   * Records a preview request as activity: `previewActiveAt` = now, written only when the
   * stored one is at least previewTouchIntervalMs old (30 s, or half a shorter idle timeout),
   * so a page loading a hundred assets costs at most one write per interval, whatever the number of gateway replicas. The idle
   * stop counts from it; only a running container is touched.
   */
  async touch(containerId: string): Promise<PreviewTouch> {
    const now = this.deps.clock.now();
    const nowIso = now.toISOString();
    const fresh = (current: ContainerRecord) => {
      const interval = previewTouchIntervalMs(current, this.deps.settings.idleTimeoutMs);
      const cutoff = new Date(now.getTime() - interval).toISOString();
      return current.previewActiveAt !== undefined && current.previewActiveAt > cutoff;
    };
    let outcome: PreviewTouch = 'not_running';
    await this.records.update(containerId, (current) => {
      if (current.status !== 'running') {
        outcome = 'not_running';
        return undefined;
      }
      if (fresh(current)) {
        outcome = 'recent';
        return undefined;
      }
      outcome = 'touched';
      return {
        ...current,
        previewActiveAt: nowIso,
        lastActivityAt: nowIso > current.lastActivityAt ? nowIso : current.lastActivityAt,
      };
    });
    return outcome;
  }
}
