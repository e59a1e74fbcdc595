import {
  ConflictError,
  StaleWriteError,
  UnavailableError,
  assertTransition,
  containerEvent,
  isLive,
  toContainerJson,
  type BerthEvent,
  type CommandOutcomeRecord,
  type ContainerRecord,
  type ContainerWrite,
  type QuotaCharge,
} from '@berth/domain';
import { silentLogger, type CoreDeps } from './deps.ts';

const MAX_ATTEMPTS = 16;

export type ContainerEventType = Extract<BerthEvent['type'], `container.${string}`>;

export interface ContainerEventExtra {
  cause?: string;
  commandId?: string;
  payload?: Record<string, unknown>;
}

/** What an update did: the record before and after, and whether it wrote anything. */
export interface RecordChange {
  before: ContainerRecord;
  after: ContainerRecord;
  changed: boolean;
}

/** A change of a container's session list: the record as stored and its conditional write. */
export interface SessionListChange {
  next: ContainerRecord;
  write: ContainerWrite;
}

/** Decides a record's next state from its current one; undefined leaves it as it is. */
export type RecordDecision = (current: ContainerRecord) => ContainerRecord | undefined;

/**
 * The container record's writes and its outbox, the one place that knows either. Every
 * change is a conditional write on the record's `version` and every status change is checked
 * against the domain's transition table (`assertTransition`); the events of a change are written
 * in the same write and published after it (docs/design.md, "Outbox").
 */
export class ContainerRecords {
  private readonly deps: CoreDeps;

  constructor(deps: CoreDeps) {
    this.deps = deps;
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  /** The record as the API and the events show it. */
  json(container: ContainerRecord, messagesInFlight = 0) {
    return toContainerJson(container, {
      idleTimeoutMs: this.deps.settings.idleTimeoutMs,
      messagesInFlight,
      now: this.deps.clock.now().toISOString(),
    });
  }

  /** A container event carrying the record as it is after the change. */
  event(
    type: ContainerEventType,
    container: ContainerRecord,
    extra: ContainerEventExtra = {},
  ): BerthEvent {
    return containerEvent(
      type,
      container,
      this.json(container),
      this.deps.clock.now().toISOString(),
      extra,
    );
  }

  /**
   * Reads the container, lets `decide` choose its next state, and writes it if the record
   * did not change in between; re-reads and decides again when it did. Undefined when there
   * is no such container.
   */
  async update(
    containerId: string,
    decide: RecordDecision,
    options: {
      /** The deciding command's outcome, stored in the same write (only if none is stored yet). */
      outcome?: (after: ContainerRecord) => CommandOutcomeRecord;
      /**
       * The record as the caller last saw it (just written, say): the first attempt decides on
       * it instead of reading; if it is stale by then, the conditional write fails and the
       * next attempt reads.
       */
      known?: ContainerRecord;
    } = {},
  ): Promise<RecordChange | undefined> {
    const { outcome, known } = options;
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
      const current =
        attempt === 0 && known?.containerId === containerId
          ? known
          : await this.deps.store.getContainer(containerId);
      if (!current) return undefined;
      const next = decide(current);
      if (!next) return { before: current, after: current, changed: false };
      if (next.status !== current.status) assertTransition(current.status, next.status);
      // A counted generation that reaches a final status is uncounted in the same write.
      const release =
        current.quotaCounted === true && isLive(current.status) && !isLive(next.status);
      const written = release
        ? { ...next, quotaCounted: false, version: current.version + 1 }
        : { ...next, version: current.version + 1 };
      try {
        await this.deps.store.write({
          containers: [{ record: written, expect: { kind: 'version', version: current.version } }],
          ...(outcome ? { outcomes: [outcome(written)] } : {}),
          ...(release
            ? { quota: { release: { clientId: current.clientId, userId: current.userId } } }
            : {}),
        });
        return { before: current, after: written, changed: true };
      } catch (error) {
        if (error instanceof StaleWriteError) continue;
        throw error;
      }
    }
    throw new UnavailableError(`container ${containerId} changed too often to update; try again`);
  }

  /**
   * A state change and its events in ONE conditional write (the record's outbox), then
   * published and cleared. If the publish fails or the process dies first, the events stay
   * on the record and whoever next changes or sweeps it publishes them, under the same ids:
   * an event goes out if and only if its change was stored.
   */
  async transition(
    containerId: string,
    decide: RecordDecision,
    events: (after: ContainerRecord) => BerthEvent[],
    outcome?: (after: ContainerRecord) => CommandOutcomeRecord,
  ): Promise<RecordChange | undefined> {
    const result = await this.update(
      containerId,
      (current) => {
        const next = decide(current);
        return next ? withEvents(current, next, events) : undefined;
      },
      { outcome },
    );
    if (!result?.changed) return result;
    return { ...result, after: await this.flush(result.after) };
  }

