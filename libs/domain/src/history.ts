/**
 * The lifecycle history (issue 18): every published event kept for `BERTH_HISTORY_RETENTION`,
 * the generations of a container read back from it, and the usage (container-hours, sessions)
 * computed from it. Pure: the store is a port (HistoryStore), the adapter lives in
 * libs/adapters/dynamodb.
 */
import Type, { type Static } from 'typebox';
import { InvalidArgumentError } from './errors.ts';
import { EVENT_TYPES, type BerthEvent, type EventType } from './events.ts';
import { isIdPart, type ContainerKey } from './identity.ts';
import type { Page } from './ports.ts';

const DAY_MS = 86_400_000;
const FINAL_EVENT_TYPES = new Set<string>(['container.stopped', 'container.failed']);

/** Who an event belongs to, from its containerId (events without one are admins' only). */
export function eventOwner(event: BerthEvent): ContainerKey | undefined {
  const candidates = [
    event.containerId,
    typeof event.payload['containerId'] === 'string' ? event.payload['containerId'] : undefined,
    containerOf(event)?.containerId,
  ];
  for (const containerId of candidates) {
    if (typeof containerId !== 'string') continue;
    const parts = containerId.split('.');
    if (parts.length === 3 && parts.every(isIdPart)) {
      const [clientId, projectId, userId] = parts as [string, string, string];
      return { clientId, projectId, userId };
    }
  }
  return undefined;
}

/** The container JSON a `container.*` event carries, as far as the history reads it. */
export interface HistoryContainer {
  containerId: string;
  clientId: string;
  projectId: string;
  userId: string;
  generation: number;
  status: string;
  createdAt: string;
  startedAt: string | null;
  stoppedAt: string | null;
  stopReason: string | null;
  fromPool?: boolean;
}

export function containerOf(event: BerthEvent): HistoryContainer | undefined {
  const container = event.payload['container'];
  if (typeof container !== 'object' || container === null) return undefined;
  const candidate = container as Partial<HistoryContainer>;
  return typeof candidate.containerId === 'string' && typeof candidate.generation === 'number'
    ? (candidate as HistoryContainer)
    : undefined;
}

/**
 * The `type` filter: one event type, or a family as `container.*`, `session.*`, `command.*`.
 * Anything else is refused naming the field, so a typo never reads as "no events".
 */
export type EventTypeFilter = { exact: EventType } | { prefix: string };

const EVENT_FAMILIES = [...new Set(EVENT_TYPES.map((type) => type.split('.')[0] ?? ''))];

export function parseEventTypeFilter(raw: string): EventTypeFilter {
  if ((EVENT_TYPES as readonly string[]).includes(raw)) return { exact: raw as EventType };
  const family = /^([a-z]+)\.\*$/.exec(raw)?.[1];
  if (family !== undefined && EVENT_FAMILIES.includes(family)) return { prefix: `${family}.` };
  throw new InvalidArgumentError(
    `type must be an event type (${EVENT_TYPES.join(', ')}) or a family (${EVENT_FAMILIES.map((f) => `${f}.*`).join(', ')}); got "${raw}"`,
    'type',
  );
}

/**
 * What a history listing reads: at most one of container, session or client (a user's or a
 * service's listing is scoped by the route to its own client, and a user's to its own user),
 * events at or after `since`, of one type or family.
 */
export interface HistoryFilter {
  containerId?: string;
  sessionId?: string;
  clientId?: string;
  /** With `clientId`: that user's events only (a `user` token's listing). */
  userId?: string;
  since?: string;
  type?: EventTypeFilter;
}

/**
 * What one event adds to the daily usage rollup (issue 18, item 4): kept beyond the history's
 * retention, written in the same transaction as the event so a redelivery adds nothing.
 */
export interface UsageContribution {
  clientId: string;
  projectId: string;
  day: string;
  containerMs?: number;
  sessions?: number;
  generations?: number;
}

/** The most days one generation's hours are spread over in the rollup (a transaction's limit). */
export const MAX_ROLLUP_DAYS = 90;

/**
 * The rollup's share of an event: a generation created (+1 generation that day), a session
 * assigned (+1 session), a generation final (its createdAt→stoppedAt split at UTC midnights,
 * its last MAX_ROLLUP_DAYS days only). Any other event adds nothing.
 */
export function usageContributions(event: BerthEvent): UsageContribution[] {
  const owner = eventOwner(event);
  if (!owner) return [];
  const { clientId, projectId } = owner;
  if (event.type === 'session.assigned') {
    return [{ clientId, projectId, day: dayOf(event.occurredAt), sessions: 1 }];
  }
  const container = containerOf(event);
  if (!container) return [];
  if (event.type === 'container.created') {
    const created = Date.parse(container.createdAt);
    return Number.isNaN(created)
      ? []
      : [{ clientId, projectId, day: dayOf(created), generations: 1 }];
  }
  if (!FINAL_EVENT_TYPES.has(event.type) || !container.stoppedAt) return [];
  const until = Date.parse(container.stoppedAt);
  let from = Math.max(Date.parse(container.createdAt), until - MAX_ROLLUP_DAYS * DAY_MS + 1);
  if (Number.isNaN(from) || Number.isNaN(until)) return [];
  const shares: UsageContribution[] = [];
  while (from < until) {
    const end = Math.min((Math.floor(from / DAY_MS) + 1) * DAY_MS, until);
    shares.push({ clientId, projectId, day: dayOf(from), containerMs: end - from });
    from = end;
  }
  return shares.slice(-MAX_ROLLUP_DAYS);
}

