import {
  CapacityExceededError,
  ConflictError,
  StaleWriteError,
  UnavailableError,
  acceptsSessions,
  containerIdOf,
  makeEvent,
  sessionCause,
  worktreePathFor,
  type BerthEvent,
  type AssignOutcomeRecord,
  type ContainerRecord,
  type SessionAssign,
  type SessionRecord,
  type SessionRelease,
  type SessionTouch,
} from '@berth/domain';
import { reusedCommandId, type ContainerRecords } from './container-records.ts';
import type { ContainerService, FoundContainer } from './containers.ts';
import { SESSION_WRITE_ATTEMPTS, silentLogger, type CoreDeps } from './deps.ts';
import type { SessionEndings } from './session-endings.ts';

/**
 * Assigns to one container contend for its version: each lost write means another assign or
 * release won, so a loser needs at most one attempt per competitor. Enough for a burst of
 * dozens; beyond that the command is retried later.
 */
const MAX_ASSIGN_ATTEMPTS = 64;

export type AssignOutcome =
  | {
      kind: 'assigned';
      session: SessionRecord;
      container: ContainerRecord;
      reused: boolean;
      duplicate: boolean;
    }
  | { kind: 'rejected'; reason: 'capacity' | 'released' | 'conflict' | 'quota'; message: string };

/**
 * Session commands with exactly-once effects. Each effect is one DynamoDB transaction over
 * the session item and its container's item (which holds the session set), guarded by
 * conditions, so a duplicate or reordered delivery finds the effect already there and only
 * publishes its event again, under the same event id.
 */
export class SessionService {
  private readonly deps: CoreDeps;
  private readonly records: ContainerRecords;
  private readonly containers: ContainerService;
  private readonly endings: SessionEndings;

  constructor(
    deps: CoreDeps,
    records: ContainerRecords,
    containers: ContainerService,
    endings: SessionEndings,
  ) {
    this.records = records;
    this.deps = deps;
    this.containers = containers;
    this.endings = endings;
  }

