import {
  StaleWriteError,
  UnavailableError,
  makeEvent,
  sessionCause,
  type BerthEvent,
  type ContainerRecord,
  type SessionRecord,
  type ThreadReady,
} from '@berth/domain';
import { SESSION_WRITE_ATTEMPTS, silentLogger, type CoreDeps } from './deps.ts';

/**
 * When a session is ready: its container is running and the agent announced its worktree
 * (`thread.ready`). Whichever of the two comes last writes `readyAt` and publishes
 * `session.ready`; a repeat publishes the same event id again.
 */
export class SessionReadiness {
  private readonly deps: CoreDeps;

  constructor(deps: CoreDeps) {
    this.deps = deps;
  }

  private now(): string {
    return this.deps.clock.now().toISOString();
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  /**
   * The agent made the session's worktree. The session is ready once its container is
   * running too: then `readyAt` is written and `session.ready` published; before that the
   * head is kept, and the container's `running` announces it (announceReady).
   */
  async threadReady(command: ThreadReady): Promise<SessionRecord | undefined> {
    const { payload } = command;
    for (let attempt = 0; attempt < SESSION_WRITE_ATTEMPTS; attempt += 1) {
      const existing = await this.deps.store.getSession(payload.sessionId);
      if (
        !existing ||
        existing.status !== 'active' ||
        existing.containerId !== payload.containerId ||
        existing.generation !== payload.generation ||
        existing.threadId !== payload.threadId
      ) {
        this.log.info(
          { sessionId: payload.sessionId, containerId: payload.containerId },
          'thread.ready for a session that is not active on that container; ignored',
        );
        return existing;
      }
      if (existing.readyAt) {
        // A redelivery after a crash between the write and the publish: same id again.
        await this.deps.publisher.publish([this.readyEvent(existing, command.commandId)]);
        return existing;
      }
      const container = await this.deps.store.getContainer(payload.containerId);
      const running =
        container?.generation === payload.generation && container.status === 'running';
      const next: SessionRecord = {
        ...existing,
        head: payload.head,
        worktreePath: payload.worktreePath,
        ...(running ? { readyAt: this.now() } : {}),
      };
      if (!(await this.writeActive(next, existing))) continue;
      if (running) {
        await this.deps.publisher.publish([this.readyEvent(next, command.commandId)]);
        return next;
      }
      // It may have become running between the read and the write, its announcement
      // reading this session before the head was there: look once more.
      const now = await this.deps.store.getContainer(payload.containerId);
      if (now?.generation === payload.generation && now.status === 'running') {
        await this.announceReady(now);
      }
      return next;
    }
    throw new UnavailableError(
      `could not record the readiness of session ${payload.sessionId}: too much contention; try again`,
    );
  }

  /**
   * A container became running: each of its sessions whose worktree the agent announced and
   * that is not ready yet becomes ready now. Safe to run again.
   */
  async announceReady(container: ContainerRecord): Promise<void> {
    for (const sessionId of container.sessions) {
      for (let attempt = 0; attempt < SESSION_WRITE_ATTEMPTS; attempt += 1) {
        const session = await this.deps.store.getSession(sessionId);
        if (
          !session ||
          session.status !== 'active' ||
          session.generation !== container.generation ||
          !session.head
        )
          break;
        if (session.readyAt) {
          await this.deps.publisher.publish([this.readyEvent(session, undefined)]);
          break;
        }
        const next: SessionRecord = { ...session, readyAt: this.now() };
        if (!(await this.writeActive(next, session))) continue;
        await this.deps.publisher.publish([this.readyEvent(next, undefined)]);
        break;
      }
    }
  }

  /**
   * Writes `next` over a session still active and untouched since `read` (a touch or a release
   * in between wins); false when it was not, and the caller reads again.
   */
  private async writeActive(next: SessionRecord, read: SessionRecord): Promise<boolean> {
    try {
      await this.deps.store.write({
        sessions: [
          {
            record: next,
            expect: {
              kind: 'status',
              status: 'active',
              unchanged: { lastActivityAt: read.lastActivityAt },
            },
          },
        ],
      });
      return true;
    } catch (error) {
      if (error instanceof StaleWriteError) return false;
      throw error;
    }
  }

  private readyEvent(session: SessionRecord, commandId: string | undefined): BerthEvent {
    return makeEvent({
      type: 'session.ready',
      cause: sessionCause(session.sessionId),
      occurredAt: session.readyAt ?? this.now(),
      containerId: session.containerId,
      sessionId: session.sessionId,
      commandId: commandId ?? null,
      payload: {
        containerId: session.containerId,
        generation: session.generation,
        threadId: session.threadId,
        worktreePath: session.worktreePath,
        head: session.head ?? null,
      },
    });
  }
}
