/**
 * The discovery service against a hostile caller, over DynamoDB Local: forged and misused
 * tokens, one tenant or user reaching for another's containers and sessions, ids that try
 * to leave the data directory, ids that would collide under the old dash form, and floods.
 * routes.test.ts holds the basic 401/403 cases; these go further. The store is wrapped so a
 * test can prove a refused request never reached it. See docs/security.md.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { UseCases } from '@berth/core';
import { systemClock, type StateStore } from '@berth/domain';
import { DynamoStateStore, ensureTables } from '@berth/dynamodb';
import { makeCoreDeps, type FakeCoreDeps } from '@berth/testing';
import type { FastifyInstance } from 'fastify';
import { createSigner } from 'fast-jwt';
import { createHmac, createSign, generateKeyPairSync, randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { Registry } from 'prom-client';
import { buildDiscoveryApp } from '../src/app.ts';

const SECRET = 'a-security-secret-that-is-long-enough-for-hs256!';
const now = () => Math.floor(Date.now() / 1000);
const sign = (claims: Record<string, unknown>, key = SECRET) =>
  createSigner({ key, algorithm: 'HS256' })(claims);

const admin = sign({ client: 'admin', sub: 'root', role: 'admin' });
const john = sign({ client: 'acme', sub: 'john', role: 'user' });
const mary = sign({ client: 'acme', sub: 'mary', role: 'user' });
const acmeService = sign({ client: 'acme', sub: 'svc', role: 'service' });
const globexJohn = sign({ client: 'globex', sub: 'john', role: 'user' });
const globexService = sign({ client: 'globex', sub: 'svc', role: 'service' });

const b64 = (value: unknown) =>
  Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url');
/** A JWT put together by hand, as an attacker would, with whatever header and signature. */
function handMade(
  header: Record<string, unknown>,
  claims: Record<string, unknown>,
  signature: (signingInput: string) => string,
): string {
  const signingInput = `${b64(header)}.${b64(claims)}`;
  return `${signingInput}.${signature(signingInput)}`;
}
const hmac =
  (algorithm: 'sha256' | 'sha384' | 'sha512', key = SECRET) =>
  (input: string) =>
    createHmac(algorithm, key).update(input).digest('base64url');
const adminClaims = { client: 'acme', sub: 'john', role: 'admin' };

interface StoreCall {
  method: string;
  args: string;
}

