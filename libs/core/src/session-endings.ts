import {
  StaleWriteError,
  UnavailableError,
  containerCause,
  makeEvent,
  sessionCause,
  type BerthEvent,
  type ContainerRecord,
  type SessionRecord,
} from '@berth/domain';
import type { ContainerRecords } from './container-records.ts';
import { SESSION_WRITE_ATTEMPTS, noMetrics, silentLogger, type CoreDeps } from './deps.ts';

/**
 * How sessions end: released by a command, expired after BERTH_SESSION_TTL, or released with
 * their container when it reaches a final status. Each end is one transaction over the
 * session and its container's session set (the container's `idle` rides in its outbox), so a
 * repeated end finds it done and only publishes its events again, under the same ids.
 */
export class SessionEndings {
  private readonly deps: CoreDeps;
  private readonly records: ContainerRecords;

  constructor(deps: CoreDeps, records: ContainerRecords) {
    this.deps = deps;
    this.records = records;
  }

  private now(): string {
    return this.deps.clock.now().toISOString();
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  /**
   * Tells the agent the session left its thread: once no session of its own has the thread
   * open, it saves the worktree and removes it from disk (the branch stays). Never throws.
   */
  private async closeThread(session: SessionRecord): Promise<void> {
    if (!session.inputQueueUrl || !session.threadId) return;
    await this.deps.queues
      .send(session.inputQueueUrl, {
        type: 'thread.close',
        threadId: session.threadId,
        sessionId: session.sessionId,
      })
      .catch((error: unknown) =>
        this.log.warn(
          { sessionId: session.sessionId, err: error },
          'could not tell the agent the thread was closed',
        ),
      );
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
    for (let attempt = 0; attempt < SESSION_WRITE_ATTEMPTS; attempt += 1) {
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
        // An ending no command retries keeps its event in the session's outbox until published.
        if (existing.pendingEvents?.length) return this.flushSession(existing);
        // A redelivery after a crash between the write and the publish: publish again, same
        // ids, including the container's `idle` if this release left it idle.
        const events = [this.endedEvent(existing, undefined, commandId)];
        const idle = await this.idleEventOf(existing);
        if (idle) events.push(idle);
        await this.deps.publisher.publish(events);
        return existing;
      }
      if (!wanted(existing)) return existing;
      const endedNow: SessionRecord = {
        ...existing,
        status,
        releasedAt: now,
        releaseReason: reason,
      };
      const container = existing.containerId
        ? await this.deps.store.getContainer(existing.containerId)
        : undefined;
      const attached =
        container !== undefined &&
        container.generation === existing.generation &&
        container.sessions.includes(sessionId);
      // The container's own event (its `idle`) rides in its outbox, in the same transaction.
      const detached = attached
        ? this.records.detachSession(container, sessionId, now, (after) =>
            isIdle(after) ? [this.idleEvent(after)] : [],
          )
        : undefined;
      const nextContainer = detached?.next;
      const event = this.endedEvent(endedNow, nextContainer?.sessions.length, commandId);
      // A command's ending is retried with its command until its event is out; an expiry or a
      // container's end has nobody to retry it, so its event is stored with it (the session's
      // outbox) and the reaper's sweep publishes whatever a failure left there.
      const outboxed = commandId === undefined;
      const ended: SessionRecord = outboxed ? { ...endedNow, pendingEvents: [event] } : endedNow;
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
          ...(detached ? { containers: [detached.write] } : {}),
        });
      } catch (error) {
        if (error instanceof StaleWriteError) continue;
        throw error;
      }
      // The session's event and the container's outbox (its `idle`) go out at once; both
      // settle before the command answers, and a failed publish of the former is retried
      // with the command (flush never throws: what it could not publish stays in the outbox).
      const [published] = await Promise.allSettled([
        outboxed ? this.flushSession(ended) : this.deps.publisher.publish([event]),
        nextContainer ? this.records.flush(nextContainer) : undefined,
        attached ? this.closeThread(ended) : undefined,
      ]);
      if (published.status === 'rejected') throw published.reason;
      if (status === 'expired') (this.deps.metrics ?? noMetrics).sessionsExpired(1);
      return published.value ?? ended;
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
   * Publishes a session's outbox and clears what went out. Never throws: what could not be
   * published stays for the next sweep, and what was published but not cleared goes out once
   * more, under the same id.
   */
  async flushSession(session: SessionRecord): Promise<SessionRecord> {
    const pending = session.pendingEvents ?? [];
    if (pending.length === 0) return session;
    try {
      await this.deps.publisher.publish(pending);
    } catch (error) {
      this.log.warn(
        { sessionId: session.sessionId, err: error },
        "the session's ending stays in its outbox until the bus answers",
      );
      return session;
    }
    const { pendingEvents: _published, ...cleared } = session;
    try {
      await this.deps.store.write({
        sessions: [
          {
            record: cleared,
            expect: {
              kind: 'status',
              status: session.status,
              unchanged: { releaseReason: session.releaseReason },
            },
          },
        ],
      });
      return cleared;
    } catch (error) {
      this.log.warn({ sessionId: session.sessionId, err: error }, 'could not clear its outbox');
      return session;
    }
  }

  /** The sweep's part: publishes the outboxes of ended sessions. Returns how many it emptied. */
  async flushPendingSessions(limit = 100): Promise<number> {
    const pending = await this.deps.store.listSessionsWithPendingEvents(limit);
    let flushed = 0;
    for (const session of pending) {
      const after = await this.flushSession(session);
      if (!after.pendingEvents?.length) flushed += 1;
    }
    return flushed;
  }

  /**
   * Ends the sessions still attached to a container that reached a final status. Safe to
   * run again: sessions already ended are left alone. Which sessions: the ones its final write
   * took off the record (`endingSessions`, read with the record, so one assigned a moment
   * before is among them) and any the container index lists for its generation; each is read
   * again, consistently, before it is ended. Throws when an ending's event could not be
   * published yet (it waits in that session's outbox), so a task event is delivered again.
   */
  async endSessionsOf(container: ContainerRecord): Promise<number> {
    const listed = await this.deps.store.listSessionsByContainer(container.containerId);
    const ids = new Set([
      ...(container.endingSessions ?? []),
      ...listed.filter((s) => s.generation === container.generation).map((s) => s.sessionId),
    ]);
    let ended = 0;
    let waiting = 0;
    const reason = `container ${container.status}: ${container.stopReason ?? 'unknown'}`;
    for (const sessionId of ids) {
      const session = await this.deps.store.getSession(sessionId);
      if (
        !session ||
        session.containerId !== container.containerId ||
        session.generation !== container.generation
      ) {
        continue;
      }
      if (session.status === 'active') {
        const after = await this.end(session.sessionId, 'released', reason);
        ended += 1;
        if (after.pendingEvents?.length) waiting += 1;
      } else if (session.pendingEvents?.length) {
        if ((await this.flushSession(session)).pendingEvents?.length) waiting += 1;
      } else if (session.releaseReason === reason) {
        // Ended by this container's stop before: publish again, same id.
        await this.deps.publisher.publish([this.endedEvent(session, undefined, undefined)]);
      }
    }
    if (waiting > 0) {
      throw new UnavailableError(
        `${waiting} session ending(s) of container ${container.containerId} wait in their outboxes until the bus answers`,
      );
    }
    return ended;
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
}

function isIdle(container: ContainerRecord): boolean {
  return (
    container.status === 'running' &&
    container.sessions.length === 0 &&
    container.idleSince !== null
  );
}
