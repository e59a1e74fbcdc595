/**
 * The webhook service on the local engines (DynamoDB Local, fauxqs): events published on the
 * lifecycle topic reach each client's receiver (node:http on 127.0.0.1) signed, in order per
 * container, retried, dead-lettered; a receiver that never answers delays no other client's.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  loadConfig,
  makeEvent,
  type BerthEvent,
  type EventType,
  type Logger,
  type WebhookDelivery,
} from '@berth/domain';
import { DynamoWebhookStore } from '@berth/dynamodb';
import { SnsEventPublisher, createSnsClient, localLifecycleTopicArn } from '@berth/messaging';
import { HttpWebhookSender, createMetrics } from '@berth/platform';
import { verifyWebhook, WebhookSignatureError } from '@berth/webhook-signature';
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { startWebhookService, type WebhookService } from '../src/service.ts';

const table = `webhooks-${randomUUID().slice(0, 8)}`;
const dynamodb = new DynamoDBClient({});
const store = new DynamoWebhookStore({ client: dynamodb, table });
const sns = createSnsClient();
let publisher: SnsEventPublisher;

/** Everything the services logged, to check no secret is ever in it. */
let logged = '';
const log: Logger = {
  info: (fields, message) => (logged += `${JSON.stringify(fields)} ${message}\n`),
  warn: (fields, message) => (logged += `${JSON.stringify(fields)} ${message}\n`),
  error: (fields, message) => (logged += `${JSON.stringify(fields)} ${message}\n`),
};

interface Received {
  body: string;
  event: BerthEvent;
  headers: IncomingMessage['headers'];
}

/** A webhook receiver on 127.0.0.1: `answer` decides each request's fate. */
class Receiver {
  readonly received: Received[] = [];
  readonly sockets = new Set<Socket>();
  server!: Server;
  answer: (request: Received, response: ServerResponse) => void = (_r, response) => {
    response.writeHead(204).end();
  };

  async start(): Promise<string> {
    this.server = createServer((request, response) => {
      let body = '';
      request.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      request.on('end', () => {
        const received = { body, event: JSON.parse(body) as BerthEvent, headers: request.headers };
        this.received.push(received);
        this.answer(received, response);
      });
    });
    this.server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hook`;
  }

  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Polls `condition` until it holds, for at most `timeoutMs`; fails naming `what`. */
async function until(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 60_000,
) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await delay(25);
  }
}

const clientId = () => `c${randomUUID().slice(0, 8)}`;
const secretFor = (client: string) => `whsec-${client}-${randomUUID()}`;
let clock = Date.parse('2026-12-01T10:00:00.000Z');

function containerEvent(containerId: string, type: EventType, n: number): BerthEvent {
  clock += 1000;
  return makeEvent({
    type,
    cause: `${containerId}#1/${n}`,
    occurredAt: new Date(clock).toISOString(),
    containerId,
    payload: { n },
  });
}

async function subscribe(client: string, url: string, events = ['container.*']) {
  const now = new Date().toISOString();
  const secret = secretFor(client);
  await store.putSubscription({
    clientId: client,
    url,
    events,
    secret,
    createdAt: now,
    updatedAt: now,
  });
  return secret;
}

function startService(env: Record<string, string>, onAttempt?: (d: WebhookDelivery) => void) {
  const config = loadConfig({
    ...process.env,
    WEBHOOK_TABLE: table,
    BERTH_WEBHOOK_ALLOW_HTTP: 'true',
    BERTH_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1/32',
    ...env,
  });
  return startWebhookService({
    config,
    log,
    metrics: createMetrics('webhooks', { emf: false }),
    bootstrap: true,
    pollMs: 100,
    // An event taken by the long poll of a service stopped before is received again this soon.
    visibilityTimeoutSeconds: 2,
    ...(onAttempt ? { onAttempt } : {}),
  });
}

beforeAll(async () => {
  publisher = new SnsEventPublisher({
    sns,
    topicArn: await localLifecycleTopicArn(sns, undefined),
  });
});

afterAll(() => {
  dynamodb.destroy();
  sns.destroy();
});

