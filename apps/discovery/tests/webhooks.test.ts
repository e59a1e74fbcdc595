import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { UseCases, WebhookSubscriptions, type HostResolver } from '@berth/core';
import { NotFoundError, systemClock, type WebhookNetworkPolicy } from '@berth/domain';
import {
  DynamoStateStore,
  DynamoWebhookStore,
  ensureTables,
  ensureWebhookTable,
} from '@berth/dynamodb';
import { createMetrics } from '@berth/platform';
import { makeCoreDeps, type FakeCoreDeps } from '@berth/testing';
import type { FastifyInstance } from 'fastify';
import { createSigner } from 'fast-jwt';
import pino from 'pino';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { buildDiscoveryApp } from '../src/app.ts';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256!';
const sign = (claims: Record<string, unknown>) =>
  createSigner({ key: SECRET, algorithm: 'HS256' })(claims);
const admin = sign({ client: 'admin', sub: 'root', role: 'admin' });

const dynamodb = new DynamoDBClient({});
const suffix = randomUUID().slice(0, 8);
const names = { containerTable: `wh-containers-${suffix}`, sessionTable: `wh-sessions-${suffix}` };
const webhookTable = `wh-webhooks-${suffix}`;
/** The local stack's rule: http, and 127.0.0.1 exempt from the private-address refusal. */
const localNetwork: WebhookNetworkPolicy = { allowHttp: true, allowedNetworks: ['127.0.0.1/32'] };

/** A resolver with fixed answers (the test never depends on real DNS). */
const fixedDns: Record<string, string[]> = {
  'hooks.example.com': ['93.184.215.14'],
  'rebind.example.com': ['93.184.215.14', '10.0.0.7'],
  'metadata.example.com': ['169.254.169.254'],
};
const resolveHost: HostResolver = (hostname) => {
  const addresses = fixedDns[hostname];
  return addresses
    ? Promise.resolve(addresses)
    : Promise.reject(new NotFoundError(`${hostname} has no address`));
};

let deps: FakeCoreDeps;
let app: FastifyInstance;
let logged: string;

beforeAll(async () => {
  await Promise.all([ensureTables(dynamodb, names), ensureWebhookTable(dynamodb, webhookTable)]);
});

beforeEach(async () => {
  const store = new DynamoStateStore({ client: dynamodb, ...names });
  deps = makeCoreDeps({ store, clock: systemClock as FakeCoreDeps['clock'] });
  const metrics = createMetrics('discovery', { emf: false });
  logged = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logged += chunk.toString('utf8');
      done();
    },
  });
  app = await buildDiscoveryApp({
    useCases: new UseCases({ ...deps, metrics: metrics.core, policies: store }),
    store,
    publisher: deps.publisher,
    authSecret: SECRET,
    cacheTtlMs: 0,
    rateLimitPerMinute: 0,
    registry: metrics.registry,
    logger: pino({ level: 'trace' }, sink),
    webhooks: new WebhookSubscriptions({
      store: new DynamoWebhookStore({ client: dynamodb, table: webhookTable }),
      clock: systemClock,
      network: localNetwork,
      resolveHost,
    }),
  });
});

afterEach(async () => {
  await app.close();
});

afterAll(() => {
  dynamodb.destroy();
});

