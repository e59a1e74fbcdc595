import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { UseCases } from '@berth/core';
import { systemClock, type ContainerJson } from '@berth/domain';
import { DynamoStateStore, ensureTables } from '@berth/dynamodb';
import { makeCoreDeps, type FakeCoreDeps } from '@berth/testing';
import type { FastifyInstance } from 'fastify';
import { createSigner } from 'fast-jwt';
import { randomUUID } from 'node:crypto';
import { Registry } from 'prom-client';
import {
  PREVIEW_COOKIE_AUDIENCE,
  PREVIEW_URL_AUDIENCE,
  createPreviewTokenVerifier,
} from '@berth/platform';
import { buildDiscoveryApp } from '../src/app.ts';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256!';
const sign = (
  claims: Record<string, unknown>,
  options: { key?: string; expiresIn?: number } = {},
) =>
  createSigner({
    key: options.key ?? SECRET,
    algorithm: 'HS256',
    ...(options.expiresIn !== undefined ? { expiresIn: options.expiresIn } : {}),
  })(claims);
const admin = sign({ client: 'admin', sub: 'root', role: 'admin' });
const john = sign({ client: 'acme', sub: 'john', role: 'user' });
const acmeService = sign({ client: 'acme', sub: 'svc', role: 'service' });

const dynamodb = new DynamoDBClient({});
const suffix = randomUUID().slice(0, 8);
const names = {
  containerTable: `routes-containers-${suffix}`,
  sessionTable: `routes-sessions-${suffix}`,
};

let deps: FakeCoreDeps;
let app: FastifyInstance;

const PREVIEW = { baseUrl: 'http://127.0.0.1:8081', domain: undefined, tokenTtlMs: 120_000 };

async function build(
  cacheTtlMs: number,
  store = new DynamoStateStore({ client: dynamodb, ...names }),
  rateLimitPerMinute = 0,
) {
  deps = makeCoreDeps({ store, clock: systemClock as FakeCoreDeps['clock'] });
  const useCases = new UseCases(deps);
  return buildDiscoveryApp({
    useCases,
    store,
    publisher: deps.publisher,
    authSecret: SECRET,
    cacheTtlMs,
    rateLimitPerMinute,
    registry: new Registry(),
    preview: PREVIEW,
  });
}

const discover = (body: unknown, token = admin, query = '') =>
  app.inject({
    method: 'POST',
    url: `/v1/containers/discover${query}`,
    headers: { authorization: `Bearer ${token}` },
    payload: body as Record<string, unknown>,
  });

beforeAll(async () => {
  await ensureTables(dynamodb, names);
});

beforeEach(async () => {
  app = await build(60_000);
});

afterEach(async () => {
  await app.close();
});

afterAll(() => {
  dynamodb.destroy();
});

