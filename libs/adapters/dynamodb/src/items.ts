/**
 * Records ⇄ DynamoDB items. Nulls are not stored (an absent attribute costs nothing and
 * keeps sparse indexes sparse) and come back as null; the attributes derived for indexes
 * and TTL are computed here on write and never reach a record on read.
 */
import {
  CONTAINER_STATUSES,
  DEV_SERVER_STATES,
  SESSION_STATUSES,
  UnavailableError,
  threadRefName,
  containerDueAt,
  type CheckpointRecord,
  type CommandOutcomeRecord,
  type ContainerPolicy,
  type ContainerRecord,
  type DevServerRecord,
  type SessionRecord,
} from '@berth/domain';

export type Item = Record<string, unknown>;

const CONTAINER_FIELDS = [
  'containerId',
  'clientId',
  'projectId',
  'userId',
  'status',
  'generation',
  'sessions',
  'taskArn',
  'endpoint',
  'inputQueueUrl',
  'outputQueueUrl',
  'workspacePath',
  'createdAt',
  'startedAt',
  'lastActivityAt',
  'idleSince',
  'terminatingSince',
  'stoppedAt',
  'stopReason',
  'version',
  'pendingEvents',
  'endingSessions',
  'fromPool',
  'policy',
  'expiryNoticeAt',
  'quotaCounted',
  'devServer',
  'previewActiveAt',
] as const satisfies readonly (keyof ContainerRecord)[];

const SESSION_FIELDS = [
  'sessionId',
  'containerId',
  'generation',
  'threadId',
  'status',
  'inputQueueUrl',
  'outputQueueUrl',
  'worktreePath',
  'assignedAt',
  'lastActivityAt',
  'releasedAt',
  'releaseReason',
  'readyAt',
  'head',
  'pendingEvents',
] as const satisfies readonly (keyof SessionRecord)[];

// A field added to a record but not to the lists above would silently be lost on write.
const _everyContainerField: [
  Exclude<keyof ContainerRecord, (typeof CONTAINER_FIELDS)[number]>,
] extends [never]
  ? true
  : never = true;
const _everySessionField: [Exclude<keyof SessionRecord, (typeof SESSION_FIELDS)[number]>] extends [
  never,
]
  ? true
  : never = true;

/** Partition value of `idle-index`, present only on containers the reaper may stop. */
export const IDLE_KEY = 'idle';
/** Partition value of `due-index`: running containers with a policy (its sort key `dueAt`). */
export const DUE_KEY = 'due';
/** Partition value of `active-index`, present only on active sessions. */
export const ACTIVE_KEY = 'active';
/**
 * The other partition of `active-index`: ended sessions whose outbox is not empty, so the
 * sweep reads only those (an index of their own would cost a table update for a handful).
 */
export const PENDING_KEY = 'pending';

const DAY_SECONDS = 24 * 60 * 60;
/**
 * Released sessions are tombstones: they must outlive SQS's 14-day maximum retention so a
 * late duplicate `session.assign` still finds them and is refused.
 */
export const SESSION_RETENTION_SECONDS = 15 * DAY_SECONDS;

export function clientProjectKey(clientId: string, projectId: string): string {
  return `${clientId}#${projectId}`;
}

function epochSecondsAfter(timestamp: string | null, seconds: number, now: Date): number {
  const parsed = timestamp === null ? Number.NaN : Date.parse(timestamp);
  const from = Number.isNaN(parsed) ? now.getTime() : parsed;
  return Math.floor(from / 1000) + seconds;
}

function copyPresent(record: object, fields: readonly string[]): Item {
  const item: Item = {};
  const values = record as Record<string, unknown>;
  for (const field of fields) {
    const value = values[field];
    if (value !== null && value !== undefined) item[field] = value;
  }
  return item;
}

export function isIdle(record: ContainerRecord): boolean {
  return record.status === 'running' && record.sessions.length === 0 && record.idleSince !== null;
}

