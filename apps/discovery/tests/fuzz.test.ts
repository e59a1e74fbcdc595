/**
 * Every route of the discovery service under generated input, against DynamoDB Local: bodies
 * with fields valid, missing, of the wrong type, hostile or extra; ids in the path that
 * look like paths, are encoded, unicode or huge; query strings; invalid JSON, deep JSON and
 * wrong content types; unknown routes and methods. Whatever arrives, the answer is never a
 * 5xx and never a stack trace, an error is the contract's `{"error": {code, message, field?}}`,
 * and when the generator broke exactly the fields it knows, the 400 names one of them.
 *
 * Reproduce a failure with the seed fast-check prints: BERTH_FUZZ_SEED=<seed> (and
 * BERTH_FUZZ_RUNS=<n> to run longer).
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { jest } from '@jest/globals';
import { UseCases } from '@berth/core';
import {
  CONTAINER_STATUSES,
  ContainerJsonSchema,
  SessionJsonSchema,
  systemClock,
  validator,
  type ContainerJson,
  type SessionJson,
} from '@berth/domain';
import { DynamoStateStore, ensureTables } from '@berth/dynamodb';
import { makeCoreDeps, type FakeCoreDeps } from '@berth/testing';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { createSigner } from 'fast-jwt';
import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { Registry } from 'prom-client';
import { buildDiscoveryApp } from '../src/app.ts';

const seed =
  process.env.BERTH_FUZZ_SEED === undefined ? undefined : Number(process.env.BERTH_FUZZ_SEED);
const runs = (numRuns: number): fc.Parameters<unknown> => ({
  numRuns:
    process.env.BERTH_FUZZ_RUNS === undefined ? numRuns : Number(process.env.BERTH_FUZZ_RUNS),
  ...(seed === undefined ? {} : { seed }),
});

// Each property makes up to 100 round trips to DynamoDB Local; a busy 2-core machine needs room.
jest.setTimeout(120_000);

const SECRET = 'a-fuzz-secret-that-is-long-enough-for-hs256!';
const sign = createSigner({ key: SECRET, algorithm: 'HS256' });
const admin = sign({ client: 'admin', sub: 'root', role: 'admin' });
const john = sign({ client: 'acme', sub: 'john', role: 'user' });

// The contract's rules, written out again so the oracle does not share a mistake with the code.
const ID_PART = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const OPAQUE = /^[A-Za-z0-9._:-]{1,128}$/;
const isIdPart = (v: unknown) => typeof v === 'string' && ID_PART.test(v);
const isContainerId = (v: unknown) =>
  typeof v === 'string' && v.split('.').length === 3 && v.split('.').every((p) => ID_PART.test(p));
const isOpaque = (v: unknown) => typeof v === 'string' && OPAQUE.test(v);

const CODE_STATUS: Record<string, number> = {
  invalid_argument: 400,
  unauthenticated: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  capacity_exceeded: 429,
};
/** Transport-level refusals the contract's table has no row for; they carry invalid_argument. */
const CLIENT_ERROR_STATUSES = new Set([408, 413, 415, 431]);

const containerShape = validator<ContainerJson>(ContainerJsonSchema);
const sessionShape = validator<SessionJson>(SessionJsonSchema);

interface Answer {
  statusCode: number;
  body: string;
  headers: Record<string, unknown>;
}

const STACK_TRACE = /\bat .*[\w/]\.(ts|js|mjs|cjs):\d+|node_modules|\n\s+at /;