describe('POST /v1/containers/discover', () => {
  it('starts a container (201, created), then answers from the cache (200)', async () => {
    // Act
    const first = await discover({ clientId: 'acme', projectId: 'web', userId: 'ann' });
    const second = await discover({ clientId: 'acme', projectId: 'web', userId: 'ann' });

    // Assess
    expect(first.statusCode).toBe(201);
    expect(first.json()).toMatchObject({
      source: 'created',
      container: { containerId: 'acme.web.ann', generation: 1, status: 'starting' },
    });
    expect(second.statusCode).toBe(200);
    expect(['cache', 'store']).toContain(second.json().source);
  });

  it('answers from the store when the cache is off, and the cache only holds running containers', async () => {
    // Prepare
    await app.close();
    app = await build(0);
    await discover({ clientId: 'acme', projectId: 'web', userId: 'bob' });

    // Act
    const again = await discover({ clientId: 'acme', projectId: 'web', userId: 'bob' });

    // Assess
    expect(again.statusCode).toBe(200);
    expect(again.json().source).toBe('store');
    expect(deps.runtime.startCalls).toHaveLength(1);
  });

  it('starts exactly one container for 20 simultaneous discovers', async () => {
    // Act
    const answers = await Promise.all(
      Array.from({ length: 20 }, () =>
        discover({ clientId: 'acme', projectId: 'race', userId: 'cat' }),
      ),
    );

    // Assess
    expect(answers.filter((a) => a.statusCode === 201)).toHaveLength(1);
    expect(
      new Set(
        answers.map((a) => `${a.json().container.containerId}#${a.json().container.generation}`),
      ),
    ).toEqual(new Set(['acme.race.cat#1']));
    expect(deps.runtime.startCalls).toHaveLength(1);
  });

  it.each([
    [{ clientId: 'Acme', projectId: 'web', userId: 'ann' }, 'clientId'],
    [{ clientId: 'acme', userId: 'ann' }, 'projectId'],
    [{ clientId: 'acme', projectId: 'web', userId: 'a'.repeat(64) }, 'userId'],
    [{ clientId: 'acme', projectId: 'web', userId: 'ann', extra: 1 }, 'extra'],
    [{ clientId: 'acme', projectId: 7, userId: 'ann' }, 'projectId'],
    [{ clientId: 'acme', projectId: '..', userId: 'ann' }, 'projectId'],
  ])('refuses %j with 400 naming %s', async (body, field) => {
    // Act
    const answer = await discover(body);

    // Assess
    expect(answer.statusCode).toBe(400);
    expect(answer.json()).toEqual({
      error: { code: 'invalid_argument', message: expect.any(String), field },
    });
  });

  it('refuses a wait beyond 60 seconds naming the field', async () => {
    const answer = await discover(
      { clientId: 'acme', projectId: 'web', userId: 'ann' },
      admin,
      '?wait=61',
    );
    expect(answer.statusCode).toBe(400);
    expect(answer.json().error.field).toBe('wait');
  });

  it('refuses invalid JSON (400), a wrong content type (415) and an oversized body (413) without a stack trace', async () => {
    // Act
    const badJson = await app.inject({
      method: 'POST',
      url: '/v1/containers/discover',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      payload: '{"clientId":',
    });
    const badType = await app.inject({
      method: 'POST',
      url: '/v1/containers/discover',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'text/plain' },
      payload: 'hello',
    });
    const huge = await app.inject({
      method: 'POST',
      url: '/v1/containers/discover',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      payload: JSON.stringify({ clientId: 'x'.repeat(100_000) }),
    });

    // Assess
    expect(badJson.statusCode).toBe(400);
    expect(badJson.json().error.code).toBe('invalid_argument');
    expect(badType.statusCode).toBe(415);
    expect(huge.statusCode).toBe(413);
    for (const answer of [badJson, badType, huge]) {
      expect(answer.body).not.toMatch(/at .*\.(ts|js):\d+/);
      expect(Object.keys(answer.json())).toEqual(['error']);
    }
  });
});

describe('POST /v1/containers/prewarm', () => {
  const prewarm = (body: unknown, token = admin) =>
    app.inject({
      method: 'POST',
      url: '/v1/containers/prewarm',
      headers: { authorization: `Bearer ${token}` },
      payload: body as Record<string, unknown>,
    });

  it('answers 202 at once and starts the container behind it; a discover then finds it', async () => {
    // Act
    const hint = await prewarm({ clientId: 'acme', projectId: 'warm', userId: 'john' }, john);
    const started = await (async () => {
      for (let waited = 0; waited < 10_000; waited += 50) {
        if (deps.runtime.startCalls.length > 0) return true;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return false;
    })();
    const found = await discover({ clientId: 'acme', projectId: 'warm', userId: 'john' }, john);

    // Assess
    expect(hint.statusCode).toBe(202);
    expect(hint.json()).toEqual({ containerId: 'acme.warm.john' });
    expect(started).toBe(true);
    expect(found.statusCode).toBe(200);
    expect(['cache', 'store']).toContain(found.json().source);
    expect(deps.runtime.startCalls).toHaveLength(1);
  });

  it("follows discover's rules: 401 without a token, 403 for another user, 400 naming a bad field", async () => {
    // Act
    const anonymous = await app.inject({
      method: 'POST',
      url: '/v1/containers/prewarm',
      payload: { clientId: 'acme', projectId: 'warm', userId: 'john' },
    });
    const other = await prewarm({ clientId: 'acme', projectId: 'warm', userId: 'mary' }, john);
    const bad = await prewarm({ clientId: 'acme', projectId: 'Warm!', userId: 'john' }, john);

    // Assess
    expect(anonymous.statusCode).toBe(401);
    expect(other.statusCode).toBe(403);
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.field).toBe('projectId');
    expect(deps.runtime.startCalls).toHaveLength(0);
  });
});

