import {
  ConflictError,
  StaleWriteError,
  UnavailableError,
  acceptsSessions,
  containerCause,
  containerIdOf,
  makeEvent,
  worktreePathFor,
  type BerthEvent,
  type CommandOutcomeRecord,
  type ContainerRecord,
  type SessionAssign,
  type SessionRecord,
  type SessionRelease,
  type SessionTouch,
} from '@berth/domain';
import { ContainerRecords, withEvents } from './container-records.ts';
import { ContainerService, type FoundContainer } from './containers.ts';
import { noMetrics, silentLogger, type CoreDeps } from './deps.ts';

const MAX_ATTEMPTS = 10;
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
  | { kind: 'rejected'; reason: 'capacity' | 'released' | 'conflict'; message: string };

/** Session ids are the cause of their own events: a session is assigned and released once. */
const sessionCause = (sessionId: string): string => `session/${sessionId}`;

/**
 * Session commands with exactly-once effects. Each effect is one DynamoDB transaction over
 * the session item and its container's item (which holds the session set), guarded by
 * conditions, so a duplicate or reordered delivery finds the effect already there and only
 * publishes its event again, under the same event id.
 */
export class SessionService {
  private readonly deps: CoreDeps;
  readonly containers: ContainerService;
  private readonly records: ContainerRecords;

  constructor(
    deps: CoreDeps,
    records = new ContainerRecords(deps),
    containers = new ContainerService(deps, records),
  ) {
    this.deps = deps;
    this.records = records;
    this.containers = containers;
  }

