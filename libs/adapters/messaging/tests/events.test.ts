import { CreateTopicCommand, DeleteTopicCommand, type SNSClient } from '@aws-sdk/client-sns';
import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { UnavailableError, type BerthEvent } from '@berth/domain';
import {
  EventSubscription,
  EventTimeoutError,
  SnsEventPublisher,
  SqsContainerQueues,
  createSnsClient,
  createSqsClient,
} from '../src/index.ts';
import { sampleEvent, uniqueName } from './support.ts';

describe('SnsEventPublisher and EventSubscription', () => {
  let sqs: SQSClient;
  let sns: SNSClient;
  let topicArn: string;
  let publisher: SnsEventPublisher;
  const subscriptions: EventSubscription[] = [];

  const subscribe = async (): Promise<EventSubscription> => {
    const subscription = await EventSubscription.open({ sqs, sns, topicArn });
    subscriptions.push(subscription);
    return subscription;
  };

  beforeAll(async () => {
    sqs = createSqsClient();
    sns = createSnsClient();
    // A topic of this file's own, so other test files' events never show up here.
    topicArn = (await sns.send(new CreateTopicCommand({ Name: uniqueName('berth-test-events') })))
      .TopicArn!;
    publisher = new SnsEventPublisher({ sns, topicArn });
  });

  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((subscription) => subscription.close()));
  });

  afterAll(async () => {
    await sns.send(new DeleteTopicCommand({ TopicArn: topicArn }));
    sqs.destroy();
    sns.destroy();
  });

  it('delivers every published event exactly as it was, across batches of ten', async () => {
    const subscription = await subscribe();
    const events = Array.from({ length: 23 }, (_, n) =>
      sampleEvent(n % 2 ? 'container.running' : 'container.created', n),
    );

    await publisher.publish(events);

    const received: BerthEvent[] = [];
    while (received.length < events.length) {
      const event = await subscription.next(5000);
      if (event === undefined) break;
      received.push(event);
    }
    const byId = (a: BerthEvent, b: BerthEvent): number => a.eventId.localeCompare(b.eventId);
    expect(received.sort(byId)).toEqual([...events].sort(byId));
    expect(await subscription.next(500)).toBeUndefined();
    expect(subscription.ignoredMessages).toBe(0);
  });

  it('sends each event raw, with its type as a message attribute', async () => {
    const subscription = await subscribe();
    const event = sampleEvent('session.assigned', 1);

    await publisher.publish([event]);

    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: subscription.queueUrl,
        WaitTimeSeconds: 5,
        MessageAttributeNames: ['All'],
      }),
    );
    expect(Messages).toHaveLength(1);
    expect(JSON.parse(Messages[0]!.Body!)).toEqual(event);
    expect(Messages[0]!.MessageAttributes?.type).toEqual({
      DataType: 'String',
      StringValue: 'session.assigned',
    });
  });

  it('waitFor takes the first match and keeps the other events for later', async () => {
    const subscription = await subscribe();
    const created = sampleEvent('container.created', 1, 'acme.web.anna');
    const running = sampleEvent('container.running', 2, 'acme.web.anna');
    const other = sampleEvent('container.running', 3, 'acme.web.bob');

    await publisher.publish([created, running, other]);

    await expect(
      subscription.waitFor({ type: 'container.running', containerId: 'acme.web.anna' }, 5000),
    ).resolves.toEqual(running);
    await expect(
      subscription.waitFor((event) => event.containerId === 'acme.web.bob', 5000),
    ).resolves.toEqual(other);
    await expect(subscription.next(5000)).resolves.toEqual(created);
  });

  it('waitFor rejects naming what it waited for and what came instead', async () => {
    const subscription = await subscribe();
    await publisher.publish([sampleEvent('container.created', 1, 'acme.web.carl')]);

    const failure = subscription.waitFor({ type: 'session.rejected', sessionId: 's-1' }, 1500);

    await expect(failure).rejects.toBeInstanceOf(EventTimeoutError);
    await expect(failure).rejects.toThrow(
      'no event matching {"type":"session.rejected","sessionId":"s-1"} within 1500 ms (other events: container.created acme.web.carl)',
    );
  });

  it('iterates over events as they come', async () => {
    const subscription = await subscribe();
    const events = [sampleEvent('container.idle', 1), sampleEvent('container.idle', 2)];
    await publisher.publish(events);

    const seen: string[] = [];
    for await (const event of subscription) {
      seen.push(event.eventId);
      if (seen.length === events.length) break;
    }
    expect(seen.sort()).toEqual(events.map((event) => event.eventId).sort());
  });

  it('close unsubscribes and deletes its queue', async () => {
    const subscription = await EventSubscription.open({
      sqs,
      sns,
      topicArn,
      name: uniqueName('berth-events-named'),
    });
    const queues = new SqsContainerQueues({ sqs });
    expect(await queues.exists(subscription.queueUrl)).toBe(true);
    const policy = (
      await sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: subscription.queueUrl,
          AttributeNames: ['Policy'],
        }),
      )
    ).Attributes?.Policy;
    expect(JSON.parse(policy ?? '{}')).toMatchObject({
      Statement: [
        { Action: 'sqs:SendMessage', Condition: { ArnEquals: { 'aws:SourceArn': topicArn } } },
      ],
    });

    await subscription.close();
    await subscription.close();

    expect(await queues.exists(subscription.queueUrl)).toBe(false);
    await expect(subscription.next(100)).resolves.toBeUndefined();
    // Publishing still works with the subscription gone.
    await expect(publisher.publish([sampleEvent('container.stopped', 1)])).resolves.toBeUndefined();
  });

  it('refuses a queue name SQS would refuse', async () => {
    await expect(EventSubscription.open({ sqs, sns, topicArn, name: 'has.dots' })).rejects.toThrow(
      'name must be 1-80 characters of letters, digits, "-" and "_"; got "has.dots"',
    );
  });

  it('ping answers for the topic and fails with UnavailableError for a missing one', async () => {
    await expect(publisher.ping()).resolves.toBeUndefined();
    const missingArn = topicArn.replace(/[^:]+$/, 'berth-no-such-topic');
    const missing = new SnsEventPublisher({ sns, topicArn: missingArn });

    await expect(missing.ping()).rejects.toBeInstanceOf(UnavailableError);
    await expect(missing.ping()).rejects.toThrow(
      'reaching topic berth-no-such-topic failed: the topic does not exist',
    );
    await expect(missing.publish([sampleEvent('container.created', 1)])).rejects.toThrow(
      'publishing 1 events to topic berth-no-such-topic failed: the topic does not exist',
    );
    await expect(missing.publish([])).resolves.toBeUndefined();
  });

  it('turns network failure into UnavailableError', async () => {
    const unreachable = createSnsClient({ endpoint: 'http://127.0.0.1:9', maxAttempts: 1 });
    try {
      const failure = new SnsEventPublisher({ sns: unreachable, topicArn }).publish([
        sampleEvent('container.created', 1),
      ]);
      await expect(failure).rejects.toBeInstanceOf(UnavailableError);
      await expect(failure).rejects.toThrow(
        /^publishing 1 events to topic berth-test-events-\w+ failed: /,
      );
    } finally {
      unreachable.destroy();
    }
  });
});