describe('authentication and authorization', () => {
  const target = '/v1/containers/acme.web.john';

  it.each([
    ['no header', undefined],
    ['not a bearer', 'Basic abc'],
    ['garbage', 'Bearer not.a.token'],
    [
      'wrong signature',
      `Bearer ${sign({ client: 'acme', sub: 'john', role: 'user' }, { key: 'another-secret-that-is-long-enough-123456' })}`,
    ],
    [
      'alg none',
      `Bearer ${Buffer.from('{"alg":"none","typ":"JWT"}').toString('base64url')}.${Buffer.from('{"client":"acme","sub":"john","role":"admin"}').toString('base64url')}.`,
    ],
    [
      'expired',
      `Bearer ${sign({ client: 'acme', sub: 'john', role: 'user', exp: Math.floor(Date.now() / 1000) - 60 })}`,
    ],
    ['missing role', `Bearer ${sign({ client: 'acme', sub: 'john' })}`],
  ])('answers 401 for %s', async (_label, authorization) => {
    const answer = await app.inject({
      method: 'GET',
      url: target,
      headers: authorization ? { authorization } : {},
    });
    expect(answer.statusCode).toBe(401);
    expect(answer.json()).toEqual({
      error: { code: 'unauthenticated', message: expect.any(String) },
    });
  });

  it("answers 403 for another user's or tenant's container whether it exists or not", async () => {
    // Prepare
    await discover({ clientId: 'acme', projectId: 'web', userId: 'mary' });
    const other = sign({ client: 'globex', sub: 'john', role: 'service' });

    // Act
    const existing = await app.inject({
      method: 'GET',
      url: '/v1/containers/acme.web.mary',
      headers: { authorization: `Bearer ${john}` },
    });
    const missing = await app.inject({
      method: 'GET',
      url: '/v1/containers/acme.nope.mary',
      headers: { authorization: `Bearer ${john}` },
    });
    const tenant = await app.inject({
      method: 'GET',
      url: '/v1/containers/acme.web.mary',
      headers: { authorization: `Bearer ${other}` },
    });
    const discoverOther = await discover(
      { clientId: 'acme', projectId: 'web', userId: 'mary' },
      john,
    );

    // Assess
    for (const answer of [existing, missing, tenant, discoverOther]) {
      expect(answer.statusCode).toBe(403);
      expect(answer.json().error.code).toBe('forbidden');
    }
  });

  it('lets a service act on any user of its client, and a user on its own containers', async () => {
    const service = await discover(
      { clientId: 'acme', projectId: 'web', userId: 'zed' },
      acmeService,
    );
    const own = await discover({ clientId: 'acme', projectId: 'web', userId: 'john' }, john);
    expect(service.statusCode).toBe(201);
    expect(own.statusCode).toBe(201);
  });
});