export function toContainerItem(record: ContainerRecord, _now: Date): Item {
  const item = copyPresent(record, CONTAINER_FIELDS);
  item.sessions = [...record.sessions];
  if (!record.endingSessions?.length) delete item.endingSessions;
  // Events are stored as one JSON string: their payloads hold nulls and nested objects that
  // need no index, and an absent attribute (no pending events) costs nothing.
  delete item.pendingEvents;
  // Absent means false (as on records older than the pool): nothing stored for a cold start.
  delete item.fromPool;
  if (record.fromPool) item.fromPool = true;
  delete item.quotaCounted;
  if (record.quotaCounted) item.quotaCounted = true;
  if (record.pendingEvents.length > 0) item.pendingEvents = JSON.stringify(record.pendingEvents);
  // The policy as one JSON string: it holds nulls and needs no index.
  delete item.policy;
  if (record.policy) item.policy = JSON.stringify(record.policy);
  item.clientProject = clientProjectKey(record.clientId, record.projectId);
  if (isIdle(record)) item.idleKey = IDLE_KEY;
  // The sparse due index: when the reaper next has something to do for it under its policy.
  const dueAt = containerDueAt(record);
  if (dueAt !== null) {
    item.dueKey = DUE_KEY;
    item.dueAt = dueAt;
  }
  // A container item is never expired: it carries the last generation, and the contract
  // wants the next start one higher, however long after. One small item per
  // (client, project, user) is the whole cost.
  return item;
}

export function toSessionItem(record: SessionRecord, now: Date): Item {
  const item = copyPresent(record, SESSION_FIELDS);
  delete item.pendingEvents;
  const pending = record.pendingEvents ?? [];
  if (pending.length > 0) item.pendingEvents = JSON.stringify(pending);
  if (record.status === 'active') {
    item.activeKey = ACTIVE_KEY;
  } else {
    if (pending.length > 0) item.activeKey = PENDING_KEY;
    item.expiresAt = epochSecondsAfter(record.releasedAt, SESSION_RETENTION_SECONDS, now);
  }
  return item;
}

function malformed(kind: string, item: Item, field: string): UnavailableError {
  const id = typeof item.containerId === 'string' ? item.containerId : item.sessionId;
  return new UnavailableError(`stored ${kind} ${String(id)} is malformed: bad ${field}`);
}

function requireString(kind: string, item: Item, field: string): string {
  const value = item[field];
  if (typeof value !== 'string') throw malformed(kind, item, field);
  return value;
}

function requireInteger(kind: string, item: Item, field: string): number {
  const value = item[field];
  if (typeof value !== 'number' || !Number.isInteger(value)) throw malformed(kind, item, field);
  return value;
}

function optional<T>(item: Item, field: string): T | null {
  const value = item[field];
  return value === undefined || value === null ? null : (value as T);
}

export function fromContainerItem(item: Item): ContainerRecord {
  const status = requireString('container', item, 'status');
  if (!(CONTAINER_STATUSES as readonly string[]).includes(status))
    throw malformed('container', item, 'status');
  const sessions = item.sessions ?? [];
  if (!Array.isArray(sessions) || !sessions.every((id) => typeof id === 'string')) {
    throw malformed('container', item, 'sessions');
  }
  return {
    containerId: requireString('container', item, 'containerId'),
    clientId: requireString('container', item, 'clientId'),
    projectId: requireString('container', item, 'projectId'),
    userId: requireString('container', item, 'userId'),
    status: status as ContainerRecord['status'],
    generation: requireInteger('container', item, 'generation'),
    sessions,
    taskArn: optional(item, 'taskArn'),
    endpoint: optional(item, 'endpoint'),
    inputQueueUrl: optional(item, 'inputQueueUrl'),
    outputQueueUrl: optional(item, 'outputQueueUrl'),
    workspacePath: optional(item, 'workspacePath'),
    createdAt: requireString('container', item, 'createdAt'),
    startedAt: optional(item, 'startedAt'),
    lastActivityAt: requireString('container', item, 'lastActivityAt'),
    idleSince: optional(item, 'idleSince'),
    terminatingSince: optional(item, 'terminatingSince'),
    stoppedAt: optional(item, 'stoppedAt'),
    stopReason: optional(item, 'stopReason'),
    version: requireInteger('container', item, 'version'),
    pendingEvents: pendingEventsOf(item),
    ...(Array.isArray(item.endingSessions) && item.endingSessions.length > 0
      ? { endingSessions: item.endingSessions.filter((id) => typeof id === 'string') }
      : {}),
    // Records written before the pool existed have no such attribute: not from the pool.
    fromPool: item.fromPool === true,
    ...(typeof item.policy === 'string' ? { policy: policyOf(item) } : {}),
    ...(typeof item.expiryNoticeAt === 'string' ? { expiryNoticeAt: item.expiryNoticeAt } : {}),
    ...(item.quotaCounted === true ? { quotaCounted: true } : {}),
    ...(item.devServer === undefined || item.devServer === null
      ? {}
      : { devServer: devServerOf(item) }),
    ...(typeof item.previewActiveAt === 'string' ? { previewActiveAt: item.previewActiveAt } : {}),
  };
}