export interface HistoryStore {
  /**
   * Keeps one event until `expiresAt` (epoch ms), and adds its usage contributions to the daily
   * rollup in the same transaction. Idempotent by eventId: the same event again changes nothing
   * (and is not an error).
   */
  record(
    event: BerthEvent,
    expiresAtMs: number,
    usage?: readonly UsageContribution[],
  ): Promise<'stored' | 'duplicate'>;
  /** The daily rollup of a client (every client: undefined), days `fromDay`..`toDay`. */
  usageRollup(clientId: string | undefined, fromDay: string, toDay: string): Promise<UsageRow[]>;
  /** Newest first; never an expired event, even one TTL has not deleted yet. */
  list(filter: HistoryFilter, limit: number, cursor?: string): Promise<Page<BerthEvent>>;
  /**
   * Every retained `container.*` event of a client (of every client: undefined) and every
   * `session.assigned` event, that occurred in [from, to), for usage.
   */
  usageEvents(clientId: string | undefined, from: string, to: string): Promise<BerthEvent[]>;
}

/** A container generation as its history tells it. */
export const GenerationJsonSchema = Type.Object(
  {
    generation: Type.Integer(),
    status: Type.String({ description: 'the status of its latest event in the history' }),
    createdAt: Type.Union([Type.String(), Type.Null()]),
    startedAt: Type.Union([Type.String(), Type.Null()]),
    stoppedAt: Type.Union([Type.String(), Type.Null()]),
    stopReason: Type.Union([Type.String(), Type.Null()]),
    durationSeconds: Type.Union([Type.Number(), Type.Null()], {
      description: 'from createdAt to stoppedAt; null while live',
    }),
    stoppedBy: Type.Union([
      Type.Object({
        commandId: Type.Union([Type.String(), Type.Null()]),
        reason: Type.String({ description: "the stop reason's kind: idle, manual, ..." }),
      }),
      Type.Null(),
    ]),
    fromPool: Type.Boolean(),
    events: Type.Array(
      Type.Object({ type: Type.String(), occurredAt: Type.String(), eventId: Type.String() }),
      { description: 'its events in the history, oldest first' },
    ),
  },
  { $id: 'Generation' },
);
export type GenerationJson = Static<typeof GenerationJsonSchema>;

const STOPPING_EVENT_TYPES = new Set<string>([
  'container.terminating',
  'container.stopped',
  'container.failed',
]);

function byOccurrence(a: BerthEvent, b: BerthEvent): number {
  return a.occurredAt < b.occurredAt ? -1 : a.occurredAt > b.occurredAt ? 1 : 0;
}

function seconds(from: string, to: string): number {
  return Math.max(0, (Date.parse(to) - Date.parse(from)) / 1000);
}

/**
 * A container's generations from its events (any order, duplicates allowed), newest first.
 * `stoppedBy` names the command that asked for the stop (a `container.stop` or the stop route's
 * event's commandId, when there is one) and the stop reason's kind.
 */
export function generationsOf(events: readonly BerthEvent[]): GenerationJson[] {
  const byGeneration = new Map<number, BerthEvent[]>();
  const seen = new Set<string>();
  for (const event of [...events].sort(byOccurrence)) {
    if (seen.has(event.eventId)) continue;
    seen.add(event.eventId);
    const container = containerOf(event);
    const generation =
      container?.generation ??
      (typeof event.payload['generation'] === 'number' ? event.payload['generation'] : undefined);
    if (generation === undefined) continue;
    byGeneration.set(generation, [...(byGeneration.get(generation) ?? []), event]);
  }
  return [...byGeneration.entries()]
    .sort(([a], [b]) => b - a)
    .map(([generation, generationEvents]) => {
      const snapshots = generationEvents
        .map((event) => containerOf(event))
        .filter((c): c is HistoryContainer => c !== undefined);
      const latest = snapshots.at(-1);
      const values = (pick: (snapshot: HistoryContainer) => string | null | undefined) =>
        snapshots.map(pick).filter((value): value is string => typeof value === 'string');
      const createdAt = values((s) => s.createdAt)[0] ?? null;
      const startedAt = values((s) => s.startedAt)[0] ?? null;
      const stoppedAt = values((s) => s.stoppedAt).at(-1) ?? null;
      const stopReason = values((s) => s.stopReason).at(-1) ?? null;
      const stopping = generationEvents.filter((event) => STOPPING_EVENT_TYPES.has(event.type));
      const commandId = stopping.map((event) => event.commandId).find((id) => id) ?? null;
      const ended = generationEvents.some((event) => FINAL_EVENT_TYPES.has(event.type));
      return {
        generation,
        status: latest?.status ?? 'unknown',
        createdAt,
        startedAt,
        stoppedAt,
        stopReason,
        durationSeconds: createdAt && stoppedAt && ended ? seconds(createdAt, stoppedAt) : null,
        stoppedBy:
          stopReason !== null
            ? { commandId, reason: stopReason.split(':')[0] ?? stopReason }
            : null,
        fromPool: snapshots.some((snapshot) => snapshot.fromPool === true),
        events: generationEvents.map(({ type, occurredAt, eventId }) => ({
          type,
          occurredAt,
          eventId,
        })),
      };
    });
}