describe('container and session routes', () => {
  it('gets a container (404 when absent), lists it, stops it (202) and lists its sessions', async () => {
    // Prepare
    await discover({ clientId: 'acme', projectId: 'list', userId: 'joe' });
    const auth = { authorization: `Bearer ${admin}` };

    // Act
    const got = await app.inject({
      method: 'GET',
      url: '/v1/containers/acme.list.joe',
      headers: auth,
    });
    const absent = await app.inject({
      method: 'GET',
      url: '/v1/containers/acme.list.nobody',
      headers: auth,
    });
    const listed = await app.inject({
      method: 'GET',
      url: '/v1/containers?clientId=acme&projectId=list&limit=10',
      headers: auth,
    });
    const stopped = await app.inject({
      method: 'POST',
      url: '/v1/containers/acme.list.joe/stop',
      headers: auth,
      payload: { reason: 'test' },
    });
    const sessions = await app.inject({
      method: 'GET',
      url: '/v1/containers/acme.list.joe/sessions',
      headers: auth,
    });
    const session = await app.inject({ method: 'GET', url: '/v1/sessions/nope', headers: auth });

    // Assess
    expect(got.statusCode).toBe(200);
    const container = got.json().container as ContainerJson;
    expect(Object.keys(container).sort()).toEqual(
      [
        'containerId',
        'clientId',
        'projectId',
        'userId',
        'status',
        'generation',
        'sessionCount',
        'sessions',
        'taskArn',
        'endpoint',
        'inputQueueUrl',
        'outputQueueUrl',
        'workspacePath',
        'createdAt',
        'startedAt',
        'lastActivityAt',
        'idleSince',
        'idleStopAt',
        'keptAliveBy',
        'previewActiveAt',
        'devServer',
        'expiresAt',
        'stoppedAt',
        'stopReason',
        'fromPool',
      ].sort(),
    );
    expect(absent.statusCode).toBe(404);
    expect(absent.json().error.code).toBe('not_found');
    expect(listed.statusCode).toBe(200);
    expect(listed.json().containers.map((c: ContainerJson) => c.containerId)).toEqual([
      'acme.list.joe',
    ]);
    expect(stopped.statusCode).toBe(202);
    // Still starting (the fake runtime never reports RUNNING): the stop is recorded and its
    // task asked to stop; it fails once that task has ended.
    expect(stopped.json().container).toMatchObject({
      status: 'starting',
      stopReason: 'manual:test',
    });
    expect(sessions.statusCode).toBe(200);
    expect(sessions.json()).toEqual({ sessions: [] });
    expect(session.statusCode).toBe(404);
  });

  it('stops the generation a stop names, and answers 409 naming the field for another generation', async () => {
    // Prepare
    await discover({ clientId: 'acme', projectId: 'gen', userId: 'joe' });
    const auth = { authorization: `Bearer ${admin}` };
    const stop = (payload: object) =>
      app.inject({
        method: 'POST',
        url: '/v1/containers/acme.gen.joe/stop',
        headers: auth,
        payload,
      });

    // Act
    const stale = await stop({ reason: 'late', generation: 2 });
    const afterStale = await deps.store.getContainer('acme.gen.joe');
    const current = await stop({ reason: 'meant', generation: 1 });

    // Assess
    expect(stale.statusCode).toBe(409);
    expect(stale.json().error).toMatchObject({ code: 'conflict', field: 'generation' });
    expect(afterStale).toMatchObject({ generation: 1, stopReason: null });
    expect(current.statusCode).toBe(202);
    expect(current.json().container).toMatchObject({ generation: 1, stopReason: 'manual:meant' });
  });

  it('names an unknown body field even when its name is empty (400, field "")', async () => {
    // Prepare
    await discover({ clientId: 'acme', projectId: 'blank', userId: 'joe' });

    // Act
    const answer = await app.inject({
      method: 'POST',
      url: '/v1/containers/acme.blank.joe/stop',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      payload: '{"":0}',
    });

    // Assess
    expect(answer.statusCode).toBe(400);
    expect(answer.json().error).toEqual({
      code: 'invalid_argument',
      message: 'a field with an empty name is not a known field',
      field: '',
    });
    expect(await deps.store.getContainer('acme.blank.joe')).toMatchObject({ stopReason: null });
  });

  it("scopes a user's list to its own containers and refuses a filter beyond them", async () => {
    // Prepare
    await discover({ clientId: 'acme', projectId: 'scope', userId: 'john' }, john);
    await discover({ clientId: 'acme', projectId: 'scope', userId: 'kim' });

    // Act
    const mine = await app.inject({
      method: 'GET',
      url: '/v1/containers?projectId=scope',
      headers: { authorization: `Bearer ${john}` },
    });
    const theirs = await app.inject({
      method: 'GET',
      url: '/v1/containers?userId=kim',
      headers: { authorization: `Bearer ${john}` },
    });
    const badStatus = await app.inject({
      method: 'GET',
      url: '/v1/containers?status=sleeping',
      headers: { authorization: `Bearer ${admin}` },
    });
    const badCursor = await app.inject({
      method: 'GET',
      url: '/v1/containers?cursor=zzz',
      headers: { authorization: `Bearer ${admin}` },
    });

    // Assess
    expect(mine.json().containers.map((c: ContainerJson) => c.containerId)).toEqual([
      'acme.scope.john',
    ]);
    expect(theirs.statusCode).toBe(403);
    expect(badStatus.statusCode).toBe(400);
    expect(badStatus.json().error.field).toBe('status');
    expect(badCursor.statusCode).toBe(400);
    expect(badCursor.json().error.field).toBe('cursor');
  });
});

