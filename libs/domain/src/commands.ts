import Type, { type Static } from 'typebox';
import { InvalidArgumentError } from './errors.ts';
import { CONTAINER_ID_PATTERN, ID_PART_PATTERN, OPAQUE_ID_PATTERN } from './identity.ts';
import { DEV_SERVER_STATES } from './model.ts';
import { validator } from './validation.ts';

const IdPart = Type.String({ pattern: ID_PART_PATTERN, minLength: 1, maxLength: 63 });
const OpaqueId = Type.String({ pattern: OPAQUE_ID_PATTERN, minLength: 1, maxLength: 128 });
const Reason = Type.String({ minLength: 1, maxLength: 200 });
const CommandId = Type.String({ minLength: 1, maxLength: 128, pattern: OPAQUE_ID_PATTERN });

const closed = { additionalProperties: false } as const;

export const SessionAssignPayload = Type.Object(
  {
    sessionId: OpaqueId,
    clientId: IdPart,
    projectId: IdPart,
    userId: IdPart,
    threadId: Type.Optional(OpaqueId),
  },
  closed,
);
export const SessionReleasePayload = Type.Object({ sessionId: OpaqueId }, closed);
export const SessionTouchPayload = Type.Object({ sessionId: OpaqueId }, closed);
export const ContainerStopPayload = Type.Object(
  {
    containerId: Type.String({ pattern: CONTAINER_ID_PATTERN }),
    reason: Type.Optional(Reason),
    /** The generation meant; a stop for another generation is refused. */
    generation: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  closed,
);

/** An ISO-8601 UTC instant as `Date.toISOString` writes it. */
const ISO_INSTANT = '^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d(\\.\\d{1,9})?Z$';
const Commit = Type.String({ pattern: '^[0-9a-f]{40}([0-9a-f]{24})?$' });

/** The workspace agent's word that a session's worktree exists (it follows `thread.open`). */
export const ThreadReadyPayload = Type.Object(
  {
    sessionId: OpaqueId,
    threadId: OpaqueId,
    containerId: Type.String({ pattern: CONTAINER_ID_PATTERN }),
    generation: Type.Integer({ minimum: 1 }),
    worktreePath: Type.String({ minLength: 1, maxLength: 4096 }),
    head: Commit,
  },
  closed,
);

/** The workspace agent's word that a checkpoint (or a revert) is on the thread's branch. */
export const CheckpointRecordPayload = Type.Object(
  {
    sessionId: OpaqueId,
    threadId: OpaqueId,
    containerId: Type.String({ pattern: CONTAINER_ID_PATTERN }),
    generation: Type.Integer({ minimum: 1 }),
    commit: Commit,
    messageId: Type.String({ minLength: 1, maxLength: 128 }),
    files: Type.Array(Type.String({ maxLength: 4096 }), { maxItems: 100 }),
    filesTotal: Type.Integer({ minimum: 0 }),
    revertOf: Type.Optional(Commit),
    createdAt: Type.String({ pattern: ISO_INSTANT }),
  },
  closed,
);

/** The workspace agent's word on its dev server (`BERTH_DEV_SERVER_COMMAND`). */
export const DevServerStatePayload = Type.Object(
  {
    containerId: Type.String({ pattern: CONTAINER_ID_PATTERN }),
    generation: Type.Integer({ minimum: 1 }),
    state: Type.Enum(DEV_SERVER_STATES),
    port: Type.Integer({ minimum: 1, maximum: 65535 }),
    restarts: Type.Integer({ minimum: 0 }),
    since: Type.String({ pattern: ISO_INSTANT }),
    /** 1, 2, 3... per generation: SQS may reorder, and an older state never wins. */
    sequence: Type.Integer({ minimum: 1 }),
  },
  closed,
);

const command = <K extends string, P extends Type.TSchema>(type: K, payload: P) =>
  Type.Object({ type: Type.Literal(type), commandId: CommandId, payload }, closed);

export const SessionAssignCommand = command('session.assign', SessionAssignPayload);
export const SessionReleaseCommand = command('session.release', SessionReleasePayload);
export const SessionTouchCommand = command('session.touch', SessionTouchPayload);
export const ContainerStopCommand = command('container.stop', ContainerStopPayload);
export const ThreadReadyCommand = command('thread.ready', ThreadReadyPayload);
export const CheckpointRecordCommand = command('checkpoint.record', CheckpointRecordPayload);
export const DevServerStateCommand = command('devserver.state', DevServerStatePayload);

export const CommandSchema = Type.Union(
  [
    SessionAssignCommand,
    SessionReleaseCommand,
    SessionTouchCommand,
    ContainerStopCommand,
    ThreadReadyCommand,
    CheckpointRecordCommand,
    DevServerStateCommand,
  ],
  { $id: 'Command' },
);

export type SessionAssign = Static<typeof SessionAssignCommand>;
export type SessionRelease = Static<typeof SessionReleaseCommand>;
export type SessionTouch = Static<typeof SessionTouchCommand>;
export type ContainerStop = Static<typeof ContainerStopCommand>;
export type ThreadReady = Static<typeof ThreadReadyCommand>;
export type CheckpointRecordCommandT = Static<typeof CheckpointRecordCommand>;
export type DevServerStateReport = Static<typeof DevServerStateCommand>;
export type Command =
  | SessionAssign
  | SessionRelease
  | SessionTouch
  | ContainerStop
  | ThreadReady
  | CheckpointRecordCommandT
  | DevServerStateReport;
export type CommandType = Command['type'];

export const COMMAND_TYPES: readonly CommandType[] = [
  'session.assign',
  'session.release',
  'session.touch',
  'container.stop',
  'thread.ready',
  'checkpoint.record',
  'devserver.state',
];

const byType = {
  'session.assign': validator<SessionAssign>(SessionAssignCommand),
  'session.release': validator<SessionRelease>(SessionReleaseCommand),
  'session.touch': validator<SessionTouch>(SessionTouchCommand),
  'container.stop': validator<ContainerStop>(ContainerStopCommand),
  'thread.ready': validator<ThreadReady>(ThreadReadyCommand),
  'checkpoint.record': validator<CheckpointRecordCommandT>(CheckpointRecordCommand),
  'devserver.state': validator<DevServerStateReport>(DevServerStateCommand),
} as const;

export interface RejectedCommand {
  reason: string;
  field?: string;
  /** The commandId when the body had a usable one, so the rejection can be correlated. */
  commandId?: string;
  type?: string;
}

export type ParsedCommand =
  { ok: true; command: Command } | { ok: false; rejection: RejectedCommand };

/**
 * Parses a queue message body. Never throws: a bad body is a permanent outcome
 * (`command.rejected`), not a failure to retry.
 */
export function parseCommand(body: string): ParsedCommand {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    return { ok: false, rejection: { reason: 'body is not valid JSON' } };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, rejection: { reason: 'body must be a JSON object' } };
  }
  const record = value as Record<string, unknown>;
  const commandId =
    typeof record.commandId === 'string' && /^[A-Za-z0-9._:-]{1,128}$/.test(record.commandId)
      ? record.commandId
      : undefined;
  const type = typeof record.type === 'string' ? record.type.slice(0, 64) : undefined;
  const base = { ...(commandId && { commandId }), ...(type && { type }) };
  if (record.type === undefined) {
    return { ok: false, rejection: { ...base, reason: 'type is required', field: 'type' } };
  }
  // Own keys only: `in` would accept the names every object inherits (`constructor`, `toString`).
  if (typeof record.type !== 'string' || !Object.hasOwn(byType, record.type)) {
    return {
      ok: false,
      rejection: {
        ...base,
        reason: `type must be one of ${COMMAND_TYPES.join(', ')}`,
        field: 'type',
      },
    };
  }
  try {
    const command = byType[record.type as CommandType].parse(value);
    return { ok: true, command };
  } catch (error) {
    if (error instanceof InvalidArgumentError) {
      return {
        ok: false,
        rejection: { ...base, reason: error.message, ...(error.field && { field: error.field }) },
      };
    }
    throw error;
  }
}
