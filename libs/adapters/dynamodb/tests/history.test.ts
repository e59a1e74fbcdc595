import { GetCommand, DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';
import {
  InvalidArgumentError,
  makeEvent,
  usageContributions,
  type BerthEvent,
  type EventType,
  type HistoryFilter,
} from '@berth/domain';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { DynamoHistoryStore, ensureHistoryTable } from '../src/index.ts';
import { destroyClients, newClient } from './helpers.ts';

afterAll(destroyClients);

const DAY = 86_400_000;
const NOW = Date.parse('2026-03-10T12:00:00.000Z');
const RETENTION = 7 * DAY;
const clock = { now: () => new Date(NOW) };

const iso = (ms: number) => new Date(ms).toISOString();

function event(
  type: EventType,
  occurredAt: number,
  ids: { containerId?: string; sessionId?: string; cause?: string },
): BerthEvent {
  return makeEvent({
    type,
    cause: ids.cause ?? `${ids.containerId ?? ids.sessionId ?? 'x'}#${occurredAt}`,
    occurredAt: iso(occurredAt),
    containerId: ids.containerId ?? null,
    sessionId: ids.sessionId ?? null,
    payload: ids.containerId ? { containerId: ids.containerId } : {},
  });
}

async function listAll(
  store: DynamoHistoryStore,
  filter: HistoryFilter,
  limit: number,
): Promise<{ events: BerthEvent[]; pages: number }> {
  const events: BerthEvent[] = [];
  let cursor: string | undefined;
  for (let pages = 1; pages <= 100; pages += 1) {
    const page = await store.list(filter, limit, cursor);
    expect(page.items.length).toBeLessThanOrEqual(limit);
    events.push(...page.items);
    if (page.nextCursor === null) return { events, pages };
    cursor = page.nextCursor;
  }
  throw new Error('paging did not end');
}

const newestFirst = (events: BerthEvent[]) =>
  [...events].sort((a, b) => (a.occurredAt < b.occurredAt ? 1 : -1)).map((e) => e.eventId);

describe('DynamoHistoryStore (DynamoDB Local)', () => {
  const table = `history-${randomUUID().slice(0, 8)}`;
  const client = newClient();
  let store: DynamoHistoryStore;
  const john = 'acme.site.john';
  const mary = 'acme.site.mary';
  const other = 'globex.app.ann';
  const johnEvents: BerthEvent[] = [];

  beforeAll(async () => {
    await ensureHistoryTable(client, table);
    store = new DynamoHistoryStore({
      client,
      historyTable: table,
      retentionMs: RETENTION,
      clock,
    });
    // John: 7 events over three days; Mary and Globex: one each; a command.rejected: no owner.
    const types: EventType[] = [
      'container.created',
      'container.running',
      'session.assigned',
      'container.idle',
      'container.terminating',
      'container.stopped',
      'container.created',
    ];
    types.forEach((type, index) => {
      johnEvents.push(
        event(type, NOW - 3 * DAY + index * 11 * 3_600_000, {
          containerId: john,
          ...(type === 'session.assigned' ? { sessionId: 'thread-1' } : {}),
        }),
      );
    });
    const others = [
      event('container.created', NOW - 2 * 3_600_000, { containerId: mary }),
      event('container.created', NOW - 3_600_000, { containerId: other }),
      event('command.rejected', NOW - 60_000, { cause: 'message/m1' }),
    ];
    for (const kept of [...johnEvents, ...others]) {
      await expect(store.record(kept, Date.parse(kept.occurredAt) + RETENTION)).resolves.toBe(
        'stored',
      );
    }
  });

  it('keeps an event once: the same eventId again is a duplicate and changes nothing', async () => {
    // Arrange
    const first = johnEvents[0]!;
    const changed = { ...first, payload: { containerId: john, note: 'redelivered' } };
    // Act
    const outcome = await store.record(changed, NOW + DAY);
    // Assert
    expect(outcome).toBe('duplicate');
    const documents = DynamoDBDocumentClient.from(client);
    const { Item } = await documents.send(
      new GetCommand({ TableName: table, Key: { eventId: first.eventId } }),
    );
    expect(Item?.['event']).toEqual(first);
  });

  it("lists a container's events newest first, paged, each once", async () => {
    // Act
    const { events, pages } = await listAll(store, { containerId: john }, 3);
    // Assert
    expect(events.map((e) => e.eventId)).toEqual(newestFirst(johnEvents));
    expect(pages).toBeGreaterThanOrEqual(3);
  });

  it('filters by type, exactly or by family, and by since', async () => {
    // Act
    const created = await listAll(
      store,
      { containerId: john, type: { exact: 'container.created' } },
      10,
    );
    const sessions = await listAll(store, { containerId: john, type: { prefix: 'session.' } }, 10);
    const since = johnEvents[4]!.occurredAt;
    const recent = await listAll(store, { containerId: john, since }, 10);
    // Assert
    expect(created.events.map((e) => e.type)).toEqual(['container.created', 'container.created']);
    expect(sessions.events.map((e) => e.type)).toEqual(['session.assigned']);
    expect(recent.events.map((e) => e.eventId)).toEqual(newestFirst(johnEvents.slice(4)));
  });

  it('never lists an event past its expiry, though TTL has not deleted it', async () => {
    // Arrange: kept with an expiry an hour ago (DynamoDB Local never runs TTL deletes).
    const expired = event('container.failed', NOW - 2 * DAY, { containerId: john, cause: 'old' });
    await store.record(expired, NOW - 3_600_000);
    // Act
    const { events } = await listAll(store, { containerId: john }, 50);
    const usage = await store.usageEvents('acme', iso(NOW - RETENTION), iso(NOW + DAY));
    // Assert
    expect(events.map((e) => e.eventId)).not.toContain(expired.eventId);
    expect(usage.map((e) => e.eventId)).not.toContain(expired.eventId);
    expect(events).toHaveLength(johnEvents.length);
  });

  it("lists a client's, a user's and a session's events, scoped", async () => {
    // Act
    const acme = await listAll(store, { clientId: 'acme' }, 4);
    const johnOnly = await listAll(store, { clientId: 'acme', userId: 'john' }, 4);
    const sessionAsMary = await listAll(
      store,
      { sessionId: 'thread-1', clientId: 'acme', userId: 'mary' },
      4,
    );
    const sessionAsJohn = await listAll(
      store,
      { sessionId: 'thread-1', clientId: 'acme', userId: 'john' },
      4,
    );
    // Assert
    expect(acme.events).toHaveLength(johnEvents.length + 1);
    expect(new Set(acme.events.map((e) => e.containerId))).toEqual(new Set([john, mary]));
    expect(johnOnly.events.map((e) => e.eventId)).toEqual(newestFirst(johnEvents));
    expect(sessionAsMary.events).toEqual([]);
    expect(sessionAsJohn.events.map((e) => e.type)).toEqual(['session.assigned']);
  });

  it('lists everything for an admin across days, newest first, owner-less events too', async () => {
    // Act
    const { events } = await listAll(store, {}, 2);
    // Assert
    expect(events).toHaveLength(johnEvents.length + 3);
    expect(events[0]?.type).toBe('command.rejected');
    expect(events.map((e) => e.eventId)).toEqual(newestFirst(events));
  });

  it('refuses a cursor of another query, naming the field', async () => {
    // Arrange
    const page = await store.list({ containerId: john }, 1);
    // Act
    const other = store.list({ containerId: mary }, 1, page.nextCursor ?? '');
    const garbage = store.list({ containerId: john }, 1, 'not-a-cursor');
    // Assert
    await expect(other).rejects.toThrow(InvalidArgumentError);
    await expect(other).rejects.toMatchObject({ field: 'cursor' });
    await expect(garbage).rejects.toMatchObject({ field: 'cursor' });
  });

  it("reads a client's container and session.assigned events for usage", async () => {
    // Act
    const usage = await store.usageEvents('acme', iso(NOW - RETENTION), iso(NOW + DAY));
    // Assert
    expect(usage.map((e) => e.type).sort()).toEqual(
      [...johnEvents.map((e) => e.type), 'container.created'].sort(),
    );
  });

  it('adds an event to the daily rollup exactly once, in the transaction that keeps it', async () => {
    // Prepare: a generation of globex's 'shop' from 22:00 to 01:30 the next day, stopped.
    const created = Date.parse('2026-03-08T22:00:00.000Z');
    const stoppedAt = Date.parse('2026-03-09T01:30:00.000Z');
    const stopped = makeEvent({
      type: 'container.stopped',
      cause: 'globex.shop.bob#1',
      occurredAt: iso(stoppedAt),
      containerId: 'globex.shop.bob',
      payload: {
        container: {
          containerId: 'globex.shop.bob',
          clientId: 'globex',
          projectId: 'shop',
          userId: 'bob',
          generation: 1,
          status: 'stopped',
          createdAt: iso(created),
          stoppedAt: iso(stoppedAt),
        },
      },
    });
    const shares = usageContributions(stopped);

    // Act
    const first = await store.record(stopped, stoppedAt + RETENTION, shares);
    const again = await store.record(stopped, stoppedAt + RETENTION, shares);
    const globex = await store.usageRollup('globex', '2026-03-08', '2026-03-09');
    const everyone = await store.usageRollup(undefined, '2026-03-09', '2026-03-09');
    const acme = await store.usageRollup('acme', '2026-03-08', '2026-03-09');
    // Three weeks: the days are read a few at a time, still in day order.
    const weeks = await store.usageRollup('globex', '2026-02-20', '2026-03-12');

    // Assess
    expect([first, again]).toEqual(['stored', 'duplicate']);
    expect(globex).toEqual([
      {
        clientId: 'globex',
        projectId: 'shop',
        day: '2026-03-08',
        containerHours: 2,
        sessions: 0,
        generations: 0,
      },
      {
        clientId: 'globex',
        projectId: 'shop',
        day: '2026-03-09',
        containerHours: 1.5,
        sessions: 0,
        generations: 0,
      },
    ]);
    expect(everyone.map((row) => row.clientId)).toEqual(['globex']);
    expect(acme).toEqual([]);
    expect(weeks).toEqual(globex);
  });
});
