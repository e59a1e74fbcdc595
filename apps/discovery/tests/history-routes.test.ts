import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { LifecycleHistory, UseCases } from '@berth/core';
import { makeEvent, parseContainerId, type BerthEvent, type EventType } from '@berth/domain';
import { DynamoHistoryStore, ensureHistoryTable } from '@berth/dynamodb';
import { makeCoreDeps } from '@berth/testing';
import type { FastifyInstance } from 'fastify';
import { createSigner } from 'fast-jwt';
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import { buildDiscoveryApp } from '../src/app.ts';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256!';
const sign = createSigner({ key: SECRET, algorithm: 'HS256' });
const admin = sign({ client: 'admin', sub: 'root', role: 'admin' });
const john = sign({ client: 'acme', sub: 'john', role: 'user' });
const acmeService = sign({ client: 'acme', sub: 'svc', role: 'service' });
const globexService = sign({ client: 'globex', sub: 'svc', role: 'service' });

const HOUR = 3_600_000;
const NOW = Date.parse('2026-03-10T12:00:00.000Z');
const clock = { now: () => new Date(NOW) };
const iso = (ms: number) => new Date(ms).toISOString();

const dynamodb = new DynamoDBClient({});
const table = `routes-history-${randomUUID().slice(0, 8)}`;
let app: FastifyInstance;
let history: LifecycleHistory;

interface Generation {
  containerId: string;
  generation: number;
  createdAt: number;
  stoppedAt?: number;
  stopReason?: string;
  stopCommand?: string;
}

/** The events of one generation as berth publishes them (the container JSON as far as read). */
function generationEvents(g: Generation): BerthEvent[] {
  const key = parseContainerId(g.containerId);
  const snapshot = (status: string, final: boolean) => ({
    ...key,
    containerId: g.containerId,
    generation: g.generation,
    status,
    createdAt: iso(g.createdAt),
    startedAt: iso(g.createdAt + 60_000),
    stoppedAt: final && g.stoppedAt ? iso(g.stoppedAt) : null,
    stopReason: g.stopReason ?? null,
    fromPool: false,
  });
  const one = (type: EventType, at: number, status: string, final = false, commandId?: string) =>
    makeEvent({
      type,
      cause: `${g.containerId}#${g.generation}`,
      occurredAt: iso(at),
      containerId: g.containerId,
      commandId: commandId ?? null,
      payload: { container: snapshot(status, final) },
    });
  const events = [
    one('container.created', g.createdAt, 'starting'),
    one('container.running', g.createdAt + 60_000, 'running'),
  ];
  if (g.stoppedAt !== undefined) {
    events.push(
      one('container.terminating', g.stoppedAt - 60_000, 'terminating', false, g.stopCommand),
      one('container.stopped', g.stoppedAt, 'stopped', true),
    );
  }
  return events;
}

const get = (url: string, token: string) =>
  app.inject({ method: 'GET', url, headers: { authorization: `Bearer ${token}` } });

beforeAll(async () => {
  await ensureHistoryTable(dynamodb, table);
  history = new LifecycleHistory({
    store: new DynamoHistoryStore({
      client: dynamodb,
      historyTable: table,
      retentionMs: 7 * 24 * HOUR,
      clock,
    }),
    clock,
    retentionMs: 7 * 24 * HOUR,
  });
  const events = [
    // john: generation 1 stopped idle yesterday (6 h), generation 2 stopped by a command today (1 h).
    ...generationEvents({
      containerId: 'acme.site.john',
      generation: 1,
      createdAt: NOW - 26 * HOUR,
      stoppedAt: NOW - 20 * HOUR,
      stopReason: 'idle',
    }),
    ...generationEvents({
      containerId: 'acme.site.john',
      generation: 2,
      createdAt: NOW - 2 * HOUR,
      stoppedAt: NOW - HOUR,
      stopReason: 'manual:bye',
      stopCommand: 'cmd-stop',
    }),
    makeEvent({
      type: 'session.assigned',
      cause: 'session/s-john',
      occurredAt: iso(NOW - 2 * HOUR + 120_000),
      containerId: 'acme.site.john',
      sessionId: 's-john',
      payload: { containerId: 'acme.site.john' },
    }),
    // mary: running for 3 h; globex's ann: running for 5 h.
    ...generationEvents({
      containerId: 'acme.site.mary',
      generation: 1,
      createdAt: NOW - 3 * HOUR,
    }),
    ...generationEvents({
      containerId: 'globex.app.ann',
      generation: 1,
      createdAt: NOW - 5 * HOUR,
    }),
  ];
  for (const event of events) await history.record(event);
});

beforeEach(async () => {
  const deps = makeCoreDeps();
  app = await buildDiscoveryApp({
    useCases: new UseCases(deps),
    history,
    store: deps.store,
    publisher: deps.publisher,
    authSecret: SECRET,
    cacheTtlMs: 0,
    registry: new Registry(),
  });
});

afterEach(async () => {
  await app.close();
});