function devServerOf(item: Item): DevServerRecord {
  const raw = item.devServer as Partial<Record<keyof DevServerRecord, unknown>> | undefined;
  if (
    typeof raw === 'object' &&
    (DEV_SERVER_STATES as readonly unknown[]).includes(raw.state) &&
    typeof raw.port === 'number' &&
    typeof raw.since === 'string' &&
    typeof raw.restarts === 'number' &&
    typeof raw.sequence === 'number'
  ) {
    return {
      state: raw.state as DevServerRecord['state'],
      port: raw.port,
      since: raw.since,
      restarts: raw.restarts,
      sequence: raw.sequence,
    };
  }
  throw malformed('container', item, 'devServer');
}

function policyOf(item: Item): ContainerPolicy {
  try {
    const parsed = JSON.parse(item.policy as string) as Partial<ContainerPolicy> | null;
    if (
      parsed &&
      typeof parsed.idleTimeoutMs === 'number' &&
      typeof parsed.maxSessions === 'number'
    ) {
      return {
        idleTimeoutMs: parsed.idleTimeoutMs,
        idleTimeoutSince: parsed.idleTimeoutSince ?? null,
        maxLifetimeMs: parsed.maxLifetimeMs ?? null,
        maxSessions: parsed.maxSessions,
        expiryNoticeMs: parsed.expiryNoticeMs ?? 0,
      };
    }
  } catch {
    // fall through: reported below
  }
  throw malformed('container', item, 'policy');
}

function pendingEventsOf(item: Item): ContainerRecord['pendingEvents'] {
  const raw = item.pendingEvents;
  if (raw === undefined || raw === null) return [];
  try {
    const parsed: unknown = typeof raw === 'string' ? JSON.parse(raw) : raw;
    if (Array.isArray(parsed)) return parsed as ContainerRecord['pendingEvents'];
  } catch {
    // fall through: reported below
  }
  throw malformed('container', item, 'pendingEvents');
}

export function fromSessionItem(item: Item): SessionRecord {
  const status = requireString('session', item, 'status');
  if (!(SESSION_STATUSES as readonly string[]).includes(status))
    throw malformed('session', item, 'status');
  return {
    sessionId: requireString('session', item, 'sessionId'),
    containerId: optional(item, 'containerId'),
    generation: optional(item, 'generation'),
    threadId: optional(item, 'threadId'),
    status: status as SessionRecord['status'],
    inputQueueUrl: optional(item, 'inputQueueUrl'),
    outputQueueUrl: optional(item, 'outputQueueUrl'),
    worktreePath: optional(item, 'worktreePath'),
    assignedAt: optional(item, 'assignedAt'),
    lastActivityAt: optional(item, 'lastActivityAt'),
    releasedAt: optional(item, 'releasedAt'),
    releaseReason: optional(item, 'releaseReason'),
    // Absent rather than null when never set, so records read back equal records written.
    ...(typeof item.readyAt === 'string' ? { readyAt: item.readyAt } : {}),
    ...(typeof item.head === 'string' ? { head: item.head } : {}),
    ...(item.pendingEvents === undefined
      ? {}
      : { pendingEvents: pendingEventsOf({ ...item, containerId: item.sessionId }) }),
  };
}

/**
 * Command outcomes live in the sessions table (one table less to provision, grant and back up)
 * under a key no session can have: session ids never contain `/`. They carry none of the
 * indexed attributes (`containerId`, `threadId`, `activeKey`), so no index ever lists them.
 */
export function outcomeKey(commandId: string): string {
  return `command/${commandId}`;
}

const OUTCOME_RECORD_TYPE = 'command-outcome';

export function toOutcomeItem(record: CommandOutcomeRecord, now: Date): Item {
  return {
    sessionId: outcomeKey(record.commandId),
    recordType: OUTCOME_RECORD_TYPE,
    commandId: record.commandId,
    commandType: record.type,
    decision: record.decision,
    ...(record.type === 'session.assign'
      ? { subjectSessionId: record.sessionId }
      : { subjectContainerId: record.containerId, subjectGeneration: record.generation }),
    events: JSON.stringify(record.events),
    decidedAt: record.decidedAt,
    // As long as a released session's tombstone: a redelivery SQS still holds finds it.
    expiresAt: epochSecondsAfter(record.decidedAt, SESSION_RETENTION_SECONDS, now),
  };
}

