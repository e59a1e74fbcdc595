/**
 * The checker's rule for git: every line a container answered for reaches its thread's branch
 * or a fallback ref that a `container.stopped` event reported (`savedElsewhere`). A fallback
 * ref nobody was told about does not count.
 */
import type { BerthEvent } from '@berth/domain';

export interface ReportedFallback {
  containerId: string;
  refPrefix: string;
  branches: string[];
  complete: boolean;
}

/** Every `savedElsewhere` the history carries. */
export function reportedFallbacks(events: readonly BerthEvent[]): ReportedFallback[] {
  const found: ReportedFallback[] = [];
  for (const event of events) {
    if (event.type !== 'container.stopped' || !event.containerId) continue;
    const saved = (event.payload as { savedElsewhere?: Partial<ReportedFallback> }).savedElsewhere;
    if (!saved || typeof saved.refPrefix !== 'string') continue;
    found.push({
      containerId: event.containerId,
      refPrefix: saved.refPrefix,
      branches: Array.isArray(saved.branches) ? saved.branches : [],
      complete: saved.complete !== false,
    });
  }
  return found;
}

/**
 * The refs that may hold `branch`'s work for `containerId`: each reported one named for it,
 * and under a prefix whose report could not name every branch, the one that would be its.
 */
export function fallbackRefsFor(
  fallbacks: readonly ReportedFallback[],
  containerId: string,
  branch: string,
): string[] {
  return [
    ...new Set(
      fallbacks
        .filter(
          (f) => f.containerId === containerId && (!f.complete || f.branches.includes(branch)),
        )
        .map((f) => `${f.refPrefix}${branch}`),
    ),
  ];
}