afterAll(() => {
  dynamodb.destroy();
});

const containersOf = (body: { events: BerthEvent[] }) =>
  [...new Set(body.events.map((event) => event.containerId))].sort();

describe('GET /v1/events', () => {
  it('shows an admin every client, a service its client, a user its own containers', async () => {
    // Act
    const all = await get('/v1/events?limit=100', admin);
    const acme = await get('/v1/events?limit=100', acmeService);
    const own = await get('/v1/events?limit=100', john);
    // Assert
    expect(all.statusCode).toBe(200);
    expect(containersOf(all.json())).toEqual([
      'acme.site.john',
      'acme.site.mary',
      'globex.app.ann',
    ]);
    expect(containersOf(acme.json())).toEqual(['acme.site.john', 'acme.site.mary']);
    expect(containersOf(own.json())).toEqual(['acme.site.john']);
    expect(own.json().events).toHaveLength(9);
  });

  it('pages newest first with a cursor, and filters by type pattern and since', async () => {
    // Act
    const first = await get('/v1/events?containerId=acme.site.john&limit=4', john);
    const second = await get(
      `/v1/events?containerId=acme.site.john&limit=4&cursor=${first.json().nextCursor}`,
      john,
    );
    const stops = await get('/v1/events?clientId=acme&type=container.stopped', acmeService);
    const sessions = await get('/v1/events?type=session.*', john);
    const recent = await get(`/v1/events?since=${iso(NOW - 90 * 60_000)}`, john);
    // Assert
    const times = [...first.json().events, ...second.json().events].map(
      (event: BerthEvent) => event.occurredAt,
    );
    expect(times).toEqual([...times].sort().reverse());
    expect(times).toHaveLength(8);
    expect(stops.json().events.map((e: BerthEvent) => e.eventId)).toEqual([
      'acme.site.john#2/container.stopped',
      'acme.site.john#1/container.stopped',
    ]);
    expect(sessions.json().events.map((e: BerthEvent) => e.sessionId)).toEqual(['s-john']);
    expect(recent.json().events.map((e: BerthEvent) => e.type)).toEqual([
      'container.stopped',
      'container.terminating',
    ]);
  });

  it("refuses another tenant's or user's events with 403", async () => {
    // Act
    const otherClient = await get('/v1/events?clientId=globex', acmeService);
    const otherUser = await get('/v1/events?containerId=acme.site.mary', john);
    const otherTenant = await get('/v1/events?containerId=acme.site.john', globexService);
    // Assert
    expect([otherClient.statusCode, otherUser.statusCode, otherTenant.statusCode]).toEqual([
      403, 403, 403,
    ]);
    expect(otherClient.json().error.code).toBe('forbidden');
  });

  it("reads another user's session as empty", async () => {
    // Act
    const asMary = await get(
      '/v1/events?sessionId=s-john',
      sign({ client: 'acme', sub: 'mary', role: 'user' }),
    );
    const asJohn = await get('/v1/events?sessionId=s-john', john);
    // Assert
    expect(asMary.json().events).toEqual([]);
    expect(asJohn.json().events).toHaveLength(1);
  });

  it.each([
    ['containerId=acme.site.john&clientId=acme', 'clientId'],
    ['type=container.bogus', 'type'],
    ['type=*', 'type'],
    ['since=yesterday', 'since'],
    ['limit=0', 'limit'],
    ['containerId=not-a-container', 'containerId'],
    ['cursor=abc', 'cursor'],
    ['colour=blue', 'colour'],
  ])('answers %s with 400 naming %s', async (query, field) => {
    // Act
    const response = await get(`/v1/events?${query}`, admin);
    // Assert
    expect(response.statusCode).toBe(400);
    expect(response.json().error).toMatchObject({ code: 'invalid_argument', field });
  });
});

describe('GET /v1/containers/{id}/history', () => {
  it('tells each generation: started, stopped, why, how long, by whom', async () => {
    // Act
    const response = await get('/v1/containers/acme.site.john/history', john);
    // Assert
    expect(response.statusCode).toBe(200);
    const { generations } = response.json();
    expect(generations).toHaveLength(2);
    expect(generations[0]).toMatchObject({
      generation: 2,
      status: 'stopped',
      createdAt: iso(NOW - 2 * HOUR),
      startedAt: iso(NOW - 2 * HOUR + 60_000),
      stoppedAt: iso(NOW - HOUR),
      stopReason: 'manual:bye',
      durationSeconds: 3600,
      stoppedBy: { commandId: 'cmd-stop', reason: 'manual' },
    });
    expect(generations[1]).toMatchObject({
      generation: 1,
      durationSeconds: 6 * 3600,
      stoppedBy: { commandId: null, reason: 'idle' },
    });
    expect(generations[0].events.map((e: { type: string }) => e.type)).toEqual([
      'container.created',
      'container.running',
      'container.terminating',
      'container.stopped',
    ]);
  });

  it('shows a live generation without a stop, and 404 for a container without history', async () => {
    // Act
    const live = await get('/v1/containers/acme.site.mary/history', acmeService);
    const none = await get('/v1/containers/acme.site.nobody/history', acmeService);
    const foreign = await get('/v1/containers/acme.site.mary/history', john);
    // Assert
    expect(live.json().generations[0]).toMatchObject({
      status: 'running',
      stoppedAt: null,
      durationSeconds: null,
      stoppedBy: null,
    });
    expect(none.statusCode).toBe(404);
    expect(foreign.statusCode).toBe(403);
  });
});

