import type {
  Clock,
  ContainerKey,
  ContainerQueues,
  EventPublisher,
  Logger,
  Runtime,
  StateStore,
} from '@berth/domain';

export interface CoreSettings {
  maxSessions: number;
  idleTimeoutMs: number;
  sessionTtlMs: number;
  shutdownGraceMs: number;
  startTimeoutMs: number;
  /** Extra environment for every workspace agent (workload command, grace period, ...). */
  agentEnvironment: Record<string, string>;
  /** The project's repository for the agent, when the runtime does not supply one itself. */
  repoUrlFor?: (key: ContainerKey) => string | undefined;
}

export const silentLogger: Logger = { info: () => {}, warn: () => {}, error: () => {} };

/** Counters the core reports; apps back them with prom-client and CloudWatch EMF. */
export interface CoreMetrics {
  containerStarted(outcome: 'created' | 'reused'): void;
  containerStartFailed(): void;
  containerStopped(reason: string, lifetimeSeconds: number | undefined): void;
  idleStop(idleSeconds: number): void;
  orphanRepaired(kind: 'record' | 'task'): void;
  sessionsExpired(count: number): void;
}

export const noMetrics: CoreMetrics = {
  containerStarted: () => {},
  containerStartFailed: () => {},
  containerStopped: () => {},
  idleStop: () => {},
  orphanRepaired: () => {},
  sessionsExpired: () => {},
};

export interface CoreDeps {
  store: StateStore;
  runtime: Runtime;
  queues: ContainerQueues;
  publisher: EventPublisher;
  clock: Clock;
  settings: CoreSettings;
  log?: Logger;
  metrics?: CoreMetrics;
}
