import { CLIENT_ONLY_FIELDS, CONTAINER_STATUSES, LIVE_STATUSES } from '@berth/domain';

/**
 * The metrics berth's services emit in CloudWatch embedded metric format (namespace
 * `Berth`), with the exact dimension sets the dashboard and alarms read. A metric emitted
 * with another dimension set is a different metric to CloudWatch: keep emitters and this
 * table in step.
 */
export const METRICS = {
  /** Gauge: containers per live status (starting, running, terminating), dimension `Status`. */
  containersByStatus: { name: 'ContainersByStatus', dimension: 'Status' },
  /** Gauge, one sample per running container: its session count. */
  sessionsPerContainer: { name: 'SessionsPerContainer' },
  /** One sample per stopped container: seconds from start to stop. */
  containerLifetimeSeconds: { name: 'ContainerLifetimeSeconds' },
  /** One sample per idle stop: seconds the container was idle when stopping began. */
  idleSecondsBeforeStop: { name: 'IdleSecondsBeforeStop' },
  /** Count per assignment, dimension `Outcome` = `reused` | `created`. */
  containerReused: { name: 'ContainerReused', dimension: 'Outcome' },
  containerStarts: { name: 'ContainerStarts' },
  containerStartFailures: { name: 'ContainerStartFailures' },
  /** Count per repair, dimension `Kind` = `record` (closed, its task gone) | `task` (orphan stopped). */
  orphansRepaired: { name: 'OrphansRepaired', dimension: 'Kind' },
  orphanedSessions: { name: 'OrphanedSessions' },
  reaperErrors: { name: 'ReaperErrors' },
  watcherErrors: { name: 'WatcherErrors' },
  /** Gauges, every BERTH_GAUGE_INTERVAL while the warm pool is on: members, and free ones. */
  poolSize: { name: 'PoolSize' },
  poolFree: { name: 'PoolFree' },
  /** Count per miss served by the pool, and per miss that found no free member. */
  poolClaims: { name: 'PoolClaims' },
  poolMisses: { name: 'PoolMisses' },
  /** One sample per claim: milliseconds from the miss to the stored claim. */
  poolClaimLatency: { name: 'PoolClaimLatency' },
  /**
   * Count per new generation (cold or pool claim) a quota refused, dimension `Quota` = the quota's
   * name (QUOTA_NAMES, a bounded set). Never the client id: one metric per client is unbounded.
   */
  quotaRefusals: { name: 'QuotaRefusals', dimension: 'Quota' },
  /** Count per `container.expiring` notice (`notice`) and per maxLifetime stop (`stop`), dimension `Stage`. */
  lifetimeExpiries: { name: 'LifetimeExpiries', dimension: 'Stage' },
} as const;

export const REUSE_OUTCOMES = ['reused', 'created'] as const;
export const ORPHAN_KINDS = ['record', 'task'] as const;
export const QUOTA_NAMES = CLIENT_ONLY_FIELDS;
export const EXPIRY_STAGES = ['notice', 'stop'] as const;

export { CONTAINER_STATUSES, LIVE_STATUSES };