const call = (method: 'GET' | 'PUT' | 'DELETE', url: string, token: string, payload?: object) =>
  app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${token}` },
    ...(payload ? { payload } : {}),
  });

const newClient = () => `c-${randomUUID().slice(0, 8)}`;
const hookSecret = () => `whsec-${randomUUID()}`;

describe('webhook routes', () => {
  it("a client's service token sets, reads and removes its webhook; the secret never comes back", async () => {
    // Arrange
    const client = newClient();
    const serviceToken = sign({ client, sub: 'svc', role: 'service' });
    const secret = hookSecret();

    // Act
    const put = await call('PUT', `/v1/webhooks/${client}`, serviceToken, {
      url: 'https://hooks.example.com/berth',
      events: ['container.*', 'session.released'],
      secret,
    });
    const read = await call('GET', `/v1/webhooks/${client}`, serviceToken);
    const readByAdmin = await call('GET', `/v1/webhooks/${client}`, admin);
    const removed = await call('DELETE', `/v1/webhooks/${client}`, serviceToken);
    const afterRemoval = await call('GET', `/v1/webhooks/${client}`, serviceToken);
    const removedAgain = await call('DELETE', `/v1/webhooks/${client}`, serviceToken);

    // Assess
    expect(put.statusCode).toBe(200);
    expect(read.statusCode).toBe(200);
    expect(read.json()).toEqual({
      clientId: client,
      url: 'https://hooks.example.com/berth',
      events: ['container.*', 'session.released'],
      createdAt: expect.any(String),
      updatedAt: expect.any(String),
    });
    expect(readByAdmin.json()).toEqual(read.json());
    for (const answer of [put, read, readByAdmin]) expect(answer.body).not.toContain(secret);
    expect(removed.statusCode).toBe(204);
    expect(afterRemoval.statusCode).toBe(404);
    expect(removedAgain.statusCode).toBe(404);
    // Every request and answer was logged at trace level, and none holds the secret.
    expect(logged).toContain(`/v1/webhooks/${client}`);
    expect(logged).not.toContain(secret);
  });

  it("refuses a user token, another client's service token, with 403 whether a webhook exists or not", async () => {
    // Arrange
    const client = newClient();
    await call('PUT', `/v1/webhooks/${client}`, admin, {
      url: 'https://hooks.example.com/x',
      events: ['*'],
      secret: hookSecret(),
    });
    const user = sign({ client, sub: 'john', role: 'user' });
    const other = sign({ client: 'globex', sub: 'svc', role: 'service' });

    // Act
    const answers = await Promise.all([
      call('GET', `/v1/webhooks/${client}`, user),
      call('PUT', `/v1/webhooks/${client}`, user, {
        url: 'https://hooks.example.com/x',
        events: ['*'],
        secret: hookSecret(),
      }),
      call('GET', `/v1/webhooks/${client}`, other),
      call('DELETE', `/v1/webhooks/${client}`, other),
      call('GET', `/v1/webhooks/${client}/deliveries`, other),
      call('GET', `/v1/webhooks/${newClient()}`, other),
    ]);

    // Assess
    for (const answer of answers) {
      expect(answer.statusCode).toBe(403);
      expect(answer.json()).toMatchObject({ error: { code: 'forbidden' } });
    }
  });

  it.each([
    [{ events: ['*'], secret: 's'.repeat(16) }, 'url'],
    [{ url: 'https://hooks.example.com', secret: 's'.repeat(16) }, 'events'],
    [{ url: 'https://hooks.example.com', events: [], secret: 's'.repeat(16) }, 'events'],
    [{ url: 'https://hooks.example.com', events: ['*'] }, 'secret'],
    [{ url: 'https://hooks.example.com', events: ['*'], secret: 'short' }, 'secret'],
    [
      { url: 'https://hooks.example.com', events: ['containers.*'], secret: 's'.repeat(16) },
      'events[0]',
    ],
    [{ url: 'ftp://hooks.example.com', events: ['*'], secret: 's'.repeat(16) }, 'url'],
    [{ url: 'https://hooks.example.com', events: ['*'], secret: 's'.repeat(16), x: 1 }, 'x'],
  ])('answers 400 naming the field for %j', async (body, field) => {
    // Act
    const answer = await call('PUT', `/v1/webhooks/${newClient()}`, admin, body);

    // Assess
    expect(answer.statusCode).toBe(400);
    expect(answer.json()).toMatchObject({ error: { code: 'invalid_argument', field } });
  });

  it.each([
    ['https://169.254.169.254/latest/meta-data/', /metadata/],
    ['https://[fd00:ec2::254]/', /metadata/],
    ['https://10.1.2.3/hook', /private/],
    ['https://172.16.5.4/hook', /private/],
    ['https://192.168.0.10/hook', /private/],
    ['https://127.0.0.2/hook', /loopback/],
    ['https://[::1]/hook', /loopback/],
    ['https://[fc00::1]/hook', /uniqueLocal/],
    ['https://[fe80::1]/hook', /linkLocal/],
    ['https://0.0.0.0/hook', /unspecified/],
    ['https://rebind.example.com/hook', /rebind.example.com resolves to 10.0.0.7/],
    ['https://metadata.example.com/hook', /metadata/],
    ['https://nowhere.example.com/hook', /does not resolve/],
  ])('refuses the webhook URL %s (SSRF), 400 naming url', async (url, message) => {
    // Act
    const answer = await call('PUT', `/v1/webhooks/${newClient()}`, admin, {
      url,
      events: ['*'],
      secret: hookSecret(),
    });

    // Assess
    expect(answer.statusCode).toBe(400);
    expect(answer.json()).toMatchObject({ error: { code: 'invalid_argument', field: 'url' } });
    expect(answer.json<{ error: { message: string } }>().error.message).toMatch(message);
  });

  it('allows http to 127.0.0.1 where the deployment allows it (the local stack)', async () => {
    // Act
    const answer = await call('PUT', `/v1/webhooks/${newClient()}`, admin, {
      url: 'http://127.0.0.1:9999/hook',
      events: ['container.stopped'],
      secret: hookSecret(),
    });

    // Assess
    expect(answer.statusCode).toBe(200);
  });

  it('lists no deliveries for a client without any, and refuses a bad status', async () => {
    // Act
    const empty = await call('GET', `/v1/webhooks/${newClient()}/deliveries?status=dead`, admin);
    const bad = await call('GET', `/v1/webhooks/${newClient()}/deliveries?status=lost`, admin);

    // Assess
    expect(empty.statusCode).toBe(200);
    expect(empty.json()).toEqual({ deliveries: [], nextCursor: null });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: { field: 'status' } });
  });
});