  private now(): string {
    return this.deps.clock.now().toISOString();
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  async get(sessionId: string): Promise<SessionRecord | undefined> {
    return this.deps.store.getSession(sessionId);
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
      if (decided) return this.repeat(decided, existing);
      if (existing) {
        const again = await this.assignAgain(existing, command);
        if (again) return again;
        continue;
      }

      found ??= await this.containers.findOrStart(key, {
        commandId,
        prefetched: { record: prefetched },
      });
      const { container, source } = found;
      if (container.sessions.length >= this.deps.settings.maxSessions) {
        const message = `container ${container.containerId} already has ${container.sessions.length} sessions (limit ${this.deps.settings.maxSessions})`;
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
      const next: ContainerRecord = {
        ...container,
        sessions: [...container.sessions, payload.sessionId],
        idleSince: null,
        lastActivityAt: now,
        version: container.version + 1,
      };
      const assigned = this.assignedEvent(session, next, source !== 'created', commandId);
      try {
        await this.deps.store.write({
          containers: [{ record: next, expect: { kind: 'version', version: container.version } }],
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
        reused: source !== 'created',
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
    decision: CommandOutcomeRecord['decision'],
    events: BerthEvent[],
  ): CommandOutcomeRecord {
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
    decision: CommandOutcomeRecord['decision'] = 'rejected',
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
    decided: CommandOutcomeRecord,
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
        reason: reason === 'capacity' || reason === 'conflict' ? reason : 'released',
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
    return this.end(command.payload.sessionId, 'released', 'released', command.commandId);
  }

  /**
   * Ends a session (release or expiry). A session not seen yet is stored as released, so
   * an assign that arrives after its release cannot revive it.
   */
  async end(
    sessionId: string,
    status: 'released' | 'expired',
    reason: string,
    commandId?: string,
  ): Promise<SessionRecord> {
    return this.endIf(sessionId, status, reason, commandId, () => true);
  }

  /** `end`, but an active session is left alone unless `wanted` still holds for it. */
  private async endIf(
    sessionId: string,
    status: 'released' | 'expired',
    reason: string,
    commandId: string | undefined,
    wanted: (active: SessionRecord) => boolean,
  ): Promise<SessionRecord> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
      const now = this.now();
      const existing = await this.deps.store.getSession(sessionId);
      if (!existing) {
        const tombstone: SessionRecord = {
          sessionId,
          containerId: null,
          generation: null,
          threadId: null,
          status,
          inputQueueUrl: null,
          outputQueueUrl: null,
          worktreePath: null,
          assignedAt: null,
          lastActivityAt: null,
          releasedAt: now,
          releaseReason: reason,
        };
        try {
          await this.deps.store.write({
            sessions: [{ record: tombstone, expect: { kind: 'absent' } }],
          });
        } catch (error) {
          if (error instanceof StaleWriteError) continue;
          throw error;
        }
        await this.deps.publisher.publish([this.endedEvent(tombstone, 0, commandId)]);
        return tombstone;
      }
      if (existing.status !== 'active') {
        // A redelivery after a crash between the write and the publish: publish again, same
        // ids, including the container's `idle` if this release left it idle.
        const events = [this.endedEvent(existing, undefined, commandId)];
        const idle = await this.idleEventOf(existing);
        if (idle) events.push(idle);
        await this.deps.publisher.publish(events);
        return existing;
      }
      if (!wanted(existing)) return existing;
      const ended: SessionRecord = { ...existing, status, releasedAt: now, releaseReason: reason };
      const container = existing.containerId
        ? await this.deps.store.getContainer(existing.containerId)
        : undefined;
      const attached =
        container !== undefined &&
        container.generation === existing.generation &&
        container.sessions.includes(sessionId);
      const nextContainer: ContainerRecord | undefined = attached
        ? (() => {
            const sessions = container.sessions.filter((id) => id !== sessionId);
            const next: ContainerRecord = {
              ...container,
              sessions,
              idleSince:
                sessions.length === 0 && container.status === 'running' ? now : container.idleSince,
              lastActivityAt: now,
              version: container.version + 1,
            };
            // The container's own event rides in its outbox, in the same transaction.
            return isIdle(next)
              ? withEvents(container, next, (after) => [this.idleEvent(after)])
              : next;
          })()
        : undefined;
      try {
        await this.deps.store.write({
          sessions: [
            {
              record: ended,
              // Decided on this read: a touch since (which an expiry must not overwrite) or any
              // other change makes it decide again.
              expect: {
                kind: 'status',
                status: 'active',
                unchanged: { lastActivityAt: existing.lastActivityAt },
              },
            },
          ],
          ...(nextContainer && container
            ? {
                containers: [
                  {
                    record: nextContainer,
                    expect: { kind: 'version' as const, version: container.version },
                  },
                ],
              }
            : {}),
        });
      } catch (error) {
        if (error instanceof StaleWriteError) continue;
        throw error;
      }
      // The session's event and the container's outbox (its `idle`) go out at once; both
      // settle before the command answers, and a failed publish of the former is retried
      // with the command (flush never throws: what it could not publish stays in the outbox).
      const [published] = await Promise.allSettled([
        this.deps.publisher.publish([
          this.endedEvent(ended, nextContainer?.sessions.length, commandId),
        ]),
        nextContainer ? this.records.flush(nextContainer) : undefined,
      ]);
      if (published.status === 'rejected') throw published.reason;
      if (status === 'expired') (this.deps.metrics ?? noMetrics).sessionsExpired(1);
      return ended;
    }
    throw new UnavailableError(
      `could not end session ${sessionId}: too much contention; try again`,
    );
  }

  /** The container's `idle` event, one id per idle period. */
  private idleEvent(container: ContainerRecord): BerthEvent {
    return this.records.event('container.idle', container, {
      cause: `${containerCause(container)}/idle@${container.idleSince ?? ''}`,
    });
  }

  /** The `idle` event of the ended session's container, while that container is still idle. */
  private async idleEventOf(session: SessionRecord): Promise<BerthEvent | undefined> {
    if (!session.containerId) return undefined;
    const container = await this.deps.store.getContainer(session.containerId);
    return container && container.generation === session.generation && isIdle(container)
      ? this.idleEvent(container)
      : undefined;
  }

  /** Records activity; keeps the session (and so its container) from expiring. */
  async touch(command: SessionTouch): Promise<SessionRecord | undefined> {
    const sessionId = command.payload.sessionId;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
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

  /** Expires sessions idle longer than BERTH_SESSION_TTL. Returns how many it expired. */
  async expireStale(limit = 100): Promise<number> {
    const cutoff = new Date(
      this.deps.clock.now().getTime() - this.deps.settings.sessionTtlMs,
    ).toISOString();
    const stale = await this.deps.store.listStaleSessions(cutoff, limit);
    let expired = 0;
    for (const session of stale) {
      // Touched since the query: not stale any more.
      const ended = await this.endIf(
        session.sessionId,
        'expired',
        'expired',
        undefined,
        (active) => active.lastActivityAt === null || active.lastActivityAt <= cutoff,
      );
      if (ended.status === 'expired') expired += 1;
    }
    return expired;
  }

  /**
   * Ends the sessions still attached to a container that reached a final status. Safe to
   * run again: sessions already ended are left alone.
   */
  async endSessionsOf(container: ContainerRecord): Promise<number> {
    const sessions = await this.deps.store.listSessionsByContainer(container.containerId);
    let ended = 0;
    const reason = `container ${container.status}: ${container.stopReason ?? 'unknown'}`;
    for (const session of sessions) {
      if (session.generation !== container.generation) continue;
      if (session.status === 'active') {
        await this.end(session.sessionId, 'released', reason);
        ended += 1;
      } else if (session.releaseReason === reason) {
        // Ended by this container's stop before, maybe by a delivery that died before its
        // publish: publish again, same id.
        await this.deps.publisher.publish([this.endedEvent(session, undefined, undefined)]);
      }
    }
    return ended;
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

  private endedEvent(
    session: SessionRecord,
    sessionCount: number | undefined,
    commandId: string | undefined,
  ): BerthEvent {
    return makeEvent({
      type: session.status === 'expired' ? 'session.expired' : 'session.released',
      cause: sessionCause(session.sessionId),
      occurredAt: session.releasedAt ?? this.now(),
      containerId: session.containerId,
      sessionId: session.sessionId,
      commandId: commandId ?? null,
      payload: {
        containerId: session.containerId,
        reason: session.releaseReason ?? session.status,
        ...(sessionCount !== undefined ? { sessionCount } : {}),
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

function isIdle(container: ContainerRecord): boolean {
  return (
    container.status === 'running' &&
    container.sessions.length === 0 &&
    container.idleSince !== null
  );
}