describe('preview URLs (issue 19)', () => {
  const verifyUrlToken = createPreviewTokenVerifier(SECRET, PREVIEW_URL_AUDIENCE);
  const tokenOf = (url: string) => new URL(url).searchParams.get('berth_preview') ?? '';
  const previewOf = (containerId: string, token = john) =>
    app.inject({
      method: 'POST',
      url: `/v1/containers/${containerId}/preview`,
      headers: { authorization: `Bearer ${token}` },
    });

  it("answers the container's preview URL with a token for that container only, expiring within the TTL", async () => {
    // Act
    const answer = await previewOf('acme.site.john');

    // Assess
    expect(answer.statusCode).toBe(200);
    const { url, expiresAt } = answer.json<{ url: string; expiresAt: string }>();
    expect(url.startsWith('http://127.0.0.1:8081/p/acme.site.john/?berth_preview=')).toBe(true);
    const verdict = verifyUrlToken(tokenOf(url));
    expect(verdict).toMatchObject({ ok: true, containerId: 'acme.site.john' });
    const ttl = Date.parse(expiresAt) - Date.now();
    expect(ttl).toBeGreaterThan(60_000);
    expect(ttl).toBeLessThanOrEqual(120_000);
    // The URL's token is not the cookie's: it cannot stand in for the exchanged cookie.
    expect(createPreviewTokenVerifier(SECRET, PREVIEW_COOKIE_AUDIENCE)(tokenOf(url)).ok).toBe(
      false,
    );
  });

  it("refuses another user's container (403), no token (401), and a preview token as an API token (401)", async () => {
    // Prepare
    const minted = (await previewOf('acme.site.john')).json<{ url: string }>();

    // Act
    const other = await previewOf('acme.site.mary');
    const anonymous = await app.inject({
      method: 'POST',
      url: '/v1/containers/acme.site.john/preview',
    });
    const previewAsApiToken = await previewOf('acme.site.john', tokenOf(minted.url));

    // Assess
    expect(other.statusCode).toBe(403);
    expect(anonymous.statusCode).toBe(401);
    expect(previewAsApiToken.statusCode).toBe(401);
    expect(previewAsApiToken.body).not.toContain('berth_preview');
  });

  it('gives the discover answer the same kind of preview URL, from the store and from the cache', async () => {
    // Act
    const first = await discover({ clientId: 'acme', projectId: 'site', userId: 'john' }, john);
    const second = await discover({ clientId: 'acme', projectId: 'site', userId: 'john' }, john);

    // Assess
    for (const answer of [first, second]) {
      const { previewUrl } = answer.json<{ previewUrl: string }>();
      expect(verifyUrlToken(tokenOf(previewUrl))).toMatchObject({
        ok: true,
        containerId: 'acme.site.john',
      });
    }
  });
});

