import {
  CreateTopicCommand,
  DeleteTopicCommand,
  ListSubscriptionsByTopicCommand,
  type SNSClient,
} from '@aws-sdk/client-sns';
import { GetQueueUrlCommand, ListQueueTagsCommand, type SQSClient } from '@aws-sdk/client-sqs';
import {
  EventSubscription,
  SUBSCRIPTION_TAGS,
  SnsEventPublisher,
  createSnsClient,
  createSqsClient,
  deleteAbandonedSubscriptions,
  renewHeartbeat,
} from '../src/index.ts';
import { sampleEvent, uniqueName } from './support.ts';

describe('subscription queues of processes that are gone', () => {
  let sqs: SQSClient;
  let sns: SNSClient;
  let topicArn: string;
  const open: EventSubscription[] = [];

  beforeAll(async () => {
    sqs = createSqsClient();
    sns = createSnsClient();
    topicArn = (await sns.send(new CreateTopicCommand({ Name: uniqueName('berth-test-owned') })))
      .TopicArn!;
  });

  afterAll(async () => {
    await Promise.all(open.map((subscription) => subscription.close()));
    await sns.send(new DeleteTopicCommand({ TopicArn: topicArn }));
    sqs.destroy();
    sns.destroy();
  });

  const subscribe = async (prefix: string, owner: string, heartbeat: Date) => {
    const subscription = await EventSubscription.open({
      sqs,
      sns,
      topicArn,
      name: `${prefix}${owner}`,
      tags: {
        [SUBSCRIPTION_TAGS.owner]: owner,
        [SUBSCRIPTION_TAGS.heartbeat]: heartbeat.toISOString(),
      },
    });
    open.push(subscription);
    return subscription;
  };

  const subscribedQueues = async (): Promise<string[]> => {
    const { Subscriptions = [] } = await sns.send(
      new ListSubscriptionsByTopicCommand({ TopicArn: topicArn }),
    );
    return Subscriptions.map((subscription) => subscription.Endpoint ?? '');
  };

  it('tags a subscription queue with its owner, its subscription and a heartbeat its owner renews', async () => {
    // Prepare
    const prefix = `${uniqueName('owned')}-`;
    const subscription = await subscribe(prefix, 'host-1', new Date('2026-01-01T00:00:00Z'));

    // Act
    await renewHeartbeat(sqs, subscription.queueUrl, new Date('2026-01-01T00:05:00Z'));

    // Assess
    const { Tags } = await sqs.send(new ListQueueTagsCommand({ QueueUrl: subscription.queueUrl }));
    expect(Tags).toMatchObject({
      ManagedBy: 'berth',
      [SUBSCRIPTION_TAGS.owner]: 'host-1',
      [SUBSCRIPTION_TAGS.subscription]: subscription.subscriptionArn,
      [SUBSCRIPTION_TAGS.heartbeat]: '2026-01-01T00:05:00.000Z',
    });
  });

  it('unsubscribes and deletes the queues whose heartbeat stopped, and keeps the live ones', async () => {
    // Prepare
    const now = new Date();
    const prefix = `${uniqueName('owned')}-`;
    const crashed = await subscribe(prefix, 'crashed-7', new Date(now.getTime() - 11 * 60_000));
    const live = await subscribe(prefix, 'live-8', new Date(now.getTime() - 30_000));
    const elsewhere = await subscribe(
      `${uniqueName('other')}-`,
      'x-9',
      new Date(now.getTime() - 60 * 60_000),
    );

    // Act
    const deleted = await deleteAbandonedSubscriptions({ sqs, sns, prefix, now });

    // Assess
    expect(deleted).toEqual([crashed.queueName]);
    await expect(
      sqs.send(new GetQueueUrlCommand({ QueueName: crashed.queueName })),
    ).rejects.toThrow();
    const endpoints = await subscribedQueues();
    expect(endpoints.some((endpoint) => endpoint.endsWith(`:${crashed.queueName}`))).toBe(false);
    expect(endpoints.some((endpoint) => endpoint.endsWith(`:${live.queueName}`))).toBe(true);
    expect(endpoints.some((endpoint) => endpoint.endsWith(`:${elsewhere.queueName}`))).toBe(true);
    const event = sampleEvent('container.stopped', 1);
    await new SnsEventPublisher({ sns, topicArn }).publish([event]);
    await expect(live.waitFor({ eventId: event.eventId }, 10_000)).resolves.toMatchObject({
      eventId: event.eventId,
    });
  });
});