/** The store as the app sees it, every call written down. */
function recording(store: StateStore, calls: StoreCall[]): StateStore {
  return new Proxy(store, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.push({ method: String(property), args: JSON.stringify(args) });
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

const dynamodb = new DynamoDBClient({});
const suffix = randomUUID().slice(0, 8);
const names = {
  containerTable: `security-containers-${suffix}`,
  sessionTable: `security-sessions-${suffix}`,
};
let deps: FakeCoreDeps;
let useCases: UseCases;
let calls: StoreCall[];
let app: FastifyInstance;

async function build(
  options: { rateLimitPerMinute?: number; store?: StateStore } = {},
): Promise<FastifyInstance> {
  calls = [];
  const store = recording(
    options.store ?? new DynamoStateStore({ client: dynamodb, ...names }),
    calls,
  );
  deps = makeCoreDeps({ store, clock: systemClock as FakeCoreDeps['clock'] });
  useCases = new UseCases(deps);
  return buildDiscoveryApp({
    useCases,
    store,
    publisher: deps.publisher,
    authSecret: SECRET,
    cacheTtlMs: 0,
    rateLimitPerMinute: options.rateLimitPerMinute ?? 0,
    registry: new Registry(),
  });
}

const request = (method: 'GET' | 'POST', url: string, token: string | null, payload?: unknown) =>
  app.inject({
    method,
    url,
    headers: token === null ? {} : { authorization: `Bearer ${token}` },
    ...(payload === undefined ? {} : { payload: payload as Record<string, unknown> }),
  });

beforeAll(async () => {
  await ensureTables(dynamodb, names);
  app = await build();
  // john and mary of acme each have a container with one session.
  for (const [userId, sessionId] of [
    ['john', 's-john'],
    ['mary', 's-mary'],
  ] as const) {
    await useCases.sessions.assign({
      type: 'session.assign',
      commandId: `c-${sessionId}`,
      payload: { sessionId, clientId: 'acme', projectId: 'web', userId },
    });
  }
  await app.close();
});

beforeEach(async () => {
  app = await build();
});

afterEach(async () => {
  await app.close();
});

afterAll(() => {
  dynamodb.destroy();
});

describe('tokens', () => {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const rsa = (input: string) =>
    createSign('RSA-SHA256').update(input).sign(privateKey).toString('base64url');
  const [johnHeader, , johnSignature] = john.split('.') as [string, string, string];

  it.each([
    ['unsigned: two segments', `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64(adminClaims)}`],
    ['unsigned: empty signature', handMade({ alg: 'HS256', typ: 'JWT' }, adminClaims, () => '')],
    ['alg none', handMade({ alg: 'none', typ: 'JWT' }, adminClaims, () => '')],
    [
      'alg None with a signature',
      handMade({ alg: 'None', typ: 'JWT' }, adminClaims, hmac('sha256')),
    ],
    ['alg NONE', handMade({ alg: 'NONE' }, adminClaims, () => '')],
    ['no alg at all', handMade({ typ: 'JWT' }, adminClaims, hmac('sha256'))],
    [
      'alg HS512 signed with the right secret',
      handMade({ alg: 'HS512', typ: 'JWT' }, adminClaims, hmac('sha512')),
    ],
    [
      'alg HS384 signed with the right secret',
      handMade({ alg: 'HS384', typ: 'JWT' }, adminClaims, hmac('sha384')),
    ],
    [
      'alg RS256 signed with an attacker key',
      handMade({ alg: 'RS256', typ: 'JWT' }, adminClaims, rsa),
    ],
    [
      'alg RS256 carrying its own public key (jwk)',
      handMade(
        { alg: 'RS256', typ: 'JWT', jwk: publicKey.export({ format: 'jwk' }) },
        adminClaims,
        rsa,
      ),
    ],
    [
      'alg RS256 HMAC-signed with the secret (key confusion)',
      handMade({ alg: 'RS256', typ: 'JWT' }, adminClaims, hmac('sha256')),
    ],
    [
      'a kid pointing elsewhere',
      handMade({ alg: 'HS256', kid: '../../dev/null' }, adminClaims, hmac('sha256', '')),
    ],
    [
      'signed with another secret',
      sign(adminClaims, 'another-secret-that-is-long-enough-for-hs256'),
    ],
    [
      'signed with an empty secret',
      handMade({ alg: 'HS256', typ: 'JWT' }, adminClaims, hmac('sha256', '')),
    ],
    [
      "john's signature on elevated claims",
      `${johnHeader}.${b64({ client: 'acme', sub: 'john', role: 'admin' })}.${johnSignature}`,
    ],
    [
      // The character replaced is the one compared: when it already was 'A' the "forged"
      // token was john's own (signed with a fresh iat, about one run in 64), and it stopped
      // john's container.
      'a signature one character off',
      `${john.slice(0, -2)}${john.at(-2) === 'A' ? 'B' : 'A'}${john.slice(-1)}`,
    ],
    ['expired a second ago', sign({ client: 'acme', sub: 'john', role: 'user', exp: now() - 1 })],
    [
      'not valid for an hour yet (nbf)',
      sign({ client: 'acme', sub: 'john', role: 'user', nbf: now() + 3600 }),
    ],
    [
      'an exp that is not a number',
      handMade(
        { alg: 'HS256', typ: 'JWT' },
        { client: 'acme', sub: 'john', role: 'user', exp: 'never' },
        hmac('sha256'),
      ),
    ],
    [
      'an nbf that is not a number',
      handMade(
        { alg: 'HS256', typ: 'JWT' },
        { client: 'acme', sub: 'john', role: 'user', nbf: 'later' },
        hmac('sha256'),
      ),
    ],
    ['client as a number', sign({ client: 42, sub: 'john', role: 'user' })],
    ['client empty', sign({ client: '', sub: 'john', role: 'user' })],
    ['sub as a number', sign({ client: 'acme', sub: 7, role: 'user' })],
    ['sub missing', sign({ client: 'acme', role: 'user' })],
    ['role superuser', sign({ client: 'acme', sub: 'john', role: 'superuser' })],
    ['role Admin', sign({ client: 'acme', sub: 'john', role: 'Admin' })],
    ['role as a list', sign({ client: 'acme', sub: 'john', role: ['admin'] })],
    ['role as an object', sign({ client: 'acme', sub: 'john', role: { admin: true } })],
    [
      'claims that are not an object',
      handMade(
        { alg: 'HS256', typ: 'JWT' },
        ['admin'] as unknown as Record<string, unknown>,
        hmac('sha256'),
      ),
    ],
  ])('refuses %s with 401 on every route, and the store is never asked', async (_label, token) => {
    // Act
    const answers = await Promise.all([
      request('POST', '/v1/containers/discover', token, {
        clientId: 'acme',
        projectId: 'web',
        userId: 'john',
      }),
      request('GET', '/v1/containers/acme.web.john', token),
      request('GET', '/v1/containers', token),
      request('POST', '/v1/containers/acme.web.john/stop', token, {}),
      request('GET', '/v1/containers/acme.web.john/sessions', token),
      request('GET', '/v1/sessions/s-john', token),
    ]);

    // Assess
    for (const answer of answers) {
      expect(answer.statusCode).toBe(401);
      expect(answer.json()).toEqual({
        error: { code: 'unauthenticated', message: expect.any(String) },
      });
      expect(answer.body).not.toContain(token);
      expect(answer.body).not.toContain(SECRET);
    }
    expect(calls).toEqual([]);
  });

  it.each([
    ['?token=', (t: string) => `?token=${t}`],
    ['?access_token=', (t: string) => `?access_token=${t}`],
    ['?jwt=', (t: string) => `?jwt=${t}`],
    [
      '?authorization=Bearer ',
      (t: string) => `?authorization=${encodeURIComponent(`Bearer ${t}`)}`,
    ],
  ])(
    'refuses a valid token sent in the query string (%s) instead of the header',
    async (_label, query) => {
      const get = await request('GET', `/v1/containers/acme.web.john${query(admin)}`, null);
      const discover = await request('POST', `/v1/containers/discover${query(admin)}`, null, {
        clientId: 'acme',
        projectId: 'web',
        userId: 'x',
      });
      for (const answer of [get, discover]) {
        expect(answer.statusCode).toBe(401);
        expect(answer.json().error.code).toBe('unauthenticated');
      }
      expect(calls).toEqual([]);
    },
  );

  it('refuses a valid token sent as a cookie or in another header', async () => {
    const cookie = await app.inject({
      method: 'GET',
      url: '/v1/containers/acme.web.john',
      headers: { cookie: `token=${admin}` },
    });
    const other = await app.inject({
      method: 'GET',
      url: '/v1/containers/acme.web.john',
      headers: { 'x-access-token': admin },
    });
    expect([cookie.statusCode, other.statusCode]).toEqual([401, 401]);
    expect(calls).toEqual([]);
  });

  it('accepts a token still valid, with nbf and exp around now', async () => {
    const fresh = sign({
      client: 'acme',
      sub: 'john',
      role: 'user',
      nbf: now() - 5,
      exp: now() + 60,
    });
    const answer = await request('GET', '/v1/containers/acme.web.john', fresh);
    expect(answer.statusCode).toBe(200);
  });
});

describe('one tenant or user acting on another', () => {
  const johnsThings = (token: string) =>
    [
      [
        'discover',
        () =>
          request('POST', '/v1/containers/discover', token, {
            clientId: 'acme',
            projectId: 'web',
            userId: 'john',
          }),
      ],
      [
        'discover a new project',
        () =>
          request('POST', '/v1/containers/discover', token, {
            clientId: 'acme',
            projectId: 'fresh',
            userId: 'john',
          }),
      ],
      ['get', () => request('GET', '/v1/containers/acme.web.john', token)],
      ['get a missing one', () => request('GET', '/v1/containers/acme.nope.john', token)],
      [
        'stop',
        () => request('POST', '/v1/containers/acme.web.john/stop', token, { reason: 'hostile' }),
      ],
      ['sessions', () => request('GET', '/v1/containers/acme.web.john/sessions', token)],
      ['list by user', () => request('GET', '/v1/containers?clientId=acme&userId=john', token)],
      ['list by client', () => request('GET', '/v1/containers?clientId=acme', token)],
    ] as const;

  it.each([
    ['another user of the same client', mary, ['list by client']],
    ['the same user name in another client', globexJohn, []],
    ['a service of another client', globexService, []],
  ])(
    "refuses %s every action on john's containers with 403, changing nothing",
    async (_label, token, allowed) => {
      // Act
      const answers: [string, { statusCode: number; json: () => { error?: { code: string } } }][] =
        [];
      for (const [name, act] of johnsThings(token)) answers.push([name, await act()]);

      // Assess
      for (const [name, answer] of answers) {
        if ((allowed as readonly string[]).includes(name)) continue;
        expect([name, answer.statusCode, answer.json().error?.code]).toEqual([
          name,
          403,
          'forbidden',
        ]);
      }
      const container = await deps.store.getContainer('acme.web.john');
      expect(container).toMatchObject({
        status: 'starting',
        stopReason: null,
        sessions: ['s-john'],
      });
      expect(await deps.store.getContainer('acme.fresh.john')).toBeUndefined();
      expect(deps.runtime.startCalls).toEqual([]);
      expect(deps.runtime.stopCalls).toEqual([]);
    },
  );

  it("lists for a user only that user's containers, even with no filter", async () => {
    const answer = await request('GET', '/v1/containers', mary);
    expect(answer.statusCode).toBe(200);
    expect(answer.json().containers.map((c: { containerId: string }) => c.containerId)).toEqual([
      'acme.web.mary',
    ]);
    const tenant = await request('GET', '/v1/containers', globexService);
    expect(tenant.json().containers).toEqual([]);
  });

  it("answers another's session as not found, exactly as a session that does not exist", async () => {
    // Act
    const theirs = await request('GET', '/v1/sessions/s-john', mary);
    const otherTenant = await request('GET', '/v1/sessions/s-john', globexService);
    const missing = await request('GET', '/v1/sessions/s-nobody', mary);
    const own = await request('GET', '/v1/sessions/s-mary', mary);
    const byService = await request('GET', '/v1/sessions/s-john', acmeService);

    // Assess
    expect(own.statusCode).toBe(200);
    expect(byService.statusCode).toBe(200);
    for (const answer of [theirs, otherTenant, missing]) {
      expect(answer.statusCode).toBe(404);
      expect(answer.json().error.code).toBe('not_found');
    }
    const shape = (body: string) => body.replace(/s-(john|nobody)/g, 'ID');
    expect(shape(theirs.body)).toBe(shape(missing.body));
  });
});

describe('ids that try to leave the data directory', () => {
  const HOSTILE_CONTAINER_IDS = [
    '..%2F..%2Fetc.b.c',
    'a%2Fb.c.d',
    'a.b%2F..%2F..%2Fx.c',
    '%2e%2e.b.c',
    'a.%2E%2E.c',
    'a.b.c%00',
    'a%00.b.c',
    '..%5Cx.b.c',
    'a.b.c%2F..',
    '%2F.b.c',
    'a.b',
    'a.b.c.d',
    '.a.b',
    'a..b',
    'a.b.%2e',
  ];

  it.each(HOSTILE_CONTAINER_IDS)(
    'refuses the container id %s with 400 naming containerId on every route, before the store',
    async (id) => {
      const answers = await Promise.all([
        request('GET', `/v1/containers/${id}`, admin),
        request('GET', `/v1/containers/${id}/sessions`, admin),
        request('POST', `/v1/containers/${id}/stop`, admin, {}),
      ]);
      for (const answer of answers) {
        expect(answer.statusCode).toBe(400);
        expect(answer.json().error).toMatchObject({
          code: 'invalid_argument',
          field: 'containerId',
        });
      }
      expect(calls).toEqual([]);
    },
  );

  it.each([
    ['projectId', '..'],
    ['projectId', '../../etc'],
    ['clientId', 'a/b'],
    ['clientId', '..\\x'],
    ['userId', 'john\u0000'],
    ['userId', '%2e%2e'],
    ['projectId', 'web/../../x'],
    ['clientId', '.git'],
    ['projectId', 'web.git'],
  ])('refuses discover with %s %j with 400 naming it, starting nothing', async (field, value) => {
    const answer = await request('POST', '/v1/containers/discover', admin, {
      clientId: 'acme',
      projectId: 'web',
      userId: 'john',
      [field]: value,
    });
    expect(answer.statusCode).toBe(400);
    expect(answer.json().error).toMatchObject({ code: 'invalid_argument', field });
    expect(calls).toEqual([]);
    expect(deps.runtime.startCalls).toEqual([]);
  });

  it.each(['a%2Fb', '..%2F..%2Fx', 's%00', '%2F', 's%20x', 's%5Cx'])(
    'refuses the session id %s with 400 naming sessionId, before the store',
    async (id) => {
      const answer = await request('GET', `/v1/sessions/${id}`, admin);
      expect(answer.statusCode).toBe(400);
      expect(answer.json().error).toMatchObject({ code: 'invalid_argument', field: 'sessionId' });
      expect(calls).toEqual([]);
    },
  );

  it('refuses literal dot segments sent over a real socket, where nothing normalises them', async () => {
    // Prepare
    const { port } = new URL(await app.listen({ host: '127.0.0.1', port: 0 }));
    const raw = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const socket = connect(Number(port), '127.0.0.1', () =>
          socket.end(
            `GET ${path} HTTP/1.1\r\nHost: localhost\r\nAuthorization: Bearer ${admin}\r\nConnection: close\r\n\r\n`,
          ),
        );
        let text = '';
        socket.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
        socket.on('close', () => {
          const [head = '', body = ''] = text.split('\r\n\r\n');
          resolve({ status: Number(head.split(' ')[1]), body });
        });
        socket.on('error', reject);
      });

    // Act
    const answers = await Promise.all(
      [
        '/v1/containers/..',
        '/v1/containers/../sessions',
        '/v1/containers/../../../etc/passwd',
        '/v1/sessions/../../x',
        '/v1/containers/./sessions',
      ].map(raw),
    );

    // Assess
    for (const answer of answers) {
      expect([400, 404]).toContain(answer.status);
      expect(Object.keys(JSON.parse(answer.body) as object)).toEqual(['error']);
    }
    expect(calls.filter((call) => call.args.includes('..') || call.args.includes('etc'))).toEqual(
      [],
    );
  });
});

