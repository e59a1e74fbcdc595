import {
  ConflictError,
  InvalidArgumentError,
  NotFoundError,
  makeEvent,
  threadRefName,
  type BerthEvent,
  type CheckpointRecord,
  type CheckpointRecordCommandT,
  type Page,
  type SessionRecord,
} from '@berth/domain';
import { silentLogger, type CoreDeps } from './deps.ts';

/** A thread's checkpoints cause their own events: one commit of one thread is announced once. */
const checkpointCause = (record: Pick<CheckpointRecord, 'containerId' | 'threadId' | 'commit'>) =>
  `checkpoint/${record.containerId}/${threadRefName(record.threadId)}/${record.commit}`;

export const MAX_CHECKPOINT_PAGE = 100;

/**
 * Checkpoints as berth knows them: recorded when the workspace agent announces one
 * (`checkpoint.record`, after its push), listed from the store (never from git), and the
 * revert a client asks for, carried out by the agent.
 */
export class Checkpoints {
  private readonly deps: CoreDeps;

  constructor(deps: CoreDeps) {
    this.deps = deps;
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  /**
   * Records an announced checkpoint and publishes `session.checkpointed` (and, for a revert,
   * `session.reverted`); a repeat publishes the same event ids again. An announcement that
   * names a session of another container or thread is ignored.
   */
  async record(command: CheckpointRecordCommandT): Promise<CheckpointRecord | undefined> {
    const { payload } = command;
    const session = await this.deps.store.getSession(payload.sessionId);
    if (
      !session ||
      session.containerId !== payload.containerId ||
      session.threadId !== payload.threadId
    ) {
      this.log.warn(
        { sessionId: payload.sessionId, containerId: payload.containerId, commit: payload.commit },
        'checkpoint.record for a session of another container or thread; ignored',
      );
      return undefined;
    }
    const record: CheckpointRecord = {
      containerId: payload.containerId,
      threadId: payload.threadId,
      sessionId: payload.sessionId,
      commit: payload.commit,
      messageId: payload.messageId,
      files: payload.files,
      filesTotal: payload.filesTotal,
      revertOf: payload.revertOf ?? null,
      createdAt: payload.createdAt,
      recordedAt: this.deps.clock.now().toISOString(),
    };
    const fresh = await this.deps.store.recordCheckpoint(record);
    const stored = fresh
      ? record
      : ((await this.deps.store.getCheckpoint(
          record.containerId,
          record.threadId,
          record.commit,
        )) ?? record);
    await this.deps.publisher.publish(this.events(stored, command.commandId));
    return stored;
  }

  private events(record: CheckpointRecord, commandId: string): BerthEvent[] {
    const base = {
      cause: checkpointCause(record),
      occurredAt: record.recordedAt,
      containerId: record.containerId,
      sessionId: record.sessionId,
      commandId,
    };
    const events = [
      makeEvent({
        ...base,
        type: 'session.checkpointed',
        payload: {
          sessionId: record.sessionId,
          threadId: record.threadId,
          commit: record.commit,
          messageId: record.messageId,
          files: record.files,
          filesTotal: record.filesTotal,
          ...(record.revertOf ? { revertOf: record.revertOf } : {}),
        },
      }),
    ];
    if (record.revertOf) {
      events.push(
        makeEvent({
          ...base,
          type: 'session.reverted',
          payload: {
            sessionId: record.sessionId,
            threadId: record.threadId,
            commit: record.commit,
            revertOf: record.revertOf,
            requestId: record.messageId,
          },
        }),
      );
    }
    return events;
  }

  /** The session's thread's checkpoints, newest first. NotFoundError for an unknown session. */
  async list(
    session: SessionRecord,
    limit: number,
    cursor?: string,
  ): Promise<Page<CheckpointRecord>> {
    if (!session.containerId || !session.threadId) return { items: [], nextCursor: null };
    return this.deps.store.listCheckpoints(
      session.containerId,
      session.threadId,
      Math.min(Math.max(limit, 1), MAX_CHECKPOINT_PAGE),
      cursor,
    );
  }

  /**
   * Asks the session's agent to bring the thread back to a checkpoint (a new commit with its
   * tree). 400 `checkpoint` when the commit is not a checkpoint of that thread, 409 when the
   * session is not active.
   */
  async revert(
    session: SessionRecord,
    checkpoint: string,
    requestId: string,
  ): Promise<{ requestId: string; checkpoint: CheckpointRecord }> {
    if (session.status !== 'active' || !session.inputQueueUrl) {
      throw new ConflictError(
        `session ${session.sessionId} is ${session.status}: only an active session can revert its thread`,
      );
    }
    if (!session.containerId || !session.threadId) {
      throw new NotFoundError(`session ${session.sessionId} has no thread`);
    }
    const found = await this.deps.store.getCheckpoint(
      session.containerId,
      session.threadId,
      checkpoint,
    );
    if (!found) {
      throw new InvalidArgumentError(
        `checkpoint ${checkpoint} is not a checkpoint of thread ${session.threadId}`,
        'checkpoint',
      );
    }
    await this.deps.queues.send(session.inputQueueUrl, {
      type: 'thread.revert',
      threadId: session.threadId,
      sessionId: session.sessionId,
      checkpoint,
      requestId,
    });
    return { requestId, checkpoint: found };
  }
}
