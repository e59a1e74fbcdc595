/**
 * The delivery outbox on DynamoDB Local, without HTTP: what survives a worker that dies
 * between two steps, and two workers on one table.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { WebhookDeliveries, type SendOutcome, type WebhookSender } from '@berth/core';
import { makeEvent, systemClock, type BerthEvent, type Logger } from '@berth/domain';
import { DynamoWebhookStore, ensureWebhookTable } from '@berth/dynamodb';
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';

const table = `outbox-${randomUUID().slice(0, 8)}`;
const dynamodb = new DynamoDBClient({});
const store = new DynamoWebhookStore({ client: dynamodb, table });
const silent: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** Every POST of every sender, in the order they were made. */
const sendLog: string[] = [];

/** Records every POST and answers 200. */
class RecordingSender implements WebhookSender {
  readonly sent: string[] = [];
  post(request: { body: string }): Promise<SendOutcome> {
    const eventId = (JSON.parse(request.body) as BerthEvent).eventId;
    this.sent.push(eventId);
    sendLog.push(eventId);
    return Promise.resolve({ ok: true, statusCode: 200 });
  }
}

function worker(sender: WebhookSender): WebhookDeliveries {
  return new WebhookDeliveries({
    store,
    sender,
    clock: systemClock,
    log: silent,
    timeoutMs: 5000,
    retryBaseMs: 10,
    retryWindowMs: 60_000,
    concurrencyPerClient: 4,
  });
}

async function subscribed(): Promise<string> {
  const clientId = `c${randomUUID().slice(0, 8)}`;
  const now = new Date().toISOString();
  await store.putSubscription({
    clientId,
    url: 'https://hooks.example.com/x',
    events: ['*'],
    secret: 'a-secret-of-sixteen+',
    createdAt: now,
    updatedAt: now,
  });
  return clientId;
}

const events = (containerId: string, count: number): BerthEvent[] =>
  Array.from({ length: count }, (_, n) =>
    makeEvent({
      type: 'container.idle',
      cause: `${containerId}#1/${n}`,
      occurredAt: new Date(Date.UTC(2026, 11, 1, 10, 0, n)).toISOString(),
      containerId,
    }),
  );

/** Runs passes (awaiting each one's sends) until `done` holds, at most `rounds` times. */
async function runUntil(workers: WebhookDeliveries[], done: () => boolean, rounds = 200) {
  for (let round = 0; round < rounds && !done(); round += 1) {
    await Promise.all(workers.map((w) => w.pass()));
    await Promise.all(workers.map((w) => w.drain()));
    if (round % 10 === 9) await Promise.all(workers.map((w) => w.sweepParked()));
    await delay(5);
  }
}

beforeAll(async () => {
  await ensureWebhookTable(dynamodb, table);
});

afterAll(() => {
  dynamodb.destroy();
});

describe('webhook outbox', () => {
  it('a parked delivery whose head ended without promoting it (a worker died between the two) is promoted by the sweep', async () => {
    // Arrange: two events of one container; the first is delivered by hand as a worker that
    // died right after would leave it, the second parked behind it.
    const clientId = await subscribed();
    const containerId = `${clientId}.p.u`;
    const sender = new RecordingSender();
    const deliveries = worker(sender);
    const [first, second] = events(containerId, 2);
    await deliveries.accept(first!);
    await deliveries.accept(second!);
    const parkedBehind = (await store.streamHead(containerId))!;
    const pending = await store.listDeliveries(clientId, { status: 'pending', limit: 5 });
    const behind = pending.items.find((d) => d.eventId === second!.eventId)!;
    expect(await store.parkDelivery(behind)).toBe(true);
    const now = new Date().toISOString();
    await store.recordAttempt({
      ...parkedBehind,
      status: 'delivered',
      attempts: 1,
      deliveredAt: now,
      lastAttemptAt: now,
      nextAttemptAt: null,
    });
    const dueBefore = await store.dueDeliveries(new Date(Date.now() + 60_000).toISOString(), 100);

    // Act
    const promoted = await deliveries.sweepParked();
    await runUntil([deliveries], () => sender.sent.length === 1);

    // Assess
    expect(dueBefore.items.filter((d) => d.clientId === clientId)).toEqual([]);
    expect(promoted).toBeGreaterThanOrEqual(1);
    expect(sender.sent).toEqual([second!.eventId]);
  });

  it('two workers on one table send every delivery once, each container in order', async () => {
    // Arrange
    const clientId = await subscribed();
    const senders = [new RecordingSender(), new RecordingSender()];
    const workers = senders.map(worker);
    const streams = [0, 1, 2].map((n) => events(`${clientId}.p.u${n}`, 5));
    // Each event queued once by each worker (both follow the topic's redeliveries).
    for (const event of streams.flat()) {
      await Promise.all(workers.map((w) => w.accept(event)));
    }
    const sentCount = () => senders.reduce((sum, s) => sum + s.sent.length, 0);

    // Act
    await runUntil(workers, () => sentCount() === 15);

    // Assess: fifteen sends, no event twice, and each container's in order across workers.
    const all = senders.flatMap((s) => s.sent);
    expect(new Set(all).size).toBe(15);
    expect(all).toHaveLength(15);
    for (const stream of streams) {
      const ids = stream.map((e) => e.eventId);
      expect(sendLog.filter((id) => ids.includes(id))).toEqual(ids);
    }
  });
});
