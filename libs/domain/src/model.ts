import Type, { type Static } from 'typebox';
import {
  CONTAINER_ID_PATTERN,
  ID_PART_PATTERN,
  OPAQUE_ID_PATTERN,
  type ContainerKey,
} from './identity.ts';
import type { BerthEvent } from './events.ts';
import { idleDueAt, lifetimeEndsAt, type ContainerPolicy } from './policy.ts';
import { CONTAINER_STATUSES, type ContainerStatus } from './lifecycle.ts';

const Nullable = <T extends Type.TSchema>(schema: T) => Type.Union([schema, Type.Null()]);
const Timestamp = Nullable(Type.String({ format: 'date-time' }));

/**
 * A container as the store keeps it. One item per containerId holds its current generation;
 * a new generation replaces a stopped or failed one under a condition on the old generation.
 */
export interface ContainerRecord extends ContainerKey {
  containerId: string;
  status: ContainerStatus;
  generation: number;
  /** Session ids, the single source of the session count. */
  sessions: string[];
  taskArn: string | null;
  endpoint: string | null;
  inputQueueUrl: string | null;
  outputQueueUrl: string | null;
  workspacePath: string | null;
  createdAt: string;
  startedAt: string | null;
  lastActivityAt: string;
  idleSince: string | null;
  /** When the container entered `terminating`; the grace period counts from here. */
  terminatingSince: string | null;
  stoppedAt: string | null;
  stopReason: string | null;
  /** Optimistic-lock counter: every write is conditional on it. */
  version: number;
  /**
   * The transactional outbox: events of changes written to this record but not yet known to
   * be published. They are written in the same conditional write as the change, published
   * after it, and cleared once published; whoever next touches the record publishes any
   * left behind by a crash (under the same event ids, so consumers drop duplicates).
   */
  pendingEvents: BerthEvent[];
  /**
   * The sessions a final write took off the record (its `sessions` are then empty): the ones
   * its ending must still end, read with the record itself rather than from an eventually
   * consistent index that may not list a session assigned a moment before.
   */
  endingSessions?: string[];
  /** This generation is a warm-pool member it claimed, not a task started for it. */
  fromPool: boolean;
  /**
   * Its effective lifecycle policy (docs/design.md, "Lifecycle policies and quotas"), kept on
   * the record so the hot path and the reaper need no policy read; absent on records from
   * before policies: the deployment's defaults.
   */
  policy?: ContainerPolicy;
  /** When `container.expiring` was stored (its maxLifetime is near); absent before. */
  expiryNoticeAt?: string;
  /** This generation was counted in its client's quota counters, and is uncounted once final. */
  quotaCounted?: boolean;
  /**
   * The last preview request through the gateway (docs/design.md, "Preview URLs"), written at
   * most every previewTouchIntervalMs (30 s); the idle timeout counts from it too. Absent: none.
   */
  previewActiveAt?: string;
  /**
   * Its dev server (`BERTH_DEV_SERVER_COMMAND`) as the agent last reported it
   * (`devserver.state`); absent when none was reported for this generation.
   */
  devServer?: DevServerRecord;
}

/**
 * The dev server's states: `starting` (its process runs, its port does not answer yet), `up`
 * (its port answers), `crashed` (its process exited; the agent starts it again after a backoff).
 */
export const DEV_SERVER_STATES = ['starting', 'up', 'crashed'] as const;
export type DevServerState = (typeof DEV_SERVER_STATES)[number];

/** A container's dev server as the store keeps it. */
export interface DevServerRecord {
  state: DevServerState;
  /** Its port inside the task: on the container's `endpoint`. */
  port: number;
  /** When it entered this state (the agent's clock). */
  since: string;
  /** How often the agent started it again in this generation. */
  restarts: number;
  /** The report's sequence number: a report not above it is older and changes nothing. */
  sequence: number;
}

export const SESSION_STATUSES = ['active', 'released', 'expired'] as const;
export type SessionStatus = (typeof SESSION_STATUSES)[number];

export interface SessionRecord {
  sessionId: string;
  /** Null for a session released before it was ever assigned (a tombstone). */
  containerId: string | null;
  generation: number | null;
  threadId: string | null;
  status: SessionStatus;
  inputQueueUrl: string | null;
  outputQueueUrl: string | null;
  worktreePath: string | null;
  assignedAt: string | null;
  lastActivityAt: string | null;
  releasedAt: string | null;
  /** Why it left: `released`, `expired`, or the container's stop reason. */
  releaseReason: string | null;
  /** When the container was running and the thread's worktree existed (`session.ready`). */
  readyAt?: string | null;
  /** The worktree's head commit the agent announced when it made the worktree. */
  head?: string | null;
  /**
   * The session's outbox: the event of an ending that no command will retry (an expiry, the
   * end of its container), written with the ending and cleared once published; the reaper's
   * sweep publishes what a failed publish or a crash left here. Absent when empty.
   */
  pendingEvents?: BerthEvent[];
}

