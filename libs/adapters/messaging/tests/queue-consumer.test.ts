import { setTimeout as delay } from 'node:timers/promises';
import { SendMessageBatchCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { UnavailableError } from '@berth/domain';
import {
  CommandSender,
  createSqsClient,
  startQueueConsumer,
  type QueueConsumer,
  type QueueMessage,
} from '../src/index.ts';
import { createQueue, deferred, eventually, queueCounts, uniqueName } from './support.ts';

describe('startQueueConsumer', () => {
  let sqs: SQSClient;
  let queueUrl: string;
  const consumers: QueueConsumer[] = [];

  const start = (
    options: Omit<Parameters<typeof startQueueConsumer>[0], 'sqs' | 'queueUrl'>,
  ): QueueConsumer => {
    const consumer = startQueueConsumer({ sqs, queueUrl, waitTimeSeconds: 1, ...options });
    consumers.push(consumer);
    return consumer;
  };

  const sendMany = async (bodies: string[]): Promise<void> => {
    for (let i = 0; i < bodies.length; i += 10) {
      await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: bodies.slice(i, i + 10).map((body, n) => ({ Id: String(n), MessageBody: body })),
        }),
      );
    }
  };

  beforeAll(() => {
    sqs = createSqsClient();
  });

  beforeEach(async () => {
    queueUrl = await createQueue(sqs, uniqueName('berth-consumer-test'));
  });

  afterEach(async () => {
    await Promise.all(consumers.splice(0).map((consumer) => consumer.stop()));
  });

  afterAll(() => {
    sqs.destroy();
  });

  it.each([
    { batchSize: 4, concurrency: 6 },
    { batchSize: 10, concurrency: 3 },
  ])(
    'handles every message once with at most $concurrency handlers at a time (batch $batchSize)',
    async (limits) => {
      const bodies = Array.from({ length: 24 }, (_, n) => `message-${n}`);
      const handled: string[] = [];
      let running = 0;
      let mostRunning = 0;
      await sendMany(bodies);

      start({
        ...limits,
        handle: async (message) => {
          running += 1;
          mostRunning = Math.max(mostRunning, running);
          // Simulated work, long enough for the handlers to overlap.
          await delay(100);
          running -= 1;
          handled.push(message.body);
          return 'done';
        },
      });

      await eventually('every message handled', () => handled.length >= bodies.length, 20_000);
      expect(handled.sort()).toEqual([...bodies].sort());
      expect(mostRunning).toBe(limits.concurrency);
      await eventually('the queue empty', async () => {
        const counts = await queueCounts(sqs, queueUrl);
        return counts.visible + counts.notVisible === 0;
      });
    },
  );

  it('deletes the messages of a received batch in one DeleteMessageBatch, never one by one', async () => {
    // Its own client, so the count sees only this consumer's calls.
    const counted = createSqsClient();
    const commands: string[] = [];
    counted.middlewareStack.add(
      (next, context) => (args) => {
        commands.push(context.commandName ?? 'unknown');
        return next(args);
      },
      { step: 'initialize', name: 'countCommands' },
    );
    const bodies = Array.from({ length: 10 }, (_, n) => `batched-${n}`);
    await sendMany(bodies);
    const handled: string[] = [];
    const consumer = startQueueConsumer({
      sqs: counted,
      queueUrl,
      waitTimeSeconds: 1,
      batchSize: 10,
      concurrency: 10,
      handle: (message) => {
        handled.push(message.body);
        // One message stays for later: it must not be deleted with the others.
        return Promise.resolve(message.body === 'batched-3' ? 'retry' : 'done');
      },
    });
    try {
      await eventually('every message handled', () => handled.length >= bodies.length, 20_000);
      await eventually('nine messages deleted', async () => {
        const counts = await queueCounts(sqs, queueUrl);
        return counts.visible + counts.notVisible === 1;
      });
    } finally {
      await consumer.stop();
      counted.destroy();
    }
    const deletes = commands.filter((name) => name.startsWith('DeleteMessage'));
    expect(deletes.length).toBeGreaterThan(0);
    expect(deletes.every((name) => name === 'DeleteMessageBatchCommand')).toBe(true);
    // fauxqs hands a full queue out in batches: fewer deletes than messages.
    expect(deletes.length).toBeLessThan(9);
  });

  it('hands the handler the SenderId SQS gives the message (fauxqs: one fixed account id)', async () => {
    const received = deferred();
    let seen: QueueMessage | undefined;
    start({
      batchSize: 1,
      handle: (message) => {
        seen = message;
        received.resolve();
        return Promise.resolve('done');
      },
    });

    await new CommandSender({ sqs, queueUrl }).send({ type: 'thread.ready' });
    await received.promise;

    expect(seen?.senderId).toBe('000000000000');
  });

  it("leaves a message answered 'retry' (or failing) on the queue, and it comes back", async () => {
    const deliveries: QueueMessage[] = [];
    const errors: { error: Error; message: QueueMessage | undefined }[] = [];
    const thirdDelivery = deferred();
    start({
      batchSize: 1,
      visibilityTimeoutSeconds: 1,
      onError: (error, message) => errors.push({ error, message }),
      handle: (message) => {
        deliveries.push(message);
        if (message.receiveCount === 1) return Promise.resolve('retry');
        if (message.receiveCount === 2) return Promise.reject(new Error('store is down'));
        thirdDelivery.resolve();
        return Promise.resolve('done');
      },
    });

    const { messageId } = await new CommandSender({ sqs, queueUrl }).send('{"not": "a command"');
    await thirdDelivery.promise;

    expect(
      deliveries.map((message) => [message.messageId, message.receiveCount, message.body]),
    ).toEqual([
      [messageId, 1, '{"not": "a command"'],
      [messageId, 2, '{"not": "a command"'],
      [messageId, 3, '{"not": "a command"'],
    ]);
    expect(errors).toEqual([{ error: new Error('store is down'), message: deliveries[1] }]);
    await eventually('the message deleted', async () => {
      const counts = await queueCounts(sqs, queueUrl);
      return counts.visible + counts.notVisible === 0;
    });
  });

  it('stop() waits for a slow handler in flight, whose message is then deleted, not redelivered', async () => {
    const started = deferred();
    const release = deferred();
    const order: string[] = [];
    let calls = 0;
    const consumer = start({
      batchSize: 1,
      visibilityTimeoutSeconds: 2,
      heartbeatIntervalSeconds: 1,
      handle: async () => {
        calls += 1;
        started.resolve();
        await release.promise;
        order.push('handler finished');
        return 'done';
      },
    });
    await new CommandSender({ sqs, queueUrl }).sendCommand(
      'session.touch',
      { sessionId: 's-slow' },
      'c-slow',
    );
    await started.promise;

    const stopping = consumer.stop().then(() => order.push('stop resolved'));
    // Long enough for a stop that does not wait to resolve, and for the message's first
    // visibility timeout to pass (the heartbeat must keep it hidden).
    await delay(2500);
    expect(order).toEqual([]);
    release.resolve();
    await stopping;

    expect(order).toEqual(['handler finished', 'stop resolved']);
    expect(calls).toBe(1);
    expect(await queueCounts(sqs, queueUrl)).toEqual({ visible: 0, notVisible: 0, delayed: 0 });
  });

  it('sends commands as {type, commandId, payload}', async () => {
    const bodies: unknown[] = [];
    start({
      handle: (message) => {
        bodies.push(JSON.parse(message.body));
        return Promise.resolve('done');
      },
    });

    const sent = await new CommandSender({ sqs, queueUrl }).sendCommand('session.release', {
      sessionId: 's-1',
    });

    await eventually('the command received', () => bodies.length > 0);
    expect(sent.commandId).toMatch(/^[0-9a-f-]{36}$/);
    expect(bodies).toEqual([
      { type: 'session.release', commandId: sent.commandId, payload: { sessionId: 's-1' } },
    ]);
  });

  it('reports a missing queue through onError and still stops promptly', async () => {
    const errors: Error[] = [];
    const missingUrl = queueUrl.replace(/[^/]+$/, 'berth-no-such-queue');
    const consumer = startQueueConsumer({
      sqs,
      queueUrl: missingUrl,
      onError: (error) => errors.push(error),
      handle: () => Promise.resolve('done'),
    });
    consumers.push(consumer);

    await eventually('the receive error reported', () => errors.length > 0);
    expect(errors[0]).toBeInstanceOf(UnavailableError);
    expect(errors[0]!.message).toBe(
      'receiving from queue berth-no-such-queue failed: the queue does not exist',
    );
    const before = Date.now();
    await consumer.stop();
    expect(Date.now() - before).toBeLessThan(2000);
  });

  it('refuses bad options before starting', () => {
    expect(() =>
      startQueueConsumer({ sqs, queueUrl, batchSize: 20, handle: () => Promise.resolve('done') }),
    ).toThrow('batchSize must be a whole number from 1 to 10; got 20');
  });
});