  private now(): string {
    return this.deps.clock.now().toISOString();
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  /** The session as the store has it, or undefined. */
  async get(sessionId: string): Promise<SessionRecord | undefined> {
    return this.deps.store.getSession(sessionId);
  }

  /** The sessions of a container; a NotFoundError when the container does not exist. */
  async ofContainer(containerId: string): Promise<SessionRecord[]> {
    await this.containers.get(containerId);
    return this.deps.store.listSessionsByContainer(containerId);
  }

  /**
   * Decides an assign once: its outcome (assigned, or rejected with its reason) is stored under
   * its commandId, with the session and the container when it assigns and on its own when it
   * rejects, each write conditional on no outcome being stored yet. A redelivery, or a second
   * delivery handled at the same time, finds that outcome and publishes the same events again,
   * so a command is never both rejected and assigned, even when a slot frees in between.
   */
  async assign(command: SessionAssign): Promise<AssignOutcome> {
    const { payload, commandId } = command;
    const key = {
      clientId: payload.clientId,
      projectId: payload.projectId,
      userId: payload.userId,
    };
    const threadId = payload.threadId ?? payload.sessionId;
    const containerId = containerIdOf(key);
    let found: FoundContainer | undefined;
    for (let attempt = 0; attempt < MAX_ASSIGN_ATTEMPTS; attempt += 1) {
      // All reads at once: the container is read here only when it is still to be found.
      const [decided, existing, prefetched] = await Promise.all([
        this.deps.store.getOutcome(commandId),
        this.deps.store.getSession(payload.sessionId),
        found ? undefined : this.deps.store.getContainer(containerId),
      ]);
      if (decided) {
        if (decided.type !== 'session.assign') throw reusedCommandId(commandId, decided.type);
        return this.repeat(decided, existing);
      }
      if (existing) {
        const again = await this.assignAgain(existing, command);
        if (again) return again;
        continue;
      }

      try {
        found ??= await this.containers.findOrStart(key, {
          commandId,
          prefetched: { record: prefetched },
        });
      } catch (error) {
        // A quota of the client's policy is full: refused, naming the quota, like a full container.
        if (!(error instanceof CapacityExceededError)) throw error;
        const message = `${error.message} (${error.field ?? 'quota'})`;
        const rejected = await this.decide(
          command,
          this.rejectedEvent(payload.sessionId, commandId, 'quota', message, containerIdOf(key)),
        );
        if (rejected) return { kind: 'rejected', reason: 'quota', message };
        continue;
      }
      const { container, source } = found;
      // The container's own policy (docs/design.md, "Lifecycle policies"), else the deployment's.
      const maxSessions = container.policy?.maxSessions ?? this.deps.settings.maxSessions;
      if (container.sessions.length >= maxSessions) {
        const message = `container ${container.containerId} already has ${container.sessions.length} sessions (limit ${maxSessions}, maxSessions)`;
        const rejected = await this.decide(
          command,
          this.rejectedEvent(
            payload.sessionId,
            commandId,
            'capacity',
            message,
            container.containerId,
          ),
        );
        if (rejected) return { kind: 'rejected', reason: 'capacity', message };
        found = undefined;
        continue;
      }
      const now = this.now();
      const session: SessionRecord = {
        sessionId: payload.sessionId,
        containerId: container.containerId,
        generation: container.generation,
        threadId,
        status: 'active',
        inputQueueUrl: container.inputQueueUrl,
        outputQueueUrl: container.outputQueueUrl,
        worktreePath: container.workspacePath
          ? worktreePathFor(container.workspacePath, threadId)
          : null,
        assignedAt: now,
        lastActivityAt: now,
        releasedAt: null,
        releaseReason: null,
      };
      const { next, write } = this.records.attachSession(container, payload.sessionId, now);
      // A container claimed from the warm pool is a new generation this assign started too.
      const reused = source !== 'created' && source !== 'pool';
      const assigned = this.assignedEvent(session, next, reused, commandId);
      try {
        await this.deps.store.write({
          containers: [write],
          sessions: [{ record: session, expect: { kind: 'absent' } }],
          outcomes: [this.outcomeOf(command, 'assigned', [assigned])],
        });
      } catch (error) {
        if (error instanceof StaleWriteError) {
          found = await this.refresh(found);
          continue;
        }
        throw error;
      }
      // Independent: the agent's worktree (openThread never throws) and the client's event.
      const [, published] = await Promise.allSettled([
        this.openThread(session),
        this.deps.publisher.publish([assigned]),
      ]);
      if (published.status === 'rejected') throw published.reason;
      return {
        kind: 'assigned',
        session,
        container: next,
        reused,
        duplicate: false,
      };
    }
    throw new UnavailableError(
      `could not assign session ${payload.sessionId}: too much contention; try again`,
    );
  }

  /**
   * After a lost write: the same container as it is now, when it still takes sessions, so a
   * retry does not verify the task and queues again; otherwise undefined (find it anew).
   */
  private async refresh(found: FoundContainer): Promise<FoundContainer | undefined> {
    const fresh = await this.deps.store.getContainer(found.container.containerId);
    return fresh && fresh.generation === found.container.generation && acceptsSessions(fresh.status)
      ? { container: fresh, source: found.source }
      : undefined;
  }

  private outcomeOf(
    command: SessionAssign,
    decision: AssignOutcomeRecord['decision'],
    events: BerthEvent[],
  ): AssignOutcomeRecord {
    return {
      commandId: command.commandId,
      type: command.type,
      decision,
      sessionId: command.payload.sessionId,
      events,
      decidedAt: this.now(),
    };
  }

  /**
   * Stores a decision that changes nothing else (a rejection, or an assign of a session that
   * is already there) and publishes its event. False when another delivery of the command
   * decided first: the caller reads that decision and repeats it.
   */
  private async decide(
    command: SessionAssign,
    event: BerthEvent,
    decision: AssignOutcomeRecord['decision'] = 'rejected',
  ): Promise<boolean> {
    try {
      await this.deps.store.write({ outcomes: [this.outcomeOf(command, decision, [event])] });
    } catch (error) {
      if (error instanceof StaleWriteError) return false;
      throw error;
    }
    await this.deps.publisher.publish([event]);
    return true;
  }

  /** A command decided before: the same events again, under the same ids, and nothing else. */
  private async repeat(
    decided: AssignOutcomeRecord,
    session: SessionRecord | undefined,
  ): Promise<AssignOutcome> {
    if (decided.decision === 'assigned' && session?.status === 'active') {
      // The agent may not have been asked to open the worktree before a crash.
      await this.openThread(session);
    }
    await this.deps.publisher.publish(decided.events);
    const [event] = decided.events;
    if (decided.decision === 'rejected') {
      const { reason, message } = event?.payload ?? {};
      return {
        kind: 'rejected',
        reason:
          reason === 'capacity' || reason === 'conflict' || reason === 'quota'
            ? reason
            : 'released',
        message: typeof message === 'string' ? message : '',
      };
    }
    const container =
      session?.containerId !== null && session?.containerId !== undefined
        ? await this.deps.store.getContainer(session.containerId)
        : undefined;
    if (!session || !container) {
      return {
        kind: 'rejected',
        reason: 'released',
        message: `session ${decided.sessionId} was assigned and has since ended`,
      };
    }
    return { kind: 'assigned', session, container, reused: true, duplicate: true };
  }

  /**
   * Another command assigned this sessionId before: the same container again is a duplicate
   * (assigned), anything else a rejection; either way this command's decision is stored.
   * Undefined when another delivery of this command decided first (read it again).
   */
  private async assignAgain(
    existing: SessionRecord,
    command: SessionAssign,
  ): Promise<AssignOutcome | undefined> {
    const { payload, commandId } = command;
    if (existing.status !== 'active') {
      const message = `session ${payload.sessionId} was ${existing.status} and cannot be assigned again`;
      const event = this.rejectedEvent(
        payload.sessionId,
        commandId,
        'released',
        message,
        existing.containerId,
      );
      return (await this.decide(command, event))
        ? { kind: 'rejected', reason: 'released', message }
        : undefined;
    }
    const requested = containerIdOf(payload);
    const container = existing.containerId
      ? await this.deps.store.getContainer(existing.containerId)
      : undefined;
    if (existing.containerId !== requested || !container) {
      const message = `session ${payload.sessionId} is already assigned to container ${existing.containerId ?? 'none'}`;
      const event = this.rejectedEvent(
        payload.sessionId,
        commandId,
        'conflict',
        message,
        existing.containerId,
      );
      return (await this.decide(command, event))
        ? { kind: 'rejected', reason: 'conflict', message }
        : undefined;
    }
    await this.openThread(existing);
    const event = this.assignedEvent(existing, container, true, commandId);
    return (await this.decide(command, event, 'assigned'))
      ? { kind: 'assigned', session: existing, container, reused: true, duplicate: true }
      : undefined;
  }

  private async openThread(session: SessionRecord): Promise<void> {
    if (!session.inputQueueUrl || !session.threadId) return;
    await this.deps.queues
      .send(session.inputQueueUrl, {
        type: 'thread.open',
        threadId: session.threadId,
        sessionId: session.sessionId,
      })
      .catch((error: unknown) =>
        this.log.warn(
          { sessionId: session.sessionId, err: error },
          'could not ask the agent to open the worktree',
        ),
      );
  }

  async release(command: SessionRelease): Promise<SessionRecord> {
    return this.endings.end(command.payload.sessionId, 'released', 'released', command.commandId);
  }

  /** Records activity; keeps the session (and so its container) from expiring. */
  async touch(command: SessionTouch): Promise<SessionRecord | undefined> {
    const sessionId = command.payload.sessionId;
    for (let attempt = 0; attempt < SESSION_WRITE_ATTEMPTS; attempt += 1) {
      const existing = await this.deps.store.getSession(sessionId);
      if (!existing || existing.status !== 'active') return existing;
      const now = this.now();
      if (existing.lastActivityAt !== null && existing.lastActivityAt >= now) return existing;
      try {
        await this.deps.store.write({
          sessions: [
            {
              record: { ...existing, lastActivityAt: now },
              expect: { kind: 'status', status: 'active' },
            },
          ],
        });
        return { ...existing, lastActivityAt: now };
      } catch (error) {
        if (error instanceof StaleWriteError) continue;
        throw error;
      }
    }
    throw new ConflictError(`session ${sessionId} changed too often to touch`, { retryable: true });
  }

  private assignedEvent(
    session: SessionRecord,
    container: Pick<ContainerRecord, 'containerId' | 'sessions'>,
    reused: boolean,
    commandId: string | undefined,
  ): BerthEvent {
    return makeEvent({
      type: 'session.assigned',
      cause: sessionCause(session.sessionId),
      occurredAt: session.assignedAt ?? this.now(),
      containerId: container.containerId,
      sessionId: session.sessionId,
      commandId: commandId ?? null,
      payload: {
        containerId: container.containerId,
        sessionCount: container.sessions.length,
        reused,
        worktreePath: session.worktreePath,
        threadId: session.threadId,
        inputQueueUrl: session.inputQueueUrl,
        outputQueueUrl: session.outputQueueUrl,
      },
    });
  }

  private rejectedEvent(
    sessionId: string,
    commandId: string,
    reason: string,
    message: string,
    containerId: string | null,
  ): BerthEvent {
    return makeEvent({
      type: 'session.rejected',
      cause: `command/${commandId}`,
      occurredAt: this.now(),
      containerId,
      sessionId,
      commandId,
      payload: { reason, message },
    });
  }
}