describe('rate limiting', () => {
  it('answers 429 capacity_exceeded with Retry-After past the limit, per client and user', async () => {
    // Prepare
    await app.close();
    app = await build(60_000, undefined, 3);
    const get = (token: string) =>
      app.inject({
        method: 'GET',
        url: '/v1/containers/acme.web.john',
        headers: { authorization: `Bearer ${token}` },
      });

    // Act
    const within = [await get(john), await get(john), await get(john)];
    const over = await get(john);
    const otherUser = await get(admin);
    const health = await app.inject({ method: 'GET', url: '/healthz' });

    // Assess
    expect(within.map((a) => a.statusCode)).not.toContain(429);
    expect(over.statusCode).toBe(429);
    expect(over.headers['retry-after']).toEqual(expect.any(String));
    expect(over.json()).toEqual({
      error: { code: 'capacity_exceeded', message: expect.any(String) },
    });
    expect(otherUser.statusCode).not.toBe(429);
    expect(health.statusCode).toBe(200);
  });
});

describe('operational routes', () => {
  it('serves health, readiness, metrics and the OpenAPI document without a token', async () => {
    const health = await app.inject({ method: 'GET', url: '/healthz' });
    const ready = await app.inject({ method: 'GET', url: '/readyz' });
    const metrics = await app.inject({ method: 'GET', url: '/metrics' });
    const docs = await app.inject({ method: 'GET', url: '/docs' });
    const unknown = await app.inject({ method: 'GET', url: '/nowhere' });

    expect(health.statusCode).toBe(200);
    expect(ready.statusCode).toBe(200);
    expect(metrics.statusCode).toBe(200);
    expect(metrics.body).toContain('berth_http_requests_total');
    expect(docs.statusCode).toBe(200);
    expect(Object.keys(docs.json().paths)).toEqual(
      expect.arrayContaining([
        '/v1/containers/discover',
        '/v1/containers/{containerId}',
        '/v1/containers',
        '/v1/sessions/{sessionId}',
      ]),
    );
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error.code).toBe('not_found');
  });

  it('is not ready (503) when the store does not answer', async () => {
    // Prepare
    await app.close();
    app = await build(
      0,
      new DynamoStateStore({
        client: dynamodb,
        containerTable: 'missing-table',
        sessionTable: 'missing-too',
      }),
    );

    // Act
    const ready = await app.inject({ method: 'GET', url: '/readyz' });

    // Assess
    expect(ready.statusCode).toBe(503);
    expect(ready.json().error.code).toBe('unavailable');
  });
});