describe('webhook delivery', () => {
  let service: WebhookService;
  const receivers: Receiver[] = [];
  const receiver = async () => {
    const made = new Receiver();
    receivers.push(made);
    return { receiver: made, url: await made.start() };
  };

  beforeAll(async () => {
    service = await startService({
      BERTH_WEBHOOK_RETRY_BASE: '50ms',
      BERTH_WEBHOOK_TIMEOUT: '5m',
      BERTH_WEBHOOK_CONCURRENCY_PER_CLIENT: '2',
    });
  });

  afterAll(async () => {
    await Promise.all(receivers.map((r) => r.stop()));
    await service.stop();
  });

  it('retries a receiver that fails, then delivers; every request verifies with the exported verifier', async () => {
    // Arrange
    const client = clientId();
    const { receiver: hook, url } = await receiver();
    const secret = await subscribe(client, url);
    let failures = 2;
    hook.answer = (_request, response) => {
      if (failures > 0) {
        failures -= 1;
        response.writeHead(500).end('not now');
      } else response.writeHead(200).end('ok');
    };
    const event = containerEvent(`${client}.web.john`, 'container.stopped', 1);

    // Act
    await publisher.publish([event]);
    await until('the third attempt', () => hook.received.length === 3);
    await until('the delivery recorded as delivered', async () => {
      const page = await store.listDeliveries(client, { status: 'delivered', limit: 10 });
      return page.items.length === 1;
    });

    // Assess
    expect(hook.received.map((r) => r.headers['berth-delivery-attempt'])).toEqual(['1', '2', '3']);
    for (const request of hook.received) {
      expect(request.event).toEqual(event);
      expect(request.headers['berth-event-id']).toBe(event.eventId);
      const signedAt = verifyWebhook({
        body: request.body,
        header: request.headers['berth-signature'],
        secret,
      });
      expect(Math.abs(signedAt - Date.now() / 1000)).toBeLessThanOrEqual(300);
      expect(() =>
        verifyWebhook({
          body: request.body,
          header: request.headers['berth-signature'],
          secret: 'x'.repeat(20),
        }),
      ).toThrow(WebhookSignatureError);
    }
    const [delivered] = (await store.listDeliveries(client, { limit: 10 })).items;
    expect(delivered).toMatchObject({ status: 'delivered', attempts: 3, lastStatusCode: 200 });
    expect(logged).not.toContain(secret);
  });

  it('delivers one container in order: later events wait while the first is retried', async () => {
    // Arrange
    const client = clientId();
    const containerId = `${client}.web.ann`;
    const { receiver: hook, url } = await receiver();
    await subscribe(client, url);
    let firstMayPass = false;
    hook.answer = (request, response) => {
      const first = (request.event.payload as { n: number }).n === 0;
      response.writeHead(first && !firstMayPass ? 503 : 200).end();
    };
    const events = [0, 1, 2, 3, 4, 5].map((n) =>
      containerEvent(containerId, n % 2 === 0 ? 'container.running' : 'container.idle', n),
    );

    // Act: the first is queued and failing before the others are published; it succeeds only
    // once every later event is queued behind it.
    await publisher.publish([events[0]!]);
    await until('the first attempt', () => hook.received.length >= 1);
    await publisher.publish(events.slice(1));
    await until('all six queued', async () => {
      const page = await store.listDeliveries(client, { limit: 20 });
      return page.items.length === 6;
    });
    const requestsBeforeRelease = hook.received.length;
    firstMayPass = true;
    await until('every event delivered', async () => {
      const page = await store.listDeliveries(client, { status: 'delivered', limit: 20 });
      return page.items.length === 6;
    });

    // Assess: while the first failed, nothing else of that container was sent; then in order.
    expect(
      hook.received
        .slice(0, requestsBeforeRelease)
        .every((r) => r.event.eventId === events[0]!.eventId),
    ).toBe(true);
    const deliveredOrder = hook.received
      .map((r) => r.event.eventId)
      .filter((id, index, all) => all.lastIndexOf(id) === index);
    expect(deliveredOrder).toEqual(events.map((e) => e.eventId));
  });

  it("a receiver that never answers does not delay another client's deliveries", async () => {
    // Arrange: the silent client holds both its lanes (concurrency 2) with a 5 min timeout.
    const silent = clientId();
    const busy = clientId();
    const { receiver: silentHook, url: silentUrl } = await receiver();
    const { receiver: busyHook, url: busyUrl } = await receiver();
    silentHook.answer = () => undefined; // never answers
    await subscribe(silent, silentUrl);
    await subscribe(busy, busyUrl);
    const silentEvents = [1, 2, 3, 4].map((n) =>
      containerEvent(`${silent}.p.u${n}`, 'container.created', n),
    );
    const busyEvents = [1, 2, 3, 4, 5].map((n) =>
      containerEvent(`${busy}.p.u${n % 2}`, 'container.created', n),
    );

    // Act
    await publisher.publish(silentEvents);
    await until('the silent client using both its lanes', () => silentHook.received.length === 2);
    await publisher.publish(busyEvents);
    await until("every one of the other client's deliveries", async () => {
      const page = await store.listDeliveries(busy, { status: 'delivered', limit: 20 });
      return page.items.length === busyEvents.length;
    });

    // Assess: the silent client's two requests are still unanswered, its others not sent.
    expect(busyHook.received).toHaveLength(busyEvents.length);
    expect(silentHook.received).toHaveLength(2);
    const silentPage = await store.listDeliveries(silent, { limit: 20 });
    expect(silentPage.items.map((d) => d.status)).toEqual([
      'pending',
      'pending',
      'pending',
      'pending',
    ]);
    expect(silentPage.items.every((d) => d.attempts === 0)).toBe(true);
  });

  it('refuses at delivery an address the PUT never saw (a name now resolving to a private one)', async () => {
    // Arrange: the sender on its own, with a resolver that answers as a rebinding DNS would.
    const sender = new HttpWebhookSender({
      network: { allowHttp: true, allowedNetworks: ['127.0.0.1/32'] },
      resolveHost: (host) =>
        Promise.resolve(host === 'rebind.test' ? ['93.184.215.14', '10.0.0.8'] : ['127.0.0.1']),
    });
    const { receiver: hook, url } = await receiver();
    const port = new URL(url).port;

    // Act
    const refused = await sender.post({
      url: 'https://rebind.test/hook',
      body: '{}',
      headers: {},
      timeoutMs: 1000,
    });
    const pinned = await sender.post({
      url: `http://allowed.test:${port}/hook`,
      body: '{"a":1}',
      headers: { 'content-type': 'application/json' },
      timeoutMs: 5000,
    });
    const metadata = await sender.post({
      url: 'http://169.254.169.254/latest/meta-data/',
      body: '{}',
      headers: {},
      timeoutMs: 1000,
    });

    // Assess: the refused ones never connected; the allowed name reached the checked address.
    expect(refused).toMatchObject({
      ok: false,
      permanent: true,
      error: expect.stringMatching(/10\.0\.0\.8/),
    });
    expect(metadata).toMatchObject({
      ok: false,
      permanent: true,
      error: expect.stringMatching(/metadata/),
    });
    expect(pinned).toEqual({ ok: true, statusCode: 204 });
    expect(hook.received.map((r) => r.body)).toEqual(['{"a":1}']);
  });
  it('ends an attempt at its timeout, and never follows a redirect', async () => {
    // Arrange
    const sender = new HttpWebhookSender({
      network: { allowHttp: true, allowedNetworks: ['127.0.0.1/32'] },
    });
    const { receiver: silentHook, url: silentUrl } = await receiver();
    silentHook.answer = () => undefined;
    const { receiver: redirecting, url: redirectUrl } = await receiver();
    redirecting.answer = (_request, response) =>
      response.writeHead(307, { location: 'http://169.254.169.254/latest/meta-data/' }).end();

    // Act
    const timedOut = await sender.post({ url: silentUrl, body: '{}', headers: {}, timeoutMs: 300 });
    const redirected = await sender.post({
      url: redirectUrl,
      body: '{}',
      headers: {},
      timeoutMs: 5000,
    });

    // Assess
    expect(timedOut).toEqual({
      ok: false,
      statusCode: null,
      error: 'timeout after 300 ms',
      permanent: false,
    });
    expect(redirected).toEqual({ ok: false, statusCode: 307, error: 'HTTP 307', permanent: false });
    expect(redirecting.received).toHaveLength(1);
  });
});

