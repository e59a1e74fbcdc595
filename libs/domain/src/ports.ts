/**
 * What the application needs from the outside world, as interfaces. Adapters implement them
 * (DynamoDB, SQS/SNS, ECS or the local runtime) and translate every SDK error into a domain
 * error: StaleWriteError for a lost condition, UnavailableError for anything worth retrying.
 */
import type { BerthEvent } from './events.ts';
import type { ContainerKey } from './identity.ts';
import type { ContainerStatus } from './lifecycle.ts';
import type {
  CheckpointRecord,
  CommandOutcomeRecord,
  ContainerRecord,
  SessionRecord,
  SessionStatus,
} from './model.ts';

export interface Clock {
  now(): Date;
}

export const systemClock: Clock = { now: () => new Date() };

/** Structured logging as berth's code uses it; pino's logger satisfies it. */
export interface Logger {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

/**
 * What a queue message's handler answers: `done` deletes the message, `retry` leaves it to
 * come back after its visibility timeout (and reach the dead-letter queue after the 5th).
 */
export type HandleOutcome = 'done' | 'retry';

/** How a container write is guarded. */
export type ContainerExpectation =
  /** A new generation: no item yet (`previousGeneration` null), or the given final one. */
  | { kind: 'new-generation'; previousGeneration: number | null }
  /** An update: the stored `version` must still be this one. */
  | { kind: 'version'; version: number };

/** Fields of a session a `status` expectation may also pin to their value as read. */
export type SessionGuardField = 'lastActivityAt' | 'releaseReason';

export type SessionExpectation =
  | { kind: 'absent' }
  /**
   * The stored status is this one and, for each field given, the stored value is the given
   * one (null: absent), so a decision taken on a read is not applied over a change since.
   */
  | {
      kind: 'status';
      status: SessionStatus;
      unchanged?: Partial<Record<SessionGuardField, string | null>>;
    };

export interface ContainerWrite {
  record: ContainerRecord;
  expect: ContainerExpectation;
}

export interface SessionWrite {
  record: SessionRecord;
  expect: SessionExpectation;
}

/** What one transaction may change; every write or none is applied. */
export interface StoreChange {
  containers?: ContainerWrite[];
  sessions?: SessionWrite[];
  /** Decided outcomes of commands: each written only if none is stored for its commandId. */
  outcomes?: CommandOutcomeRecord[];
  /**
   * Quota counters changed in the same transaction (docs/design.md, "Lifecycle policies and
   * quotas"): `charge` counts a new generation (refused with CapacityExceededError naming the
   * quota when one is full), `release` uncounts a generation that reached a final status.
   */
  quota?: { charge?: QuotaCharge; release?: { clientId: string; userId: string } };
}

/** What a new generation adds to its client's quota counters, and the limits they must stay within. */
/** A quota counter the repair corrected: the client's (no userId) or one user's. */
export interface QuotaRepair {
  clientId: string;
  userId?: string;
  from: number;
  to: number;
}

export interface QuotaCharge {
  clientId: string;
  userId: string;
  projectId: string;
  maxLiveContainersPerUser: number | null;
  maxLiveContainersPerClient: number | null;
  /** Set when the project was never seen: its marker is written and counted under this limit. */
  newProjectLimit: number | null;
  newProject: boolean;
}

export interface ContainerFilter {
  clientId?: string;
  projectId?: string;
  userId?: string;
  status?: ContainerStatus;
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}

/** The container gauges: how many containers each status holds, and how full running ones are. */
export interface ContainerGauges {
  /** Containers per status, for the statuses asked. */
  byStatus: Partial<Record<ContainerStatus, number>>;
  /** Running containers by session count: `sessions → containers` (absent counts are zero). */
  runningBySessionCount: Map<number, number>;
}

export interface StateStore {
  getContainer(containerId: string): Promise<ContainerRecord | undefined>;
  getSession(sessionId: string): Promise<SessionRecord | undefined>;
  /** The outcome stored for a command, if it was decided (one consistent read). */
  getOutcome(commandId: string): Promise<CommandOutcomeRecord | undefined>;
  /**
   * Applies every write or none (one transaction). Throws StaleWriteError when any
   * expectation does not hold, UnavailableError when the store cannot be reached.
   */
  write(change: StoreChange): Promise<void>;
  listContainers(
    filter: ContainerFilter,
    limit: number,
    cursor?: string,
  ): Promise<Page<ContainerRecord>>;
  /** Running containers with no session whose `idleSince` is at or before the given time. */
  listIdleContainers(idleSinceAtOrBefore: string, limit: number): Promise<ContainerRecord[]>;
  /**
   * Running containers with a lifecycle policy whose next due moment (idle stop, expiry notice,
   * lifetime stop: `containerDueAt`) is at or before the given time, earliest first.
   */
  listDueContainers(atOrBefore: string, limit: number): Promise<ContainerRecord[]>;
  listContainersByStatus(status: ContainerStatus, limit: number): Promise<ContainerRecord[]>;
  /**
   * Counts the containers of each given status and the session counts of running ones, page by
   * page from the status index (no record kept in memory, no table scan): exact at any size.
   */
  containerGauges(statuses: readonly ContainerStatus[]): Promise<ContainerGauges>;
  listSessionsByContainer(containerId: string): Promise<SessionRecord[]>;
  /** Ended sessions whose outbox still holds events (`pendingEvents`), oldest activity first. */
  listSessionsWithPendingEvents(limit: number): Promise<SessionRecord[]>;
  /** Active sessions whose last activity is at or before the given time. */
  listStaleSessions(lastActivityAtOrBefore: string, limit: number): Promise<SessionRecord[]>;
  /**
   * Records a thread's checkpoint; true when it is new, false when that commit of that thread
   * was recorded before (a repeated announcement).
   */
  recordCheckpoint(record: CheckpointRecord): Promise<boolean>;
  getCheckpoint(
    containerId: string,
    threadId: string,
    commit: string,
  ): Promise<CheckpointRecord | undefined>;
  /** A thread's checkpoints, newest first. */
  listCheckpoints(
    containerId: string,
    threadId: string,
    limit: number,
    cursor?: string,
  ): Promise<Page<CheckpointRecord>>;
  /** Whether a container of this project was ever counted (its quota marker exists). */
  isKnownProject?(clientId: string, projectId: string): Promise<boolean>;
  /**
   * Recounts the quota counters due for it (changed at or before the given time, or full when
   * a start was refused) from the live counted generations, at most `limit` of them; answers
   * the counters it corrected (docs/design.md, "Quota counters are repaired").
   */
  repairQuotaCounters?(changedAtOrBefore: string, limit: number): Promise<QuotaRepair[]>;
  /** Answers when the store is reachable (readiness). */
  ping(): Promise<void>;
}

export type TaskStatus =
  | 'PROVISIONING'
  | 'PENDING'
  | 'ACTIVATING'
  | 'RUNNING'
  | 'DEACTIVATING'
  | 'STOPPING'
  | 'DEPROVISIONING'
  | 'STOPPED';

export interface TaskSpec extends ContainerKey {
  containerId: string;
  generation: number;
  workspacePath: string;
  /** Extra environment for the workspace agent (queue URLs, timeouts, repository). */
  environment: Record<string, string>;
}

export interface TaskInfo {
  taskArn: string;
  containerId: string | undefined;
  generation: number | undefined;
  /** A TaskStatus as the runtime reports it; typed loosely because runtimes may add states. */
  lastStatus: string;
  desiredStatus: string | undefined;
  startedAt: string | undefined;
  stoppedAt: string | undefined;
  stopCode: string | undefined;
  stoppedReason: string | undefined;
  exitCode: number | undefined;
  /** Where the container can be reached (private IP, or 127.0.0.1:port locally). */
  endpoint: string | undefined;
  /** A warm-pool member's slot (its `PoolSlot` tag); `generation` is then the member's. */
  poolSlot?: number | undefined;
}

export interface Runtime {
  /** Where the workspace of this container lives inside its task. */
  workspacePathFor(key: ContainerKey): string;
  /** Idempotent per (containerId, generation): a retried start never makes a second task. */
  startTask(spec: TaskSpec): Promise<TaskInfo>;
  /** Undefined when the runtime no longer knows the task. */
  describeTask(taskArn: string): Promise<TaskInfo | undefined>;
  stopTask(taskArn: string, reason: string): Promise<void>;
  /** Every task berth manages that has not stopped. */
  listTasks(): Promise<TaskInfo[]>;
}

export interface ContainerQueueUrls {
  inputQueueUrl: string;
  outputQueueUrl: string;
}

export interface ContainerQueues {
  /** Idempotent: creating the same generation's queues again returns the same URLs. */
  create(containerId: string, generation: number): Promise<ContainerQueueUrls>;
  delete(urls: ContainerQueueUrls): Promise<void>;
  exists(queueUrl: string): Promise<boolean>;
  /** Messages waiting or being handled on an input queue. */
  messagesInFlight(inputQueueUrl: string): Promise<number>;
  /** Sends a JSON message (e.g. a `thread.open` control message) to a container's queue. */
  send(queueUrl: string, body: object): Promise<void>;
}

export interface EventPublisher {
  publish(events: readonly BerthEvent[]): Promise<void>;
  ping(): Promise<void>;
}