/** What every answer of every route must be, whatever was asked. */
function expectContractAnswer(
  answer: Answer,
  method = 'GET',
): { error?: { code: string; message: string; field?: string } } & Record<string, unknown> {
  expect(answer.statusCode).toBeGreaterThanOrEqual(200);
  expect(answer.statusCode).toBeLessThan(500);
  expect(answer.body).not.toMatch(STACK_TRACE);
  if (method === 'HEAD') return {};
  // /metrics answers in Prometheus text; everything else, errors included, is JSON.
  const contentType = answer.headers['content-type'];
  const isJson = typeof contentType === 'string' && contentType.startsWith('application/json');
  if (answer.statusCode < 400 && !isJson) return {};
  expect(isJson).toBe(true);
  const body = JSON.parse(answer.body) as Record<string, unknown>;
  if (answer.statusCode >= 400) {
    expect(Object.keys(body)).toEqual(['error']);
    const error = body.error as Record<string, unknown>;
    expect(Object.keys(error).filter((key) => !['code', 'message', 'field'].includes(key))).toEqual(
      [],
    );
    expect(typeof error.message).toBe('string');
    expect((error.message as string).length).toBeGreaterThan(0);
    if ('field' in error) expect(typeof error.field).toBe('string');
    const status = CODE_STATUS[error.code as string];
    if (CLIENT_ERROR_STATUSES.has(answer.statusCode)) expect(error.code).toBe('invalid_argument');
    else expect(status).toBe(answer.statusCode);
  }
  return body;
}

function expectContainer(value: unknown): ContainerJson {
  expect(containerShape.check(value)).toBe(true);
  return value as ContainerJson;
}

const dynamodb = new DynamoDBClient({});
const names = {
  containerTable: `fuzz-containers-${randomUUID().slice(0, 8)}`,
  sessionTable: `fuzz-sessions-${randomUUID().slice(0, 8)}`,
};
let deps: FakeCoreDeps;
let useCases: UseCases;
let app: FastifyInstance;
/** Ids that exist, so generated requests also reach the found-and-allowed paths. */
const existing = {
  containerId: 'acme.web.john',
  otherContainerId: 'acme.web.mary',
  sessionId: 'slack:C01:1700000000.1',
};

beforeAll(async () => {
  await ensureTables(dynamodb, names);
  const store = new DynamoStateStore({ client: dynamodb, ...names });
  deps = makeCoreDeps({ store, clock: systemClock as FakeCoreDeps['clock'] });
  useCases = new UseCases(deps);
  app = await buildDiscoveryApp({
    useCases,
    store,
    publisher: deps.publisher,
    authSecret: SECRET,
    cacheTtlMs: 1000,
    registry: new Registry(),
    // `?wait=` is honoured, but briefly: the fake runtime never reports a task running.
    maxWaitSeconds: 0.05,
    waitPollMs: 10,
  });
  await useCases.sessions.assign({
    type: 'session.assign',
    commandId: 'c-seed',
    payload: { sessionId: existing.sessionId, clientId: 'acme', projectId: 'web', userId: 'john' },
  });
  await useCases.containers.findOrStart({ clientId: 'acme', projectId: 'web', userId: 'mary' });
});

afterAll(async () => {
  await app.close();
  dynamodb.destroy();
});

const inject = (options: {
  method?: string;
  url: string;
  token?: string | null;
  headers?: Record<string, string>;
  payload?: string;
}) =>
  app.inject({
    method: (options.method ?? 'GET') as 'GET',
    url: options.url,
    headers: {
      ...(options.token === null ? {} : { authorization: `Bearer ${options.token ?? admin}` }),
      ...options.headers,
    },
    ...(options.payload === undefined ? {} : { payload: options.payload }),
  });

// ---- generators -----------------------------------------------------------------------

const HOSTILE = [
  '',
  ' ',
  '.',
  '..',
  '../',
  '../../etc/passwd',
  'a/b',
  'a\\b',
  '%2e%2e',
  '%2F',
  'a%2Fb',
  '\u0000',
  'a\u0000b',
  'A',
  'a.b',
  'a..b',
  '-a',
  'a-',
  'a_b',
  'ä',
  '😀',
  '\u202e',
  '\n',
  '\r\n',
  'a'.repeat(64),
  'x'.repeat(129),
  'z'.repeat(5000),
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  '{}',
  '[]',
  'null',
  '<script>',
  "' OR 1=1 --",
] as const;
const hostileString = fc.oneof(
  { arbitrary: fc.constantFrom(...HOSTILE), weight: 3 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 100 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }), weight: 1 },
);
const wrongType = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
);
const idPart = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);

type Plan =
  { kind: 'valid'; value: unknown } | { kind: 'missing' } | { kind: 'bad'; value: unknown };
