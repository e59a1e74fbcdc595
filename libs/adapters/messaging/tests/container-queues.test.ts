import {
  ListQueueTagsCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { InvalidArgumentError, UnavailableError } from '@berth/domain';
import { SqsContainerQueues, containerQueueNames, createSqsClient } from '../src/index.ts';

describe('SqsContainerQueues', () => {
  let sqs: SQSClient;
  let queues: SqsContainerQueues;
  // A fresh containerId per test: queue names derive from it.
  let containerId: string;
  let serial = 0;

  beforeAll(() => {
    sqs = createSqsClient();
    queues = new SqsContainerQueues({ sqs });
  });

  beforeEach(() => {
    serial += 1;
    containerId = `acme-${process.pid}.website-${serial}.john-${Date.now().toString(36)}`;
  });

  afterAll(() => {
    sqs.destroy();
  });

  it('creates a tagged input and output queue per generation, the same ones when asked again', async () => {
    const urls = await queues.create(containerId, 3);
    const again = await queues.create(containerId, 3);
    const next = await queues.create(containerId, 4);

    const names = containerQueueNames(containerId, 3);
    expect(again).toEqual(urls);
    expect(urls.inputQueueUrl).toMatch(new RegExp(`/${names.input}$`));
    expect(urls.outputQueueUrl).toMatch(new RegExp(`/${names.output}$`));
    expect(next.inputQueueUrl).not.toBe(urls.inputQueueUrl);
    for (const queueUrl of [urls.inputQueueUrl, urls.outputQueueUrl]) {
      const { Tags } = await sqs.send(new ListQueueTagsCommand({ QueueUrl: queueUrl }));
      expect(Tags).toEqual({ ContainerId: containerId, Generation: '3', ManagedBy: 'berth' });
      expect(await queues.exists(queueUrl)).toBe(true);
    }
    await queues.delete(next);
  });

  it('counts waiting and in-flight messages on an input queue', async () => {
    const urls = await queues.create(containerId, 1);
    expect(await queues.messagesInFlight(urls.inputQueueUrl)).toBe(0);

    await queues.send(urls.inputQueueUrl, { sessionId: 's1', threadId: 't1', text: 'one' });
    await sqs.send(
      new SendMessageCommand({ QueueUrl: urls.inputQueueUrl, MessageBody: '{"text":"two"}' }),
    );
    await sqs.send(
      new SendMessageCommand({
        QueueUrl: urls.inputQueueUrl,
        MessageBody: '{"text":"later"}',
        DelaySeconds: 60,
      }),
    );
    expect(await queues.messagesInFlight(urls.inputQueueUrl)).toBe(3);

    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: urls.inputQueueUrl,
        MaxNumberOfMessages: 1,
        VisibilityTimeout: 60,
      }),
    );
    expect(Messages).toHaveLength(1);
    // Being handled still counts: the container must not stop under it.
    expect(await queues.messagesInFlight(urls.inputQueueUrl)).toBe(3);
    expect(await queues.messagesInFlight(urls.outputQueueUrl)).toBe(0);
    await queues.delete(urls);
  });

  it('deletes both queues, ignores queues already gone and then reports them missing', async () => {
    const urls = await queues.create(containerId, 2);

    await queues.delete(urls);
    await queues.delete(urls);

    expect(await queues.exists(urls.inputQueueUrl)).toBe(false);
    expect(await queues.exists(urls.outputQueueUrl)).toBe(false);
    expect(await queues.messagesInFlight(urls.inputQueueUrl)).toBe(0);
    const failure = queues.send(urls.inputQueueUrl, { text: 'x' });
    await expect(failure).rejects.toBeInstanceOf(UnavailableError);
    await expect(failure).rejects.toThrow(
      `sending to queue ${containerQueueNames(containerId, 2).input} failed: the queue does not exist`,
    );
  });

  it('refuses a malformed containerId before touching SQS', async () => {
    await expect(queues.create('acme-website-john', 1)).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
    await expect(queues.create(containerId, 1.5)).rejects.toThrow(
      'generation must be a whole number of at least 1',
    );
  });

  it('reports an unreachable SQS as unavailable, not as a missing queue', async () => {
    const unreachable = createSqsClient({ endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
    try {
      const offline = new SqsContainerQueues({ sqs: unreachable });
      await expect(
        offline.exists('http://127.0.0.1:9/000000000000/berth-x-in'),
      ).rejects.toBeInstanceOf(UnavailableError);
      await expect(
        offline.messagesInFlight('http://127.0.0.1:9/000000000000/berth-x-in'),
      ).rejects.toThrow(/^counting messages on queue berth-x-in failed: /);
    } finally {
      unreachable.destroy();
    }
  });
});
