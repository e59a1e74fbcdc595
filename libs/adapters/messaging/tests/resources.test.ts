import {
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  PurgeQueueCommand,
  ReceiveMessageCommand,
  SetQueueAttributesCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { PublishCommand, type SNSClient } from '@aws-sdk/client-sns';
import { UnavailableError } from '@berth/domain';
import {
  CommandSender,
  MAX_RECEIVE_COUNT,
  QUEUE_NAMES,
  TOPIC_NAME,
  createSnsClient,
  createSqsClient,
  ensureMessaging,
  localLifecycleTopicArn,
  resolveMessaging,
  startQueueConsumer,
  type QueueConsumer,
} from '../src/index.ts';
import { PRIVATE_REGIONS, deferred, eventually, queueCounts } from './support.ts';

describe('ensureMessaging / resolveMessaging', () => {
  let sqs: SQSClient;
  let sns: SNSClient;

  beforeAll(() => {
    sqs = createSqsClient({ region: PRIVATE_REGIONS.resources });
    sns = createSnsClient({ region: PRIVATE_REGIONS.resources });
  });

  afterAll(() => {
    sqs.destroy();
    sns.destroy();
  });

  const attributes = async (queueUrl: string): Promise<Record<string, string>> =>
    (await sqs.send(new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['All'] })))
      .Attributes ?? {};

  it('creates the queues, dead-letter queues and topic, and gives the same resources again', async () => {
    const first = await ensureMessaging({ sqs, sns });
    const second = await ensureMessaging({ sqs, sns });

    expect(second).toEqual(first);
    expect(first.lifecycleCommandsUrl).toMatch(new RegExp(`/${QUEUE_NAMES.lifecycleCommands}$`));
    expect(first.lifecycleCommandsDlqUrl).toMatch(
      new RegExp(`/${QUEUE_NAMES.lifecycleCommandsDlq}$`),
    );
    expect(first.agentReportsUrl).toMatch(new RegExp(`/${QUEUE_NAMES.agentReports}$`));
    expect(first.agentReportsDlqUrl).toMatch(new RegExp(`/${QUEUE_NAMES.agentReportsDlq}$`));
    expect(first.taskEventsUrl).toMatch(new RegExp(`/${QUEUE_NAMES.taskEvents}$`));
    expect(first.taskEventsDlqUrl).toMatch(new RegExp(`/${QUEUE_NAMES.taskEventsDlq}$`));
    expect(first.historyEventsUrl).toMatch(new RegExp(`/${QUEUE_NAMES.historyEvents}$`));
    expect(first.historyEventsDlqUrl).toMatch(new RegExp(`/${QUEUE_NAMES.historyEventsDlq}$`));
    expect(first.topicArn).toMatch(
      new RegExp(`^arn:aws:sns:${PRIVATE_REGIONS.resources}:\\d+:${TOPIC_NAME}$`),
    );
    await expect(resolveMessaging({ sqs, sns, topicArn: first.topicArn })).resolves.toEqual(first);

    for (const [queueUrl, dlqUrl] of [
      [first.lifecycleCommandsUrl, first.lifecycleCommandsDlqUrl],
      [first.agentReportsUrl, first.agentReportsDlqUrl],
      [first.taskEventsUrl, first.taskEventsDlqUrl],
      [first.historyEventsUrl, first.historyEventsDlqUrl],
    ] as const) {
      const queue = await attributes(queueUrl);
      const dlq = await attributes(dlqUrl);
      expect(queue.VisibilityTimeout).toBe('30');
      expect(JSON.parse(queue.RedrivePolicy ?? '{}')).toEqual({
        deadLetterTargetArn: dlq.QueueArn,
        maxReceiveCount: MAX_RECEIVE_COUNT,
      });
    }
  });

  it('subscribes the history queue to the topic once, raw: a published event arrives as it is', async () => {
    // Prepare: set up twice, as several services do at once on the local stack.
    await ensureMessaging({ sqs, sns });
    const { topicArn, historyEventsUrl } = await ensureMessaging({ sqs, sns });
    await sqs.send(new PurgeQueueCommand({ QueueUrl: historyEventsUrl }));
    const body = JSON.stringify({ type: 'container.created', eventId: `e-${Date.now()}` });

    // Act
    await sns.send(new PublishCommand({ TopicArn: topicArn, Message: body }));

    // Assess: one copy (one subscription), the body itself (raw delivery).
    const received: string[] = [];
    for (let attempt = 0; attempt < 3 && received.length < 2; attempt += 1) {
      const { Messages = [] } = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: historyEventsUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 1,
        }),
      );
      received.push(...Messages.map((message) => message.Body ?? ''));
    }
    expect(received).toEqual([body]);
  });

  it('brings a queue whose attributes drifted back in line', async () => {
    const { lifecycleCommandsUrl } = await ensureMessaging({ sqs, sns });
    await sqs.send(
      new SetQueueAttributesCommand({
        QueueUrl: lifecycleCommandsUrl,
        Attributes: { VisibilityTimeout: '5' },
      }),
    );

    const again = await ensureMessaging({ sqs, sns });

    expect(again.lifecycleCommandsUrl).toBe(lifecycleCommandsUrl);
    expect((await attributes(lifecycleCommandsUrl)).VisibilityTimeout).toBe('30');
  });

  it('resolveMessaging names everything that is missing and creates nothing', async () => {
    const emptySqs = createSqsClient({ region: PRIVATE_REGIONS.resourcesMissing });
    const emptySns = createSnsClient({ region: PRIVATE_REGIONS.resourcesMissing });
    const topicArn = `arn:aws:sns:${PRIVATE_REGIONS.resourcesMissing}:000000000000:${TOPIC_NAME}`;
    try {
      const failure = resolveMessaging({ sqs: emptySqs, sns: emptySns, topicArn });
      await expect(failure).rejects.toBeInstanceOf(UnavailableError);
      await expect(failure).rejects.toThrow(
        'messaging is not set up: missing queue berth-agent-reports, queue berth-agent-reports-dlq, ' +
          'queue berth-history-events, queue berth-history-events-dlq, ' +
          'queue berth-lifecycle-commands, queue berth-lifecycle-commands-dlq, ' +
          `queue berth-task-events, queue berth-task-events-dlq, topic ${topicArn}`,
      );
      await expect(resolveMessaging({ sqs: emptySqs, sns: emptySns, topicArn })).rejects.toThrow(
        'missing queue',
      );
    } finally {
      emptySqs.destroy();
      emptySns.destroy();
    }
  });

  it('takes the topic by its ARN and never lists topics (sns:ListTopics is granted only on *)', async () => {
    const { topicArn } = await ensureMessaging({ sqs, sns });
    const sent: string[] = [];
    const spy = createSnsClient({ region: PRIVATE_REGIONS.resources });
    spy.middlewareStack.add(
      (next, context) => (args) => {
        sent.push(context.commandName ?? '');
        return next(args);
      },
      { step: 'initialize', name: 'commandSpy' },
    );
    try {
      await expect(resolveMessaging({ sqs, sns: spy, topicArn })).resolves.toMatchObject({
        topicArn,
      });
      expect(sent).toEqual(['GetTopicAttributesCommand']);
      await expect(localLifecycleTopicArn(spy, topicArn)).resolves.toBe(topicArn);
      await expect(localLifecycleTopicArn(spy, undefined)).resolves.toBe(topicArn);
      expect(sent).toEqual(['GetTopicAttributesCommand', 'CreateTopicCommand']);
    } finally {
      spy.destroy();
    }
  });

  it('names the one queue that is missing', async () => {
    const resources = await ensureMessaging({ sqs, sns });
    await sqs.send(new DeleteQueueCommand({ QueueUrl: resources.taskEventsDlqUrl }));
    try {
      await expect(resolveMessaging({ sqs, sns, topicArn: resources.topicArn })).rejects.toThrow(
        'messaging is not set up: missing queue berth-task-events-dlq',
      );
    } finally {
      await ensureMessaging({ sqs, sns });
    }
  });

  describe('the lifecycle command queue', () => {
    let consumer: QueueConsumer | undefined;

    afterEach(async () => {
      await consumer?.stop();
      consumer = undefined;
    });

    it(`moves a message to its dead-letter queue after ${MAX_RECEIVE_COUNT} receives answered 'retry'`, async () => {
      const resources = await ensureMessaging({ sqs, sns });
      const body = JSON.stringify({
        type: 'session.touch',
        commandId: 'dlq-test',
        payload: { sessionId: 's-dlq' },
      });
      const receiveCounts: number[] = [];
      const fifthReceive = deferred();
      consumer = startQueueConsumer({
        sqs,
        queueUrl: resources.lifecycleCommandsUrl,
        batchSize: 1,
        // A short visibility makes each 'retry' come back within a second.
        visibilityTimeoutSeconds: 1,
        waitTimeSeconds: 1,
        handle: (message) => {
          receiveCounts.push(message.receiveCount);
          if (message.receiveCount === MAX_RECEIVE_COUNT) fifthReceive.resolve();
          return Promise.resolve('retry');
        },
      });

      await new CommandSender({ sqs, queueUrl: resources.lifecycleCommandsUrl }).send(body);
      await fifthReceive.promise;

      const dead = await eventually('the message in the dead-letter queue', async () => {
        const { Messages } = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: resources.lifecycleCommandsDlqUrl,
            WaitTimeSeconds: 1,
            MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          }),
        );
        return Messages?.[0];
      });
      expect(dead.Body).toBe(body);
      expect(receiveCounts).toEqual([1, 2, 3, 4, 5]);
      await consumer.stop();
      expect(receiveCounts).toHaveLength(MAX_RECEIVE_COUNT);
      expect(await queueCounts(sqs, resources.lifecycleCommandsUrl)).toEqual({
        visible: 0,
        notVisible: 0,
        delayed: 0,
      });
    });
  });
});