const plan = (
  valid: fc.Arbitrary<unknown>,
  isValid: (v: unknown) => boolean,
  optional = false,
): fc.Arbitrary<Plan> =>
  fc
    .oneof(
      { arbitrary: valid.map((value): Plan => ({ kind: 'valid', value })), weight: 5 },
      { arbitrary: fc.constant<Plan>({ kind: 'missing' }), weight: 1 },
      {
        arbitrary: fc
          .oneof(hostileString, wrongType)
          .filter((v) => !isValid(v))
          .map((value): Plan => ({ kind: 'bad', value })),
        weight: 2,
      },
    )
    .map((p) => (optional && p.kind === 'missing' ? p : p));

const extras = (known: readonly string[]) =>
  fc.oneof(
    { arbitrary: fc.constant<[string, unknown][]>([]), weight: 5 },
    {
      arbitrary: fc
        .array(
          fc.tuple(
            fc.oneof(
              fc.constantFrom('extra', 'constructor', 'prototype', 'role'),
              fc.string({ minLength: 1, maxLength: 12 }),
            ),
            fc.jsonValue({ maxDepth: 2 }),
          ),
          {
            minLength: 1,
            maxLength: 2,
          },
        )
        .map((pairs) => pairs.filter(([key]) => !known.includes(key) && key !== '__proto__')),
      weight: 1,
    },
  );

/** Builds an object and the set of fields it breaks. */
function assemble(
  fields: [string, Plan, boolean][],
  extra: [string, unknown][],
): { value: Record<string, unknown>; broken: Set<string> } {
  const entries: [string, unknown][] = [];
  const broken = new Set<string>();
  for (const [name, p, optional] of fields) {
    if (p.kind !== 'missing') entries.push([name, p.value]);
    if (p.kind === 'bad' || (p.kind === 'missing' && !optional)) broken.add(name);
  }
  for (const [key, value] of extra) {
    entries.push([key, value]);
    broken.add(key);
  }
  return { value: Object.fromEntries(entries), broken };
}

const WAIT = /^([0-9]|[1-5][0-9]|60)$/;
const waitPlan = fc.oneof(
  { arbitrary: fc.constant<Plan>({ kind: 'missing' }), weight: 3 },
  {
    arbitrary: fc
      .integer({ min: 0, max: 60 })
      .map((n): Plan => ({ kind: 'valid', value: String(n) })),
    weight: 2,
  },
  {
    arbitrary: fc
      .oneof(
        fc.constantFrom(
          '61',
          '-1',
          '1.5',
          ' 1',
          '1 ',
          '０',
          '٣',
          '0x1',
          '',
          '1e1',
          '999999999999',
          'NaN',
          'Infinity',
          '07',
        ),
        hostileString,
      )
      .filter((v) => !WAIT.test(v))
      .map((value): Plan => ({ kind: 'bad', value })),
    weight: 2,
  },
);

/** A query string as a client would encode it. */
const query = (entries: [string, string][]) =>
  entries.length === 0 ? '' : `?${new URLSearchParams(entries).toString()}`;

// ---- routes ---------------------------------------------------------------------------