describe('webhook dead letters', () => {
  it('dead-letters a delivery still failing at the end of the retry window, and one whose address is refused', async () => {
    // Arrange
    const service = await startService({
      BERTH_WEBHOOK_RETRY_BASE: '20ms',
      BERTH_WEBHOOK_RETRY_WINDOW: '400ms',
    });
    const hook = new Receiver();
    const url = await hook.start();
    hook.answer = (_request, response) => response.writeHead(500).end();
    const failing = clientId();
    const refusedClient = clientId();
    await subscribe(failing, url);
    // Stored past the PUT's checks: 127.0.0.2 is not in the allowed 127.0.0.1/32.
    await subscribe(refusedClient, 'http://127.0.0.2:9/hook');

    try {
      // Act
      await publisher.publish([
        containerEvent(`${failing}.p.u`, 'container.failed', 1),
        containerEvent(`${refusedClient}.p.u`, 'container.failed', 1),
      ]);
      await until('both dead-lettered', async () => {
        const [a, b] = await Promise.all([
          store.listDeliveries(failing, { status: 'dead', limit: 5 }),
          store.listDeliveries(refusedClient, { status: 'dead', limit: 5 }),
        ]);
        return a.items.length === 1 && b.items.length === 1;
      });

      // Assess
      const [dead] = (await store.listDeliveries(failing, { status: 'dead', limit: 5 })).items;
      expect(dead).toMatchObject({
        lastStatusCode: 500,
        lastError: 'HTTP 500',
        nextAttemptAt: null,
      });
      expect(dead!.attempts).toBeGreaterThanOrEqual(2);
      expect(hook.received).toHaveLength(dead!.attempts);
      const [refused] = (await store.listDeliveries(refusedClient, { status: 'dead', limit: 5 }))
        .items;
      expect(refused).toMatchObject({ attempts: 1, lastStatusCode: null });
      expect(refused!.lastError).toMatch(/^refused: 127\.0\.0\.2 is a loopback address/);
      expect((await store.listDeliveries(failing, { status: 'pending', limit: 5 })).items).toEqual(
        [],
      );
    } finally {
      await hook.stop();
      await service.stop();
    }
  });
});