  /**
   * Writes a new generation over a final (or absent) one, carrying the previous record's
   * outbox along. False when another writer created it first.
   */
  async createGeneration(
    record: ContainerRecord,
    previous: ContainerRecord | undefined,
    /** Counted in the client's quota counters in the same transaction (a full one refuses it). */
    charge?: QuotaCharge,
  ): Promise<boolean> {
    const write = this.newGeneration(charge ? { ...record, quotaCounted: true } : record, previous);
    try {
      await this.deps.store.write({
        containers: [write],
        ...(charge ? { quota: { charge } } : {}),
      });
      return true;
    } catch (error) {
      if (error instanceof StaleWriteError) return false;
      throw error;
    }
  }

  /**
   * The write of a new generation over a final (or absent) one, for a caller that must make it
   * in one transaction with other items (the warm pool's claim, with the member it takes).
   * Refuses to replace a live record; the previous record's outbox and `events` go along.
   */
  newGeneration(
    record: ContainerRecord,
    previous: ContainerRecord | undefined,
    events: (created: ContainerRecord) => BerthEvent[] = () => [],
  ): ContainerWrite {
    if (previous && isLive(previous.status)) {
      throw new ConflictError(
        `container ${record.containerId} is ${previous.status}; a new generation replaces only a final one`,
      );
    }
    return {
      // The one item per containerId is replaced, outbox and all: events the previous
      // generation could not publish yet (e.g. its `stopped`) move to the new record,
      // which publishes them with its own.
      record: { ...record, pendingEvents: [...(previous?.pendingEvents ?? []), ...events(record)] },
      expect: { kind: 'new-generation', previousGeneration: previous?.generation ?? null },
    };
  }

  /**
   * A session joins the container: the record as it will be stored (the session listed, not
   * idle, its version bumped) and its write, conditional on the version read, for the one
   * transaction with the session's item. The record module is the only writer of a
   * container's session list; StaleWriteError from the store means decide again.
   */
  attachSession(current: ContainerRecord, sessionId: string, now: string): SessionListChange {
    return this.sessionListChange(current, {
      ...current,
      sessions: [...current.sessions, sessionId],
      idleSince: null,
      lastActivityAt: now,
    });
  }

  /**
   * A session leaves the container: the record without it (idle from `now` when it was the
   * last of a running container) and its write, `events` of the change in its outbox.
   */
  detachSession(
    current: ContainerRecord,
    sessionId: string,
    now: string,
    events: (after: ContainerRecord) => BerthEvent[] = () => [],
  ): SessionListChange {
    const sessions = current.sessions.filter((id) => id !== sessionId);
    return this.sessionListChange(
      current,
      {
        ...current,
        sessions,
        idleSince: sessions.length === 0 && current.status === 'running' ? now : current.idleSince,
        lastActivityAt: now,
      },
      events,
    );
  }

  private sessionListChange(
    current: ContainerRecord,
    decided: ContainerRecord,
    events: (after: ContainerRecord) => BerthEvent[] = () => [],
  ): SessionListChange {
    const next = withEvents(current, { ...decided, version: current.version + 1 }, events);
    return {
      next,
      write: { record: next, expect: { kind: 'version', version: current.version } },
    };
  }

  /**
   * Publishes a record's pending events and clears the ones published. Never throws: events
   * that could not go out stay pending for the next writer or sweep.
   */
  async flush(container: ContainerRecord): Promise<ContainerRecord> {
    if (container.pendingEvents.length === 0) return container;
    try {
      await this.deps.publisher.publish(container.pendingEvents);
    } catch (error) {
      this.log.warn(
        { containerId: container.containerId, pending: container.pendingEvents.length, err: error },
        'events stay in the outbox until the bus answers',
      );
      return container;
    }
    const published = new Set(container.pendingEvents.map((event) => event.eventId));
    try {
      // Most often nobody wrote the record since `container` was read or written: clearing
      // it needs no read (issue 13: one GetItem less per release that leaves a container idle).
      const cleared = await this.update(
        container.containerId,
        (current) => {
          const left = current.pendingEvents.filter((event) => !published.has(event.eventId));
          return left.length === current.pendingEvents.length
            ? undefined
            : { ...current, pendingEvents: left };
        },
        { known: container },
      );
      return cleared?.after ?? container;
    } catch (error) {
      // Published but not cleared: they will go out once more, under the same ids.
      this.log.warn(
        { containerId: container.containerId, err: error },
        'could not clear the outbox',
      );
      return container;
    }
  }
}

/**
 * `next` with the events of the change from `current` appended to its outbox, for a write
 * made elsewhere in one transaction with other items (a session's). The events see the
 * record as it will be stored: its version bumped, its outbox empty.
 */
export function withEvents(
  current: ContainerRecord,
  next: ContainerRecord,
  events: (after: ContainerRecord) => BerthEvent[],
): ContainerRecord {
  const after = { ...next, version: current.version + 1, pendingEvents: [] };
  return { ...next, pendingEvents: [...current.pendingEvents, ...events(after)] };
}

/** A command whose commandId already decided a command of another type: refused, never run. */
export function reusedCommandId(commandId: string, decidedType: string): ConflictError {
  return new ConflictError(
    `commandId ${commandId} was already used by a ${decidedType} command; every command needs its own commandId`,
    { field: 'commandId', retryable: false },
  );
}