describe('POST /v1/containers/discover under generated input', () => {
  const key = fc.tuple(
    plan(idPart, isIdPart),
    plan(idPart, isIdPart),
    plan(idPart, isIdPart),
    extras(['clientId', 'projectId', 'userId']),
    waitPlan,
  );

  it('starts or finds a container for a valid body and otherwise names a broken field', async () => {
    await fc.assert(
      fc.asyncProperty(key, async ([clientId, projectId, userId, extra, wait]) => {
        const { value, broken } = assemble(
          [
            ['clientId', clientId, false],
            ['projectId', projectId, false],
            ['userId', userId, false],
          ],
          extra,
        );
        if (wait.kind === 'bad') broken.add('wait');
        const url = `/v1/containers/discover${query(wait.kind === 'missing' ? [] : [['wait', String(wait.value)]])}`;

        const answer = await inject({
          method: 'POST',
          url,
          headers: { 'content-type': 'application/json' },
          payload: JSON.stringify(value),
        });

        const body = expectContractAnswer(answer);
        if (broken.size > 0) {
          expect(answer.statusCode).toBe(400);
          expect([...broken]).toContain(body.error?.field);
          return;
        }
        expect([200, 201]).toContain(answer.statusCode);
        expect(Object.keys(body).sort()).toEqual(['container', 'source']);
        expect(expectContainer(body.container).containerId).toBe(
          `${String(value.clientId)}.${String(value.projectId)}.${String(value.userId)}`,
        );
        expect(['cache', 'store', 'created']).toContain(body.source);
      }),
      runs(80),
    );
  });

  const deep = (open: string, close: string, depth: number) =>
    open.repeat(depth) + '1' + close.repeat(depth);
  const rawBody = fc.oneof(
    fc.string({ unit: 'binary', maxLength: 300 }),
    fc.json({ maxDepth: 4 }),
    fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? 'null'),
    fc.constantFrom(
      '',
      '{',
      '{"clientId":',
      '{"clientId":"acme","projectId":"web","userId":"ann"',
      '{"clientId":"acme","projectId":"web","userId":"ann"}}',
      "{'clientId':'acme'}",
      '{"clientId":"acme","clientId":"acme","projectId":"web","userId":"ann"}',
      '{"__proto__":{"polluted":true},"clientId":"acme","projectId":"web","userId":"ann"}',
      '{"constructor":{"prototype":{"polluted":true}},"clientId":"acme","projectId":"web","userId":"ann"}',
      '\uFEFF{"clientId":"acme","projectId":"web","userId":"ann"}',
      '{"clientId":"acme\\u0000","projectId":"web","userId":"ann"}',
      '{"clientId":"\\ud800","projectId":"web","userId":"ann"}',
      deep('[', ']', 10_000),
      deep('{"a":', '}', 10_000),
      `{"clientId":${deep('[', ']', 5_000)},"projectId":"web","userId":"ann"}`,
      `{"clientId":"acme","projectId":"web","userId":"ann","x":${deep('{"a":', '}', 3_000)}}`,
      JSON.stringify({ clientId: 'x'.repeat(20_000) }),
    ),
  );
  const contentType = fc.oneof(
    { arbitrary: fc.constant('application/json'), weight: 4 },
    {
      arbitrary: fc.constantFrom(
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'application/json; charset=latin1',
        'application/jsonx',
        'application/vnd.api+json',
        'text/plain',
        'text/json',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=x',
        'application/xml',
        '',
        ';;;',
      ),
      weight: 3,
    },
    { arbitrary: fc.string({ maxLength: 40 }), weight: 1 },
  );

  it('answers any body with any content type in the contract shape, without a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(rawBody, contentType, async (payload, type) => {
        const headers: Record<string, string> = type === '' ? {} : { 'content-type': type };
        let answer: Answer;
        try {
          answer = await inject({
            method: 'POST',
            url: '/v1/containers/discover',
            headers,
            payload,
          });
        } catch (error) {
          // A header value Node itself refuses to send never reaches a server.
          if ((error as { code?: string }).code === 'ERR_INVALID_CHAR') return;
          throw error;
        }
        expectContractAnswer(answer);
        expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      }),
      runs(100),
    );
  });
});