/**
 * The decided outcome of a command that could be answered in more than one way, stored under
 * its commandId in the same write as its effect, or alone for a rejection. A redelivery finds
 * it and publishes the same events again, so a command is never answered twice in two ways,
 * whatever changed in between: an assign is never both rejected and assigned, and a stop naming
 * a generation is never both carried out and refused as naming a generation that has since
 * been replaced.
 */
export type CommandOutcomeRecord = AssignOutcomeRecord | StopOutcomeRecord;

interface OutcomeBase {
  commandId: string;
  /** The events that announced the decision, published again unchanged on a redelivery. */
  events: BerthEvent[];
  decidedAt: string;
}

export interface AssignOutcomeRecord extends OutcomeBase {
  type: 'session.assign';
  decision: 'assigned' | 'rejected';
  sessionId: string;
}

/** A `container.stop` that began a graceful stop of one generation. */
export interface StopOutcomeRecord extends OutcomeBase {
  type: 'container.stop';
  decision: 'stopping';
  containerId: string;
  generation: number;
}

/**
 * A checkpoint of a thread: a commit the workspace agent pushed to the thread's branch after a
 * workload run that changed files (or a revert), recorded as it was announced.
 */
export interface CheckpointRecord {
  /** The thread's owner: checkpoints are listed per (container, thread). */
  containerId: string;
  threadId: string;
  /** The session whose message made it. */
  sessionId: string;
  commit: string;
  /** The input message (SQS MessageId) whose run made it, or the revert's request id. */
  messageId: string;
  /** Changed paths, at most 100; `filesTotal` counts them all. */
  files: string[];
  filesTotal: number;
  /** For a revert: the checkpoint whose tree it restored. */
  revertOf: string | null;
  /** When the agent made it (orders a thread's checkpoints). */
  createdAt: string;
  recordedAt: string;
}

export const CheckpointJsonSchema = Type.Object(
  {
    commit: Type.String(),
    threadId: Type.String(),
    sessionId: Type.String(),
    messageId: Type.String(),
    files: Type.Array(Type.String()),
    filesTotal: Type.Integer({ minimum: 0 }),
    revertOf: Nullable(Type.String()),
    createdAt: Type.String({ format: 'date-time' }),
    recordedAt: Type.String({ format: 'date-time' }),
  },
  { $id: 'Checkpoint', additionalProperties: false },
);
export type CheckpointJson = Static<typeof CheckpointJsonSchema>;

export function toCheckpointJson(record: CheckpointRecord): CheckpointJson {
  return {
    commit: record.commit,
    threadId: record.threadId,
    sessionId: record.sessionId,
    messageId: record.messageId,
    files: [...record.files],
    filesTotal: record.filesTotal,
    revertOf: record.revertOf,
    createdAt: record.createdAt,
    recordedAt: record.recordedAt,
  };
}

export const KEPT_ALIVE_REASONS = [
  'sessions',
  'messages_in_flight',
  'starting',
  'preview',
] as const;
export type KeptAliveReason = (typeof KEPT_ALIVE_REASONS)[number];

