import { LIVE_STATUSES, type StateStore } from '@berth/domain';
import type { ServiceMetrics } from '@berth/platform';

/**
 * Counters that only count trouble, written as 0 on every gauge tick: an alarm on them then
 * evaluates real data points (not "missing"), and the dashboard's lines are continuous. A Sum
 * is unchanged by zeros, whichever service adds the ones.
 */
export const ZERO_HEARTBEAT: readonly { name: string; dimensions?: Record<string, string> }[] = [
  { name: 'ReaperErrors' },
  { name: 'ContainerStartFailures' },
  { name: 'OrphanedSessions' },
  { name: 'OrphansRepaired', dimensions: { Kind: 'record' } },
  { name: 'OrphansRepaired', dimensions: { Kind: 'task' } },
];

/**
 * The gauges of the dashboard and of the live-containers alarm: containers per live status
 * (final statuses grow without bound and are not counted) and one SessionsPerContainer sample
 * per running container, from the status index (StateStore.containerGauges), never a scan.
 */
export async function emitGauges(store: StateStore, metrics: ServiceMetrics): Promise<void> {
  const gauges = await store.containerGauges(LIVE_STATUSES);
  for (const status of LIVE_STATUSES)
    metrics.emf('ContainersByStatus', gauges.byStatus[status] ?? 0, 'Count', { Status: status });
  const samples: number[] = [];
  for (const [sessions, containers] of [...gauges.runningBySessionCount].sort(([a], [b]) => a - b))
    for (let index = 0; index < containers; index++) samples.push(sessions);
  metrics.emf('SessionsPerContainer', samples, 'Count');
  for (const counter of ZERO_HEARTBEAT) metrics.emf(counter.name, 0, 'Count', counter.dimensions);
}