describe('checkpoints and revert (issue 15)', () => {
  const commit = (n: number) => n.toString(16).padStart(40, 'a');
  const store = () => deps.store as DynamoStateStore;
  const mary = sign({ client: 'acme', sub: 'mary', role: 'user' });
  const as = (token: string) => ({ authorization: `Bearer ${token}` });

  let generations = 0;

  /** An active session of john's on thread `thread`, with `count` checkpoints recorded. */
  async function sessionWithCheckpoints(sessionId: string, thread: string, count: number) {
    const containerId = 'acme.cp.john';
    const now = new Date().toISOString();
    generations += 1;
    const queues = await deps.queues.create(containerId, generations);
    await store().write({
      sessions: [
        {
          record: {
            sessionId,
            containerId,
            generation: 1,
            threadId: thread,
            status: 'active',
            inputQueueUrl: queues.inputQueueUrl,
            outputQueueUrl: queues.outputQueueUrl,
            worktreePath: `/w/${thread}`,
            assignedAt: now,
            lastActivityAt: now,
            releasedAt: null,
            releaseReason: null,
          },
          expect: { kind: 'absent' },
        },
      ],
    });
    for (let n = 1; n <= count; n += 1) {
      await store().recordCheckpoint({
        containerId,
        threadId: thread,
        sessionId,
        commit: commit(n),
        messageId: `m-${n}`,
        files: [`f${n}.txt`],
        filesTotal: 1,
        revertOf: null,
        createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
        recordedAt: now,
      });
    }
  }

  it("lists a thread's checkpoints newest first with a cursor; another user gets 404", async () => {
    const sessionId = `cp-list-${randomUUID().slice(0, 6)}`;
    await sessionWithCheckpoints(sessionId, `t-${sessionId}`, 3);

    const first = await app.inject({
      method: 'GET',
      url: `/v1/sessions/${sessionId}/checkpoints?limit=2`,
      headers: as(john),
    });
    const cursor = String(first.json().nextCursor);
    const second = await app.inject({
      method: 'GET',
      url: `/v1/sessions/${sessionId}/checkpoints?limit=2&cursor=${encodeURIComponent(cursor)}`,
      headers: as(john),
    });
    const marys = await app.inject({
      method: 'GET',
      url: `/v1/sessions/${sessionId}/checkpoints`,
      headers: as(mary),
    });
    const badCursor = await app.inject({
      method: 'GET',
      url: `/v1/sessions/${sessionId}/checkpoints?cursor=bm9wZQ`,
      headers: as(john),
    });

    expect(first.statusCode).toBe(200);
    expect(first.json().checkpoints.map((c: { commit: string }) => c.commit)).toEqual([
      commit(3),
      commit(2),
    ]);
    expect(first.json().checkpoints[0]).toEqual({
      commit: commit(3),
      threadId: `t-${sessionId}`,
      sessionId,
      messageId: 'm-3',
      files: ['f3.txt'],
      filesTotal: 1,
      revertOf: null,
      createdAt: '2026-01-01T00:00:03.000Z',
      recordedAt: expect.any(String),
    });
    expect(second.json()).toMatchObject({ checkpoints: [{ commit: commit(1) }], nextCursor: null });
    expect(marys.statusCode).toBe(404);
    expect(marys.json().error.code).toBe('not_found');
    expect(badCursor.statusCode).toBe(400);
    expect(badCursor.json().error.field).toBe('cursor');
  });

  it('reverts to a checkpoint of the thread (202, sent to the agent); 400 naming checkpoint otherwise; 409 when the session is not active', async () => {
    const sessionId = `cp-rev-${randomUUID().slice(0, 6)}`;
    const thread = `t-${sessionId}`;
    await sessionWithCheckpoints(sessionId, thread, 2);
    const revert = (checkpoint: string, token = john) =>
      app.inject({
        method: 'POST',
        url: `/v1/sessions/${sessionId}/revert`,
        headers: as(token),
        payload: { checkpoint },
      });

    const accepted = await revert(commit(1));
    const unknown = await revert(commit(9));
    const malformed = await revert('HEAD~1');
    const marys = await revert(commit(1), mary);
    const before = await store().getSession(sessionId);
    if (!before) throw new Error('no session');
    await store().write({
      sessions: [
        {
          record: { ...before, status: 'released', releasedAt: new Date().toISOString() },
          expect: { kind: 'status', status: 'active' },
        },
      ],
    });
    const inactive = await revert(commit(1));

    expect(accepted.statusCode).toBe(202);
    const { requestId } = accepted.json<{ requestId: string }>();
    expect(accepted.json()).toEqual({
      sessionId,
      threadId: thread,
      checkpoint: commit(1),
      requestId,
    });
    expect(deps.queues.sent).toContainEqual({
      queueUrl: before.inputQueueUrl,
      body: {
        type: 'thread.revert',
        threadId: thread,
        sessionId,
        checkpoint: commit(1),
        requestId,
      },
    });
    expect(unknown.statusCode).toBe(400);
    expect(unknown.json().error).toMatchObject({ code: 'invalid_argument', field: 'checkpoint' });
    expect(malformed.statusCode).toBe(400);
    expect(malformed.json().error.field).toBe('checkpoint');
    expect(marys.statusCode).toBe(404);
    expect(inactive.statusCode).toBe(409);
  });
});