export const ContainerJsonSchema = Type.Object(
  {
    containerId: Type.String({ pattern: CONTAINER_ID_PATTERN }),
    clientId: Type.String({ pattern: ID_PART_PATTERN }),
    projectId: Type.String({ pattern: ID_PART_PATTERN }),
    userId: Type.String({ pattern: ID_PART_PATTERN }),
    status: Type.Enum(CONTAINER_STATUSES),
    generation: Type.Integer({ minimum: 1 }),
    sessionCount: Type.Integer({ minimum: 0 }),
    sessions: Type.Array(Type.String()),
    taskArn: Nullable(Type.String()),
    endpoint: Nullable(Type.String()),
    inputQueueUrl: Nullable(Type.String()),
    outputQueueUrl: Nullable(Type.String()),
    workspacePath: Nullable(Type.String()),
    createdAt: Timestamp,
    startedAt: Timestamp,
    lastActivityAt: Timestamp,
    idleSince: Timestamp,
    idleStopAt: Timestamp,
    expiresAt: Timestamp,
    keptAliveBy: Type.Array(Type.Enum(KEPT_ALIVE_REASONS)),
    previewActiveAt: Timestamp,
    stoppedAt: Timestamp,
    stopReason: Nullable(Type.String()),
    fromPool: Type.Boolean(),
    devServer: Nullable(
      Type.Object(
        {
          state: Type.Enum(DEV_SERVER_STATES),
          port: Type.Integer({ minimum: 1, maximum: 65535 }),
          url: Nullable(Type.String()),
          since: Type.String({ format: 'date-time' }),
          restarts: Type.Integer({ minimum: 0 }),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { $id: 'Container', additionalProperties: false },
);
export type ContainerJson = Static<typeof ContainerJsonSchema>;

export const SessionJsonSchema = Type.Object(
  {
    sessionId: Type.String({ pattern: OPAQUE_ID_PATTERN }),
    containerId: Nullable(Type.String()),
    threadId: Nullable(Type.String()),
    status: Type.Enum(SESSION_STATUSES),
    inputQueueUrl: Nullable(Type.String()),
    outputQueueUrl: Nullable(Type.String()),
    worktreePath: Nullable(Type.String()),
    assignedAt: Timestamp,
    lastActivityAt: Timestamp,
    releasedAt: Timestamp,
    readyAt: Timestamp,
  },
  { $id: 'Session', additionalProperties: false },
);
export type SessionJson = Static<typeof SessionJsonSchema>;

export interface LivenessInput {
  /** Messages on the container's input queue not yet finished; unknown counts as none. */
  messagesInFlight?: number;
  idleTimeoutMs: number;
  /** Now, for what depends on it (a recent preview request); absent: nothing that does. */
  now?: string;
}

/** The preview gateway records activity at most this often per container (a touch). */
export const PREVIEW_TOUCH_INTERVAL_MS = 30_000;

/**
 * How often a container's preview activity is written: every PREVIEW_TOUCH_INTERVAL_MS, or
 * every half of its idle timeout when that is shorter, so a preview keeps alive even a
 * container whose idle timeout is shorter than the interval.
 */
export function previewTouchIntervalMs(container: ContainerRecord, idleTimeoutMs: number): number {
  const timeout = container.policy?.idleTimeoutMs ?? idleTimeoutMs;
  return Math.min(PREVIEW_TOUCH_INTERVAL_MS, Math.max(1, Math.floor(timeout / 2)));
}

/** When the container became idle for the idle timeout: its last session left, or its last preview request. */
export function idleFrom(container: ContainerRecord): string | null {
  if (!container.idleSince) return null;
  const preview = container.previewActiveAt;
  return preview !== undefined && preview > container.idleSince ? preview : container.idleSince;
}

/**
 * True while a preview request keeps the container from its idle stop: one came within its
 * idle timeout (the policy's, else the deployment's).
 */
export function keptAliveByPreview(
  container: ContainerRecord,
  now: string,
  idleTimeoutMs: number,
): boolean {
  if (!container.previewActiveAt || container.status !== 'running') return false;
  const timeout = container.policy?.idleTimeoutMs ?? idleTimeoutMs;
  return Date.parse(container.previewActiveAt) + timeout > Date.parse(now);
}

/** When the container will be stopped if nothing changes, or null if it is not due to stop. */
export function idleStopAt(container: ContainerRecord, idleTimeoutMs: number): string | null {
  const from = idleFrom(container);
  if (container.status !== 'running' || container.sessions.length > 0 || !from) {
    return null;
  }
  // A container's own policy (docs/design.md, "Lifecycle policies") wins over the deployment's.
  if (container.policy) return idleDueAt(from, container.policy);
  return new Date(Date.parse(from) + idleTimeoutMs).toISOString();
}

/** When a live container will be stopped for its policy's maxLifetime, even if busy; else null. */
export function expiresAt(container: ContainerRecord): string | null {
  if (!container.policy || !isLiveStatus(container.status)) return null;
  return lifetimeEndsAt(container.createdAt, container.policy);
}

const isLiveStatus = (status: ContainerStatus) =>
  status === 'starting' || status === 'running' || status === 'terminating';

/**
 * The earliest moment the reaper has something to do for this container under its own policy
 * (its idle stop, its expiry notice, its lifetime stop), the sort key of the sparse due index;
 * null when nothing is due (not running, or a record from before policies: those are found
 * through the idle index with the deployment's timeout).
 */
export function containerDueAt(container: ContainerRecord): string | null {
  const policy = container.policy;
  if (!policy || container.status !== 'running') return null;
  const due: string[] = [];
  const idle = idleStopAt(container, policy.idleTimeoutMs);
  if (idle) due.push(idle);
  const end = lifetimeEndsAt(container.createdAt, policy);
  if (end) {
    due.push(end);
    if (!container.expiryNoticeAt) due.push(expiryNoticeDueAt(container.createdAt, end, policy));
  }
  return due.length === 0 ? null : due.reduce((a, b) => (a < b ? a : b));
}

/** When `container.expiring` is due: BERTH_EXPIRY_NOTICE before the end, never before the start. */
export function expiryNoticeDueAt(createdAt: string, end: string, policy: ContainerPolicy): string {
  const at = Math.max(Date.parse(createdAt), Date.parse(end) - policy.expiryNoticeMs);
  return new Date(at).toISOString();
}

/** What keeps the container alive now, so an operator can always see why it still runs. */
export function keptAliveBy(
  container: ContainerRecord,
  messagesInFlight = 0,
  preview?: { now: string; idleTimeoutMs: number },
): KeptAliveReason[] {
  const reasons: KeptAliveReason[] = [];
  if (container.status === 'starting') reasons.push('starting');
  if (container.status !== 'starting' && container.status !== 'running') return reasons;
  if (container.sessions.length > 0) reasons.push('sessions');
  if (messagesInFlight > 0) reasons.push('messages_in_flight');
  if (preview && keptAliveByPreview(container, preview.now, preview.idleTimeoutMs)) {
    reasons.push('preview');
  }
  return reasons;
}

export function toContainerJson(
  container: ContainerRecord,
  liveness: LivenessInput,
): ContainerJson {
  return {
    containerId: container.containerId,
    clientId: container.clientId,
    projectId: container.projectId,
    userId: container.userId,
    status: container.status,
    generation: container.generation,
    sessionCount: container.sessions.length,
    sessions: [...container.sessions],
    taskArn: container.taskArn,
    endpoint: container.endpoint,
    inputQueueUrl: container.inputQueueUrl,
    outputQueueUrl: container.outputQueueUrl,
    workspacePath: container.workspacePath,
    createdAt: container.createdAt,
    startedAt: container.startedAt,
    lastActivityAt: container.lastActivityAt,
    idleSince: container.idleSince,
    idleStopAt:
      (liveness.messagesInFlight ?? 0) > 0 ? null : idleStopAt(container, liveness.idleTimeoutMs),
    expiresAt: expiresAt(container),
    keptAliveBy: keptAliveBy(
      container,
      liveness.messagesInFlight,
      liveness.now ? { now: liveness.now, idleTimeoutMs: liveness.idleTimeoutMs } : undefined,
    ),
    previewActiveAt: container.previewActiveAt ?? null,
    stoppedAt: container.stoppedAt,
    stopReason: container.stopReason,
    fromPool: container.fromPool,
    devServer: devServerJson(container),
  };
}

/**
 * The dev server as the container JSON shows it: null unless the container is live and its
 * agent reported one; `url` is where it answers, on the container's endpoint (null while the
 * endpoint is not known).
 */
export function devServerJson(container: ContainerRecord): ContainerJson['devServer'] {
  const devServer = container.devServer;
  if (!devServer || !isLiveStatus(container.status)) return null;
  return {
    state: devServer.state,
    port: devServer.port,
    url: container.endpoint ? `http://${hostOf(container.endpoint)}:${devServer.port}` : null,
    since: devServer.since,
    restarts: devServer.restarts,
  };
}

/** An IPv6 address is written in brackets in a URL. */
const hostOf = (address: string): string => (address.includes(':') ? `[${address}]` : address);

export function toSessionJson(session: SessionRecord): SessionJson {
  return {
    sessionId: session.sessionId,
    containerId: session.containerId,
    threadId: session.threadId,
    status: session.status,
    inputQueueUrl: session.inputQueueUrl,
    outputQueueUrl: session.outputQueueUrl,
    worktreePath: session.worktreePath,
    assignedAt: session.assignedAt,
    lastActivityAt: session.lastActivityAt,
    releasedAt: session.releasedAt,
    readyAt: session.readyAt ?? null,
  };
}

/** A new generation's record, before it has a task or queues. */
export function newContainerRecord(
  key: ContainerKey & { containerId: string },
  generation: number,
  now: string,
): ContainerRecord {
  return {
    ...key,
    status: 'starting',
    generation,
    sessions: [],
    taskArn: null,
    endpoint: null,
    inputQueueUrl: null,
    outputQueueUrl: null,
    workspacePath: null,
    createdAt: now,
    startedAt: null,
    lastActivityAt: now,
    idleSince: now,
    terminatingSince: null,
    stoppedAt: null,
    stopReason: null,
    version: 1,
    pendingEvents: [],
    fromPool: false,
  };
}