export const UsageRowSchema = Type.Object(
  {
    clientId: Type.String(),
    projectId: Type.String(),
    day: Type.String({ description: 'YYYY-MM-DD (UTC)' }),
    containerHours: Type.Number({
      description:
        "hours the client's containers of this project existed that day (created to stopped)",
    }),
    sessions: Type.Integer({ description: 'sessions assigned that day' }),
    generations: Type.Integer({ description: 'generations created that day' }),
  },
  { $id: 'UsageRow' },
);
export type UsageRow = Static<typeof UsageRowSchema>;

const DAY_PATTERN = /^\d{4}-\d{2}-\d{2}$/;

/** `YYYY-MM-DD` of an instant, in UTC. */
export function dayOf(instant: string | number): string {
  return new Date(instant).toISOString().slice(0, 10);
}

/** A day as `YYYY-MM-DD`, refused naming the field otherwise. */
export function parseDay(raw: string, field: string): string {
  if (!DAY_PATTERN.test(raw) || Number.isNaN(Date.parse(`${raw}T00:00:00.000Z`))) {
    throw new InvalidArgumentError(`${field} must be a day as YYYY-MM-DD; got "${raw}"`, field);
  }
  if (dayOf(`${raw}T00:00:00.000Z`) !== raw) {
    throw new InvalidArgumentError(`${field} is not a day of the calendar: "${raw}"`, field);
  }
  return raw;
}

/** Hours rounded to the millihour, so sums read cleanly. */
export const hours = (ms: number) => Math.round(ms / 3_600) / 1000;

/**
 * Usage per (client, project, day) over the days `fromDay`..`toDay` (both included, UTC) from
 * history events: each generation counts from its `createdAt` to its `stoppedAt` (to `now` while
 * live), split at midnights; sessions are `session.assigned` events; rows with nothing are left
 * out. A generation whose every event has expired from the history is not counted.
 */
export function usageOf(
  events: readonly BerthEvent[],
  fromDay: string,
  toDay: string,
  now: number,
): UsageRow[] {
  const windowStart = Date.parse(`${fromDay}T00:00:00.000Z`);
  const windowEnd = Date.parse(`${toDay}T00:00:00.000Z`) + DAY_MS;
  const rows = new Map<string, UsageRow>();
  const row = (clientId: string, projectId: string, day: string): UsageRow => {
    const key = JSON.stringify([clientId, projectId, day]);
    let found = rows.get(key);
    if (!found) {
      found = { clientId, projectId, day, containerHours: 0, sessions: 0, generations: 0 };
      rows.set(key, found);
    }
    return found;
  };
  // The latest snapshot of each generation, and whether it has ended.
  const generations = new Map<string, { container: HistoryContainer; ended: boolean }>();
  const sessions = new Set<string>();
  for (const event of [...events].sort(byOccurrence)) {
    if (event.type === 'session.assigned') {
      const owner = eventOwner(event);
      const at = Date.parse(event.occurredAt);
      if (!owner || !event.sessionId || sessions.has(event.sessionId)) continue;
      if (at < windowStart || at >= windowEnd) continue;
      sessions.add(event.sessionId);
      row(owner.clientId, owner.projectId, dayOf(at)).sessions += 1;
      continue;
    }
    const container = containerOf(event);
    if (!container) continue;
    const key = `${container.containerId}#${container.generation}`;
    const before = generations.get(key);
    generations.set(key, {
      container,
      ended: (before?.ended ?? false) || FINAL_EVENT_TYPES.has(event.type),
    });
  }
  for (const { container, ended } of generations.values()) {
    const start = Date.parse(container.createdAt);
    if (Number.isNaN(start)) continue;
    if (start >= windowStart && start < windowEnd) {
      row(container.clientId, container.projectId, dayOf(start)).generations += 1;
    }
    // A generation whose end is not in the history yet is counted up to now.
    const stop = ended && container.stoppedAt ? Date.parse(container.stoppedAt) : now;
    let from = Math.max(start, windowStart);
    const until = Math.min(stop, windowEnd, now);
    while (from < until) {
      const midnight = (Math.floor(from / DAY_MS) + 1) * DAY_MS;
      const end = Math.min(midnight, until);
      row(container.clientId, container.projectId, dayOf(from)).containerHours += end - from;
      from = end;
    }
  }
  return [...rows.values()]
    .map((usage) => ({ ...usage, containerHours: hours(usage.containerHours) }))
    .sort(
      (a, b) =>
        a.day.localeCompare(b.day) ||
        a.clientId.localeCompare(b.clientId) ||
        a.projectId.localeCompare(b.projectId),
    );
}