describe('container routes under generated ids', () => {
  const ROUTES = [
    { method: 'GET', suffix: '', ok: 200, payload: undefined },
    { method: 'GET', suffix: '/sessions', ok: 200, payload: undefined },
    { method: 'POST', suffix: '/stop', ok: 202, payload: '{}' },
  ] as const;
  const containerIdCandidate = fc.oneof(
    { arbitrary: fc.constantFrom(existing.containerId, existing.otherContainerId), weight: 1 },
    { arbitrary: fc.tuple(idPart, idPart, idPart).map((parts) => parts.join('.')), weight: 2 },
    {
      arbitrary: fc
        .tuple(
          fc.oneof(idPart, hostileString),
          fc.oneof(idPart, hostileString),
          fc.oneof(idPart, hostileString),
        )
        .map((parts) => parts.join('.')),
      weight: 2,
    },
    { arbitrary: hostileString, weight: 2 },
    {
      arbitrary: fc.constantFrom(
        'a'.repeat(63) + '.' + 'b'.repeat(63) + '.' + 'c'.repeat(63),
        'a.b.' + 'c'.repeat(64),
        'x'.repeat(100_000),
      ),
      weight: 1,
    },
  );

  it('answers an encoded id with the container, 404, 403 or a 400 naming containerId', async () => {
    await fc.assert(
      fc.asyncProperty(
        containerIdCandidate,
        fc.constantFrom(...ROUTES),
        fc.constantFrom(admin, john),
        async (id, route, token) => {
          const answer = await inject({
            method: route.method,
            url: `/v1/containers/${encodeURIComponent(id)}${route.suffix}`,
            token,
            ...(route.payload === undefined
              ? {}
              : { headers: { 'content-type': 'application/json' }, payload: route.payload }),
          });

          const body = expectContractAnswer(answer);
          if (id === '.' || id === '..') {
            // Dot segments are resolved before routing, as a browser would: another path.
            expect([400, 404]).toContain(answer.statusCode);
          } else if (!isContainerId(id)) {
            expect(answer.statusCode).toBe(400);
            expect(body.error?.field).toBe('containerId');
          } else if (token === john && !id.startsWith('acme.')) {
            expect(answer.statusCode).toBe(403);
          } else if (token === john && id.split('.')[2] !== 'john') {
            expect(answer.statusCode).toBe(403);
          } else {
            expect([route.ok, 404]).toContain(answer.statusCode);
            if (answer.statusCode === 200 && route.suffix === '')
              expect(expectContainer(body.container).containerId).toBe(id);
            if (answer.statusCode === 200 && route.suffix === '/sessions') {
              for (const session of body.sessions as unknown[])
                expect(sessionShape.check(session)).toBe(true);
            }
          }
        },
      ),
      runs(100),
    );
  });

  it('answers a raw, path-like id in the contract shape, never reaching beyond the routes', async () => {
    const rawPath = fc.oneof(
      fc.constantFrom(
        '..',
        '../..',
        '../../../etc/passwd',
        '%2e%2e',
        '%2e%2e%2f%2e%2e',
        '..%2F..%2Fetc',
        '.%2e',
        'a%2Fb.c.d',
        'a.b.c%2F..%2F..',
        '%00',
        'a.b.c%00',
        '%',
        '%zz',
        '%E0%A4%A',
        '%C0%AE%C0%AE',
        '%uff0e',
        'a.b.c/',
        'a.b.c//',
        'a.b.c/..',
        'a.b.c;x=1',
        'a.b.c%20',
        '%20a.b.c',
        'A.B.C',
        'ａ.b.c',
        'a.b.c#frag',
        'a.b.c?x=1',
        encodeURIComponent('😀.b.c'),
      ),
      fc.string({ maxLength: 50 }).map((s) => s.replace(/[^\x21-\x7e]/g, '')),
    );
    await fc.assert(
      fc.asyncProperty(rawPath, fc.constantFrom(...ROUTES), async (raw, route) => {
        const answer = await inject({
          method: route.method,
          url: `/v1/containers/${raw}${route.suffix}`,
          ...(route.payload === undefined
            ? {}
            : { headers: { 'content-type': 'application/json' }, payload: route.payload }),
        });
        expectContractAnswer(answer);
      }),
      runs(100),
    );
  });

  const stopBody = fc.oneof(
    { arbitrary: fc.constant<string | undefined>(undefined), weight: 1 },
    { arbitrary: fc.constant('{}'), weight: 1 },
    {
      arbitrary: fc
        .string({ minLength: 1, maxLength: 200 })
        .map((reason) => JSON.stringify({ reason })),
      weight: 2,
    },
    {
      arbitrary: fc.oneof(hostileString, wrongType).map((reason) => JSON.stringify({ reason })),
      weight: 2,
    },
    {
      arbitrary: fc
        .tuple(fc.string({ minLength: 1, maxLength: 10 }), fc.jsonValue({ maxDepth: 2 }))
        .map(([k, v]) => JSON.stringify({ [k]: v })),
      weight: 1,
    },
    {
      arbitrary: fc.oneof(
        fc.jsonValue({ maxDepth: 2 }).map((v) => JSON.stringify(v) ?? 'null'),
        fc.string({ maxLength: 50 }),
      ),
      weight: 1,
    },
  );

  it('stops with a valid body or names the broken field of a stop body', async () => {
    await fc.assert(
      fc.asyncProperty(
        stopBody,
        fc.constantFrom(existing.containerId, 'acme.nowhere.john'),
        async (payload, id) => {
          const answer = await inject({
            method: 'POST',
            url: `/v1/containers/${id}/stop`,
            ...(payload === undefined
              ? {}
              : { headers: { 'content-type': 'application/json' }, payload }),
          });
          const body = expectContractAnswer(answer);
          let parsed: unknown;
          try {
            parsed = payload === undefined ? undefined : JSON.parse(payload);
          } catch {
            expect(answer.statusCode).toBe(400);
            return;
          }
          const isObject = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
          if (parsed !== undefined && !isObject) {
            expect(answer.statusCode).toBe(400);
            return;
          }
          const record = (parsed ?? {}) as Record<string, unknown>;
          const broken = Object.keys(record).filter(
            (k) =>
              k !== 'reason' ||
              !(
                typeof record.reason === 'string' &&
                [...record.reason].length >= 1 &&
                [...record.reason].length <= 200
              ),
          );
          if (broken.length > 0) {
            expect(answer.statusCode).toBe(400);
            expect(broken).toContain(body.error?.field);
          } else {
            expect([202, 404, 409]).toContain(answer.statusCode);
            if (answer.statusCode === 202)
              expect(expectContainer(body.container).containerId).toBe(id);
          }
        },
      ),
      runs(60),
    );
  });
});