describe('GET /v1/usage', () => {
  it('counts container-hours, generations and sessions per client, project and day', async () => {
    // Act
    const response = await get('/v1/usage?from=2026-03-09&to=2026-03-10', acmeService);
    // Assert
    expect(response.statusCode).toBe(200);
    expect(response.json()).toMatchObject({
      clientId: 'acme',
      from: '2026-03-09',
      to: '2026-03-10',
      days: [
        {
          clientId: 'acme',
          projectId: 'site',
          day: '2026-03-09',
          containerHours: 6,
          sessions: 0,
          generations: 1,
        },
        {
          clientId: 'acme',
          projectId: 'site',
          day: '2026-03-10',
          containerHours: 4,
          sessions: 1,
          generations: 2,
        },
      ],
      totals: { containerHours: 10, sessions: 1, generations: 3 },
    });
  });

  it("gives a user its own containers' usage and an admin every client's", async () => {
    // Act
    const own = await get('/v1/usage?from=2026-03-10&to=2026-03-10', john);
    const everyone = await get('/v1/usage?from=2026-03-10&to=2026-03-10', admin);
    // Assert
    expect(own.json().days).toEqual([
      {
        clientId: 'acme',
        projectId: 'site',
        day: '2026-03-10',
        containerHours: 1,
        sessions: 1,
        generations: 1,
      },
    ]);
    expect(everyone.json().clientId).toBeNull();
    expect(
      everyone
        .json()
        .days.map((row: { clientId: string; containerHours: number }) => [
          row.clientId,
          row.containerHours,
        ]),
    ).toEqual([
      ['acme', 4],
      ['globex', 5],
    ]);
  });

  it.each([
    ['clientId=globex', 403, undefined, acmeService],
    ['from=2026-03-11&to=2026-03-10', 400, 'from', admin],
    ['to=2026-02-30', 400, 'to', admin],
    ['from=10-03-2026', 400, 'from', admin],
    ['from=2024-01-01&to=2026-03-10', 400, 'from', admin],
    ['clientId=Not_An_Id', 400, 'clientId', admin],
  ])('answers %s with %i', async (query, status, field, token) => {
    // Act
    const response = await get(`/v1/usage?${query}`, token);
    // Assert
    expect(response.statusCode).toBe(status);
    if (field !== undefined) expect(response.json().error.field).toBe(field);
  });
});

describe('GET /v1/usage before the retention', () => {
  it('answers days the history no longer holds from the daily rollup; a user token gets none of it', async () => {
    // Prepare: a history whose clock moves: a generation kept on 2026-03-10, read 10 days later.
    let now = NOW;
    const moving = { now: () => new Date(now) };
    const aged = new LifecycleHistory({
      store: new DynamoHistoryStore({
        client: dynamodb,
        historyTable: table,
        retentionMs: 7 * 24 * HOUR,
        clock: moving,
      }),
      clock: moving,
      retentionMs: 7 * 24 * HOUR,
    });
    for (const event of generationEvents({
      containerId: 'initech.portal.pam',
      generation: 1,
      createdAt: NOW - 4 * HOUR,
      stoppedAt: NOW - HOUR,
      stopReason: 'idle',
    }))
      await aged.record(event);
    now = NOW + 10 * 24 * HOUR;
    const deps = makeCoreDeps();
    const later = await buildDiscoveryApp({
      useCases: new UseCases(deps),
      history: aged,
      store: deps.store,
      publisher: deps.publisher,
      authSecret: SECRET,
      cacheTtlMs: 0,
      registry: new Registry(),
    });
    const ask = (token: string) =>
      later.inject({
        method: 'GET',
        url: '/v1/usage?from=2026-03-10&to=2026-03-10',
        headers: { authorization: `Bearer ${token}` },
      });

    try {
      // Act
      const service = await ask(sign({ client: 'initech', sub: 'svc', role: 'service' }));
      const user = await ask(sign({ client: 'initech', sub: 'pam', role: 'user' }));
      const events = await later.inject({
        method: 'GET',
        url: '/v1/events?clientId=initech',
        headers: { authorization: `Bearer ${admin}` },
      });

      // Assess: the events have expired; their usage has not.
      expect(events.json().events).toEqual([]);
      expect(service.json().days).toEqual([
        {
          clientId: 'initech',
          projectId: 'portal',
          day: '2026-03-10',
          containerHours: 3,
          sessions: 0,
          generations: 1,
        },
      ]);
      expect(user.json().days).toEqual([]);
    } finally {
      await later.close();
    }
  });
});