describe('ids that the old dash form would confuse', () => {
  it('keeps a-b+c and a+b-c apart: two containers, and neither user reaches the other', async () => {
    // Prepare
    const left = sign({ client: 'a-b', sub: 'u', role: 'user' });
    const right = sign({ client: 'a', sub: 'u', role: 'user' });

    // Act
    const first = await request('POST', '/v1/containers/discover', left, {
      clientId: 'a-b',
      projectId: 'c',
      userId: 'u',
    });
    const second = await request('POST', '/v1/containers/discover', right, {
      clientId: 'a',
      projectId: 'b-c',
      userId: 'u',
    });
    const crossLeft = await request('GET', '/v1/containers/a.b-c.u', left);
    const crossRight = await request('GET', '/v1/containers/a-b.c.u', right);
    const crossStop = await request('POST', '/v1/containers/a.b-c.u/stop', left, {});
    const ownLeft = await request('GET', '/v1/containers/a-b.c.u', left);
    const listLeft = await request('GET', '/v1/containers', left);

    // Assess
    expect([first.statusCode, second.statusCode]).toEqual([201, 201]);
    const [a, b] = [first.json().container, second.json().container];
    expect([a.containerId, b.containerId]).toEqual(['a-b.c.u', 'a.b-c.u']);
    for (const attribute of [
      'containerId',
      'taskArn',
      'inputQueueUrl',
      'outputQueueUrl',
      'workspacePath',
    ]) {
      expect(a[attribute]).not.toBe(b[attribute]);
    }
    expect(deps.runtime.startCalls.map((spec) => spec.containerId).sort()).toEqual([
      'a-b.c.u',
      'a.b-c.u',
    ]);
    for (const answer of [crossLeft, crossRight, crossStop]) expect(answer.statusCode).toBe(403);
    expect(ownLeft.statusCode).toBe(200);
    expect(listLeft.json().containers.map((c: { containerId: string }) => c.containerId)).toEqual([
      'a-b.c.u',
    ]);
    expect((await deps.store.getContainer('a.b-c.u'))?.status).toBe('starting');
  });
});