export function fromOutcomeItem(item: Item): CommandOutcomeRecord {
  const kind = 'command outcome';
  const decision = requireString(kind, item, 'decision');
  const type = requireString(kind, item, 'commandType');
  let events: unknown;
  try {
    events = JSON.parse(requireString(kind, item, 'events'));
  } catch {
    throw malformed(kind, item, 'events');
  }
  if (!Array.isArray(events)) throw malformed(kind, item, 'events');
  const common = {
    commandId: requireString(kind, item, 'commandId'),
    events: events as CommandOutcomeRecord['events'],
    decidedAt: requireString(kind, item, 'decidedAt'),
  };
  if (type === 'container.stop') {
    if (decision !== 'stopping') throw malformed(kind, item, 'decision');
    const generation = item['subjectGeneration'];
    if (typeof generation !== 'number' || !Number.isInteger(generation))
      throw malformed(kind, item, 'subjectGeneration');
    return {
      ...common,
      type,
      decision,
      containerId: requireString(kind, item, 'subjectContainerId'),
      generation,
    };
  }
  if (type !== 'session.assign') throw malformed(kind, item, 'commandType');
  if (decision !== 'assigned' && decision !== 'rejected') throw malformed(kind, item, 'decision');
  return {
    ...common,
    type,
    decision,
    sessionId: requireString(kind, item, 'subjectSessionId'),
  };
}

/**
 * Checkpoints live in the sessions table too, as two items written together, under keys no
 * session can have (`/` is not in a session id): `checkpoint/<containerId>/<threadRef>/<commit>`
 * answers "is this commit a checkpoint of that thread" with one GetItem, and
 * `checkpoints/<containerId>/<threadRef>/<createdAt>/<commit>`, whose `threadId` attribute is
 * `checkpoints/<containerId>/<threadRef>`, puts them in `thread-index` in time order (a thread
 * id never contains `/`, so no session shares that partition). Neither carries `containerId`
 * or `activeKey`, so no other index lists them.
 */
export function checkpointKey(containerId: string, threadId: string, commit: string): string {
  return `checkpoint/${containerId}/${threadRefName(threadId)}/${commit}`;
}

export function checkpointLogPartition(containerId: string, threadId: string): string {
  return `checkpoints/${containerId}/${threadRefName(threadId)}`;
}

const CHECKPOINT_RECORD_TYPE = 'checkpoint';

export function toCheckpointItems(record: CheckpointRecord): { byCommit: Item; inLog: Item } {
  const body: Item = {
    recordType: CHECKPOINT_RECORD_TYPE,
    ownerContainerId: record.containerId,
    checkpointThreadId: record.threadId,
    subjectSessionId: record.sessionId,
    commit: record.commit,
    messageId: record.messageId,
    files: JSON.stringify(record.files),
    filesTotal: record.filesTotal,
    ...(record.revertOf === null ? {} : { revertOf: record.revertOf }),
    createdAt: record.createdAt,
    recordedAt: record.recordedAt,
  };
  const partition = checkpointLogPartition(record.containerId, record.threadId);
  return {
    byCommit: {
      ...body,
      sessionId: checkpointKey(record.containerId, record.threadId, record.commit),
    },
    inLog: {
      ...body,
      sessionId: `${partition}/${record.createdAt}/${record.commit}`,
      threadId: partition,
    },
  };
}

export function fromCheckpointItem(item: Item): CheckpointRecord {
  const kind = 'checkpoint';
  let files: unknown;
  try {
    files = JSON.parse(requireString(kind, item, 'files'));
  } catch {
    throw malformed(kind, item, 'files');
  }
  if (!Array.isArray(files) || !files.every((f) => typeof f === 'string'))
    throw malformed(kind, item, 'files');
  const filesTotal = item.filesTotal;
  if (typeof filesTotal !== 'number') throw malformed(kind, item, 'filesTotal');
  return {
    containerId: requireString(kind, item, 'ownerContainerId'),
    threadId: requireString(kind, item, 'checkpointThreadId'),
    sessionId: requireString(kind, item, 'subjectSessionId'),
    commit: requireString(kind, item, 'commit'),
    messageId: requireString(kind, item, 'messageId'),
    files,
    filesTotal,
    revertOf: optional(item, 'revertOf'),
    createdAt: requireString(kind, item, 'createdAt'),
    recordedAt: requireString(kind, item, 'recordedAt'),
  };
}