describe('GET /v1/containers under generated query strings', () => {
  const PARAMS = ['clientId', 'projectId', 'userId', 'status', 'limit', 'cursor'] as const;
  const VALID: Record<(typeof PARAMS)[number], fc.Arbitrary<string>> = {
    clientId: fc.oneof(fc.constant('acme'), idPart),
    projectId: fc.oneof(fc.constant('web'), idPart),
    userId: fc.oneof(fc.constant('john'), idPart),
    status: fc.constantFrom(...CONTAINER_STATUSES),
    limit: fc.integer({ min: 1, max: 100 }).map(String),
    // No generated cursor is valid: each is bound to the query that made it.
    cursor: fc.constant(''),
  };
  const IS_VALID: Record<(typeof PARAMS)[number], (v: string) => boolean> = {
    clientId: isIdPart,
    projectId: isIdPart,
    userId: isIdPart,
    status: (v) => (CONTAINER_STATUSES as readonly string[]).includes(v),
    limit: (v) => /^([1-9][0-9]?|100)$/.test(v),
    cursor: () => false,
  };
  const param = (name: (typeof PARAMS)[number]) =>
    fc.oneof(
      { arbitrary: fc.constant<[string, string][]>([]), weight: 4 },
      {
        arbitrary: VALID[name]
          .filter((v) => name !== 'cursor' || v !== '')
          .map((v): [string, string][] => [[name, v]]),
        weight: name === 'cursor' ? 0 : 2,
      },
      {
        arbitrary: fc
          .oneof(
            hostileString,
            fc.string({ minLength: 1, maxLength: 200 }),
            fc.constantFrom('0', '101', '-1', '1.0', 'STARTING', 'Running', '50 '),
          )
          .filter((v) => !IS_VALID[name](v))
          .map((v): [string, string][] => [[name, v]]),
        weight: 1,
      },
      // The same key twice becomes an array: never a string, so always refused.
      {
        arbitrary: VALID[name].map((v): [string, string][] => [
          [name, v],
          [name, v],
        ]),
        weight: 1,
      },
    );
  const unknownParams = fc.oneof(
    { arbitrary: fc.constant<[string, string][]>([]), weight: 4 },
    {
      arbitrary: fc
        .tuple(
          fc
            .oneof(
              fc.constantFrom(
                '__proto__',
                'constructor',
                'token',
                'access_token',
                'wait',
                'clientid',
                'offset',
              ),
              fc.string({ minLength: 1, maxLength: 10 }),
            )
            .filter((k) => !(PARAMS as readonly string[]).includes(k)),
          fc.string({ maxLength: 10 }),
        )
        .map((pair): [string, string][] => [pair]),
      weight: 1,
    },
  );

  it('lists for valid filters and otherwise names a broken parameter', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(...PARAMS.map(param)),
        unknownParams,
        fc.constantFrom(admin, john),
        async (params, unknown, token) => {
          const entries = [...params.flat(), ...unknown];
          const broken = new Set<string>(unknown.map(([k]) => k));
          for (const [k] of entries) {
            const all = entries.filter(([other]) => other === k);
            if (
              all.length > 1 ||
              !Object.hasOwn(IS_VALID, k) ||
              !IS_VALID[k as (typeof PARAMS)[number]](all[0]![1])
            )
              broken.add(k);
          }
          const answer = await inject({ url: `/v1/containers${query(entries)}`, token });

          const body = expectContractAnswer(answer);
          const filters = Object.fromEntries(entries);
          const beyondScope =
            token === john &&
            ((filters.clientId ?? 'acme') !== 'acme' || (filters.userId ?? 'john') !== 'john');
          // Only the store can tell a cursor is not its own, and it is asked after the scope check.
          if (beyondScope && broken.size === 1 && broken.has('cursor') && answer.statusCode === 403)
            return;
          if (broken.size > 0) {
            expect(answer.statusCode).toBe(400);
            expect([...broken]).toContain(body.error?.field);
            return;
          }
          if (beyondScope) {
            expect(answer.statusCode).toBe(403);
            return;
          }
          expect(answer.statusCode).toBe(200);
          expect(Object.keys(body).sort()).toEqual(['containers', 'nextCursor']);
          for (const container of body.containers as unknown[]) {
            const json = expectContainer(container);
            for (const name of ['clientId', 'projectId', 'userId', 'status'] as const) {
              if (filters[name] !== undefined) expect(json[name]).toBe(filters[name]);
            }
            if (token === john) expect([json.clientId, json.userId]).toEqual(['acme', 'john']);
          }
        },
      ),
      runs(80),
    );
  });

  it('refuses a cursor whose key was forged, whatever the key holds, as invalid_argument', async () => {
    // A genuine cursor of a one-item page, its key then replaced: the fingerprint still
    // matches the query, so only the key's own checks stand between it and DynamoDB.
    const first = await inject({ url: '/v1/containers?limit=1' });
    const cursor = first.json<{ nextCursor: string | null }>().nextCursor;
    expect(cursor).not.toBeNull();
    const decoded = JSON.parse(Buffer.from(cursor!, 'base64url').toString('utf8')) as {
      q: string;
      k: Record<string, unknown>;
    };
    await fc.assert(
      // The key as a genuine one is shaped (the table key and the index's), one value forged.
      fc.asyncProperty(
        fc.oneof(hostileString, wrongType, fc.constant('x'.repeat(3000)), fc.constant('')),
        async (containerId) => {
          const forged = Buffer.from(
            JSON.stringify({ q: decoded.q, k: { ...decoded.k, containerId } }),
            'utf8',
          ).toString('base64url');
          const answer = await inject({ url: `/v1/containers?limit=1&cursor=${forged}` });
          const body = expectContractAnswer(answer);
          if (answer.statusCode !== 200)
            expect(body.error).toMatchObject({ code: 'invalid_argument', field: 'cursor' });
        },
      ),
      runs(50),
    );
  });
});