describe('rate limiting per client and user', () => {
  const LIMIT = 4;
  beforeEach(async () => {
    await app.close();
    app = await build({ rateLimitPerMinute: LIMIT });
  });

  it("answers a flood with 429 and Retry-After, without reaching the store, and leaves other users' budgets alone", async () => {
    // Act
    const flood = [];
    for (let i = 0; i < LIMIT + 3; i += 1)
      flood.push(await request('GET', '/v1/containers/acme.web.john', john));
    const storeCallsAfterFlood = calls.length;
    const sameClientOtherUser = await request('GET', '/v1/containers/acme.web.mary', mary);
    const otherClientSameUser = await request('GET', '/v1/containers?clientId=globex', globexJohn);
    const discoverWhileLimited = await request('POST', '/v1/containers/discover', john, {
      clientId: 'acme',
      projectId: 'web',
      userId: 'john',
    });

    // Assess
    expect(flood.slice(0, LIMIT).map((a) => a.statusCode)).toEqual(Array(LIMIT).fill(200));
    for (const answer of [...flood.slice(LIMIT), discoverWhileLimited]) {
      expect(answer.statusCode).toBe(429);
      expect(answer.json()).toEqual({
        error: { code: 'capacity_exceeded', message: expect.any(String) },
      });
      expect(Number(answer.headers['retry-after'])).toBeGreaterThan(0);
      expect(Number(answer.headers['retry-after'])).toBeLessThanOrEqual(60);
    }
    expect(calls.length).toBeGreaterThan(storeCallsAfterFlood); // the others' requests reached it
    expect(
      calls.slice(storeCallsAfterFlood).some((call) => call.args.includes('acme.web.john')),
    ).toBe(false);
    expect(sameClientOtherUser.statusCode).toBe(200);
    expect(otherClientSameUser.statusCode).toBe(200);
  });

  it('keeps apart the budgets of claims that a separator would join (a/b + c and a + b/c)', async () => {
    const left = sign({ client: 'a/b', sub: 'c', role: 'user' });
    const right = sign({ client: 'a', sub: 'b/c', role: 'user' });
    for (let i = 0; i < LIMIT; i += 1) await request('GET', '/v1/containers', left);
    const leftOver = await request('GET', '/v1/containers', left);
    const rightFirst = await request('GET', '/v1/containers', right);
    expect(leftOver.statusCode).toBe(429);
    expect(rightFirst.statusCode).not.toBe(429);
  });

  it('never limits health, readiness or metrics, even for a caller over its budget', async () => {
    for (let i = 0; i < LIMIT + 1; i += 1) await request('GET', '/v1/containers', john);
    const answers = await Promise.all(
      ['/healthz', '/readyz', '/metrics', '/docs'].map((url) => request('GET', url, john)),
    );
    expect(answers.map((a) => a.statusCode)).toEqual([200, 200, 200, 200]);
  });
});

describe('what answers never carry', () => {
  it('does not tell the caller which table or engine failed when the store fails (503)', async () => {
    // Prepare
    await app.close();
    app = await build({
      store: new DynamoStateStore({
        client: dynamodb,
        containerTable: 'secret-table-name',
        sessionTable: 'secret-sessions',
      }),
    });

    // Act
    const answer = await request('GET', '/v1/containers/acme.web.john', admin);

    // Assess
    expect(answer.statusCode).toBe(503);
    expect(answer.json()).toEqual({ error: { code: 'unavailable', message: expect.any(String) } });
    expect(answer.body).not.toMatch(/secret-table-name|DynamoDB|ResourceNotFound|at .*\.ts/);
  });

  it('never shows the secret or a token in the OpenAPI document or the metrics', async () => {
    await request('GET', '/v1/containers/acme.web.john', john);
    const docs = await request('GET', '/docs', null);
    const metrics = await request('GET', '/metrics', null);
    for (const answer of [docs, metrics]) {
      expect(answer.body).not.toContain(SECRET);
      expect(answer.body).not.toContain(john);
    }
  });
});
