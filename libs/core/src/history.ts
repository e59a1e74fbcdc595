import {
  InvalidArgumentError,
  NotFoundError,
  dayOf,
  eventOwner,
  generationsOf,
  parseDay,
  usageContributions,
  usageOf,
  containerOf,
  type BerthEvent,
  type Clock,
  type GenerationJson,
  type HistoryFilter,
  type HistoryStore,
  type Page,
  type UsageRow,
} from '@berth/domain';

const DAY_MS = 86_400_000;
/** The longest usage range one request may ask for. */
export const MAX_USAGE_DAYS = 366;
/** Pages of a container's events read for its generations (100 each). */
const MAX_GENERATION_PAGES = 20;

/** A usage metric observation: the name, the value, its client as the metric's dimension. */
export type UsageMetricSink = (
  name: 'ContainerHours' | 'SessionsAssigned',
  value: number,
  clientDimension: string,
) => void;

export interface LifecycleHistoryDeps {
  store: HistoryStore;
  clock: Clock;
  retentionMs: number;
  /** Where usage metrics go (EMF); none when absent. */
  usageMetric?: UsageMetricSink;
  /** Clients whose usage metrics carry their own id; every other one is `other`. */
  metricClients?: readonly string[];
}

export interface UsageQuery {
  /** Undefined: every client (an admin's). */
  clientId?: string;
  /** Only this user's containers (a `user` token's usage). */
  userId?: string;
  from?: string;
  to?: string;
}

export interface UsageAnswer {
  clientId: string | null;
  from: string;
  to: string;
  /** The oldest instant the history still holds: usage before it is not counted. */
  retainedSince: string;
  days: UsageRow[];
  totals: { containerHours: number; sessions: number; generations: number };
}

/**
 * The lifecycle history (issue 18): keeps each published event (idempotent by eventId), lists
 * them, reads a container's generations and a client's usage back. Called by the task watcher's
 * history consumer (writes) and by discovery (reads).
 */
export class LifecycleHistory {
  readonly #deps: LifecycleHistoryDeps;
  readonly #metricClients: ReadonlySet<string>;

  constructor(deps: LifecycleHistoryDeps) {
    this.#deps = deps;
    this.#metricClients = new Set(deps.metricClients ?? []);
  }

  /**
   * Keeps one event for the retention, counted from when it occurred (an event already past it
   * is not kept). A duplicate changes nothing and counts no usage metric twice.
   */
  async record(event: BerthEvent): Promise<'stored' | 'duplicate' | 'expired'> {
    const expiresAt = Date.parse(event.occurredAt) + this.#deps.retentionMs;
    if (!(expiresAt > this.#deps.clock.now().getTime())) return 'expired';
    const outcome = await this.#deps.store.record(event, expiresAt, usageContributions(event));
    if (outcome === 'stored') this.#countUsage(event);
    return outcome;
  }

  list(filter: HistoryFilter, limit: number, cursor?: string): Promise<Page<BerthEvent>> {
    return this.#deps.store.list(filter, limit, cursor);
  }

  /** Its generations still in the history, newest first; 404 when it has none. */
  async generations(containerId: string): Promise<GenerationJson[]> {
    const events: BerthEvent[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < MAX_GENERATION_PAGES; page += 1) {
      const listed = await this.#deps.store.list({ containerId }, 100, cursor);
      events.push(...listed.items);
      if (!listed.nextCursor) break;
      cursor = listed.nextCursor;
    }
    const generations = generationsOf(events);
    if (generations.length === 0) {
      throw new NotFoundError(`container ${containerId} has no history (kept for the retention)`);
    }
    return generations;
  }

  async usage(query: UsageQuery): Promise<UsageAnswer> {
    const now = this.#deps.clock.now().getTime();
    const today = dayOf(now);
    const retainedSince = new Date(now - this.#deps.retentionMs).toISOString();
    const to = query.to !== undefined ? parseDay(query.to, 'to') : today;
    const from =
      query.from !== undefined ? parseDay(query.from, 'from') : dayOf(Date.parse(retainedSince));
    if (from > to) throw new InvalidArgumentError(`from (${from}) is after to (${to})`, 'from');
    const span = (Date.parse(to) - Date.parse(from)) / DAY_MS + 1;
    if (span > MAX_USAGE_DAYS) {
      throw new InvalidArgumentError(
        `from..to spans ${span} days; at most ${MAX_USAGE_DAYS}`,
        'from',
      );
    }
    // Days the history holds whole are computed from it (live generations included); older
    // days come from the daily rollup, which counts a generation once it is final.
    const firstWholeDay = dayOf(Date.parse(dayOf(Date.parse(retainedSince))) + DAY_MS);
    const rolledUp =
      from < firstWholeDay
        ? await this.#deps.store.usageRollup(
            query.clientId,
            from,
            to < firstWholeDay ? to : dayOf(Date.parse(firstWholeDay) - DAY_MS),
          )
        : [];
    // A user's usage is its own containers' only: the rollup is per project, so a user gets
    // none of it (documented), and its history days only.
    let days: UsageRow[] = query.userId === undefined ? rolledUp : [];
    if (to >= firstWholeDay) {
      // Everything retained up to the range's end: a generation started before `from` and
      // still running in it is known only from its earlier events.
      const end = new Date(Date.parse(to) + DAY_MS).toISOString();
      const events = await this.#deps.store.usageEvents(query.clientId, retainedSince, end);
      const mine =
        query.userId === undefined
          ? events
          : events.filter((event) => eventOwner(event)?.userId === query.userId);
      days = [...days, ...usageOf(mine, from > firstWholeDay ? from : firstWholeDay, to, now)];
    }
    days.sort(
      (a, b) =>
        a.day.localeCompare(b.day) ||
        a.clientId.localeCompare(b.clientId) ||
        a.projectId.localeCompare(b.projectId),
    );
    const round = (value: number) => Math.round(value * 1000) / 1000;
    return {
      clientId: query.clientId ?? null,
      from,
      to,
      retainedSince,
      days,
      totals: {
        containerHours: round(days.reduce((sum, row) => sum + row.containerHours, 0)),
        sessions: days.reduce((sum, row) => sum + row.sessions, 0),
        generations: days.reduce((sum, row) => sum + row.generations, 0),
      },
    };
  }

  /** The client as a metric dimension: its own id when allowed, else `other` (bounded). */
  metricDimension(clientId: string): string {
    return this.#metricClients.has(clientId) ? clientId : 'other';
  }

  #countUsage(event: BerthEvent): void {
    const sink = this.#deps.usageMetric;
    if (!sink) return;
    const owner = eventOwner(event);
    if (!owner) return;
    if (event.type === 'session.assigned') {
      sink('SessionsAssigned', 1, this.metricDimension(owner.clientId));
      return;
    }
    if (event.type !== 'container.stopped' && event.type !== 'container.failed') return;
    const container = containerOf(event);
    if (!container?.stoppedAt) return;
    const ms = Date.parse(container.stoppedAt) - Date.parse(container.createdAt);
    if (Number.isFinite(ms) && ms > 0)
      sink('ContainerHours', ms / 3_600_000, this.metricDimension(owner.clientId));
  }
}
