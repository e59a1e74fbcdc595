import type { CLIENT_ONLY_FIELDS } from '@berth/domain';
import type {
  Clock,
  ContainerKey,
  ContainerQueues,
  EventPublisher,
  Logger,
  PoolControlQueues,
  PoolRuntime,
  PoolStore,
  PolicyStore,
  Runtime,
  StateStore,
} from '@berth/domain';

export interface CoreSettings {
  maxSessions: number;
  idleTimeoutMs: number;
  sessionTtlMs: number;
  shutdownGraceMs: number;
  startTimeoutMs: number;
  /** Bounds of a policy's idle timeout (BERTH_POLICY_IDLE_TIMEOUT_MIN/_MAX); 1m and 8h when absent. */
  policyIdleTimeoutMinMs?: number;
  policyIdleTimeoutMaxMs?: number;
  /** BERTH_EXPIRY_NOTICE (5m when absent). */
  expiryNoticeMs?: number;
  /**
   * BERTH_SWEEP_INTERVAL: a quota counter changed longer ago than this is recounted by the
   * sweep (its writes are in clientId-index by then). 10m when absent.
   */
  sweepIntervalMs?: number;
  /** Extra environment for every workspace agent (workload command, grace period, ...). */
  agentEnvironment: Record<string, string>;
  /** The project's repository for the agent, when the runtime does not supply one itself. */
  repoUrlFor?: (key: ContainerKey) => string | undefined;
  /**
   * False where the service's role may not start tasks nor create queues (the reaper, the
   * task watcher): an abandoned start is closed from the runtime's task list instead of
   * through its start token. True when absent.
   */
  mayStartTasks?: boolean;
}

/**
 * How often a session write is tried against concurrent writers of the same items before the
 * command is left to be retried (assign has its own, larger bound: its container is contended).
 */
export const SESSION_WRITE_ATTEMPTS = 10;

export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} };

/** Counters the core reports; apps back them with prom-client and CloudWatch EMF. */
export interface CoreMetrics {
  containerStarted(outcome: 'created' | 'reused'): void;
  containerStartFailed(): void;
  containerStopped(reason: string, lifetimeSeconds: number | undefined): void;
  idleStop(idleSeconds: number): void;
  orphanRepaired(kind: 'record' | 'task'): void;
  sessionsExpired(count: number): void;
  /** A miss served by the warm pool (with the claim's latency) or not (`miss`: no free member). */
  poolClaim?(outcome: 'claimed' | 'miss', latencySeconds?: number): void;
  /** The pool's members, and how many of them are free to claim (every reaper tick). */
  poolGauges?(members: number, free: number): void;
  /**
   * A new generation refused by a quota of its client's policy, named by the quota (one of
   * CLIENT_ONLY_FIELDS: a bounded set, so it may be a metric dimension; the client id is not).
   */
  quotaRefused?(quota: QuotaName): void;
  /** The reaper told a container's sessions it is expiring, or stopped it at its maxLifetime. */
  lifetimeExpiry?(stage: 'notice' | 'stop'): void;
}

/** The quotas a policy sets (docs/design.md, "Lifecycle policies and quotas"). */
export type QuotaName = (typeof CLIENT_ONLY_FIELDS)[number];

export const noMetrics: CoreMetrics = {
  containerStarted: () => {},
  containerStartFailed: () => {},
  containerStopped: () => {},
  idleStop: () => {},
  orphanRepaired: () => {},
  sessionsExpired: () => {},
};

/** The warm pool (docs/design.md, "The warm pool"); absent or size 0: no pool. */
export interface PoolDeps {
  size: number;
  maxAgeMs: number;
  store: PoolStore;
  queues: PoolControlQueues;
  runtime: PoolRuntime;
  /** The project's repository for a claimed member (a local stack makes it on first use). */
  repositoryFor?: (key: ContainerKey) => Promise<string | undefined>;
}

export interface CoreDeps {
  store: StateStore;
  runtime: Runtime;
  queues: ContainerQueues;
  publisher: EventPublisher;
  clock: Clock;
  settings: CoreSettings;
  log?: Logger;
  metrics?: CoreMetrics;
  pool?: PoolDeps;
  /** Where lifecycle policies are kept; absent: every container has the deployment's defaults. */
  policies?: PolicyStore;
}