describe('session route under generated ids', () => {
  const sessionIdCandidate = fc.oneof(
    fc.constant(existing.sessionId),
    fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/),
    hostileString,
    fc.constantFrom('s'.repeat(128), 's'.repeat(129), 'x'.repeat(50_000)),
  );

  it('answers an encoded id with the session, 404 or a 400 naming sessionId', async () => {
    await fc.assert(
      fc.asyncProperty(sessionIdCandidate, fc.constantFrom(admin, john), async (id, token) => {
        const answer = await inject({ url: `/v1/sessions/${encodeURIComponent(id)}`, token });
        const body = expectContractAnswer(answer);
        if (id === '.' || id === '..') expect([400, 404]).toContain(answer.statusCode);
        else if (!isOpaque(id)) {
          expect(answer.statusCode).toBe(400);
          expect(body.error?.field).toBe('sessionId');
        } else if (id === existing.sessionId) {
          expect(answer.statusCode).toBe(200);
          expect(sessionShape.check(body.session)).toBe(true);
        } else expect(answer.statusCode).toBe(404);
      }),
      runs(100),
    );
  });
});

describe('unknown routes, methods and headers', () => {
  const METHODS = [
    'GET',
    'POST',
    'PUT',
    'DELETE',
    'PATCH',
    'OPTIONS',
    'HEAD',
    'PROPFIND',
    'TRACE',
    'SEARCH',
  ] as const;
  const path = fc.oneof(
    fc.constantFrom(
      '/',
      '/v1',
      '/v1/',
      '/v1/containers/',
      '/v1/containers/discover/x',
      '/v2/containers',
      '/V1/containers',
      '/v1/containers/a.b.c/stop/x',
      '/v1/sessions',
      '/v1/sessions/',
      '/healthz/',
      '/docs/json',
      '/metrics?x=1',
      '//',
      '/./v1/containers',
      '/%2e/v1',
      '/v1/%2e%2e/healthz',
      `/${'x'.repeat(10_000)}`,
      '/v1/containers/a.b.c/sessions/x',
    ),
    // An empty path cannot be sent over HTTP (and trips the injector): a slash is the least.
    fc.webPath().map((p) => (p.startsWith('/') ? p : `/${p}`)),
    fc
      .array(fc.oneof(idPart, hostileString.map(encodeURIComponent)), { maxLength: 5 })
      .map((parts) => `/${parts.join('/')}`),
  );

  it('answers any method on any path in the contract shape, without a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...METHODS),
        path,
        fc.constantFrom(admin, null),
        async (method, url, token) => {
          const answer = await inject({ method, url, token });
          expectContractAnswer(answer, method);
        },
      ),
      runs(100),
    );
  });

  it('answers any Authorization header with 401 in the contract shape', async () => {
    const header = fc.oneof(
      fc.string({ maxLength: 200 }).map((s) => s.replace(/[^\x20-\x7e]/g, '')),
      fc.string({ maxLength: 200 }).map((s) => `Bearer ${s.replace(/[^\x21-\x7e]/g, '')}`),
      fc
        .tuple(
          fc.base64String({ maxLength: 60 }),
          fc.base64String({ maxLength: 200 }),
          fc.base64String({ maxLength: 60 }),
        )
        .map((parts) => `Bearer ${parts.join('.')}`),
      fc.constantFrom(
        'Bearer',
        'Bearer ',
        'bearer x',
        `Bearer ${admin} extra`,
        `Bearer  ${admin}x`,
        `Basic ${Buffer.from('admin:admin').toString('base64')}`,
        `Bearer ${admin.split('.').slice(0, 2).join('.')}.`,
      ),
    );
    await fc.assert(
      fc.asyncProperty(header, async (authorization) => {
        const answer = await inject({
          url: `/v1/containers/${existing.containerId}`,
          token: null,
          headers: { authorization },
        });
        const body = expectContractAnswer(answer);
        expect(answer.statusCode).toBe(401);
        expect(body.error?.code).toBe('unauthenticated');
      }),
      runs(100),
    );
  });
});

describe('requests Node itself refuses, over a real socket', () => {
  let port = 0;
  beforeAll(async () => {
    port = Number(new URL(await app.listen({ host: '127.0.0.1', port: 0 })).port);
  });

  /** Sends raw bytes to the listening app and returns the status and the body. */
  async function raw(request: string): Promise<{ status: number; body: string }> {
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.end(request));
      let received = '';
      socket.on('data', (chunk: Buffer) => (received += chunk.toString('utf8')));
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
    const [head = '', body = ''] = text.split('\r\n\r\n');
    return { status: Number(head.split(' ')[1]), body };
  }

  it.each([
    ['a request line that is not HTTP', 'HELLO\r\n\r\n', 400],
    [
      'headers larger than Node accepts',
      `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
      431,
    ],
    [
      'a header with a control character',
      'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0001b\r\n\r\n',
      400,
    ],
  ])('answers %s in the contract shape', async (_label, request, status) => {
    const answer = await raw(request);
    expect(answer.status).toBe(status);
    expect(JSON.parse(answer.body)).toEqual({
      error: { code: 'invalid_argument', message: expect.any(String) },
    });
  });
});
