/**
 * The shared messaging resources of the contract: the lifecycle command queue, the agent
 * reports queue, the task event queue (each with a dead-letter queue) and the lifecycle event
 * topic.
 */
import {
  CreateTopicCommand,
  GetTopicAttributesCommand,
  SubscribeCommand,
  type SNSClient,
} from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  SetQueueAttributesCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { UnavailableError } from '@berth/domain';
import { hasCode, isMissingQueue, isMissingTopic, toMessagingError } from './errors.ts';

export const QUEUE_NAMES = {
  lifecycleCommands: 'berth-lifecycle-commands',
  lifecycleCommandsDlq: 'berth-lifecycle-commands-dlq',
  agentReports: 'berth-agent-reports',
  agentReportsDlq: 'berth-agent-reports-dlq',
  taskEvents: 'berth-task-events',
  taskEventsDlq: 'berth-task-events-dlq',
  /** The lifecycle history's own subscription to the topic (issue 18), read by the task watcher. */
  historyEvents: 'berth-history-events',
  historyEventsDlq: 'berth-history-events-dlq',
} as const;

export const TOPIC_NAME = 'berth-lifecycle-events';

/** After this many receives a message moves to its dead-letter queue (the contract's 5). */
export const MAX_RECEIVE_COUNT = 5;
export const COMMAND_VISIBILITY_TIMEOUT_SECONDS = 30;
/** The longest SQS keeps a message: time to look at what landed in a dead-letter queue. */
const DLQ_RETENTION_SECONDS = 14 * 24 * 60 * 60;

export interface MessagingResources {
  lifecycleCommandsUrl: string;
  lifecycleCommandsDlqUrl: string;
  /** Where workspace agents report their worktrees and checkpoints (never commands). */
  agentReportsUrl: string;
  agentReportsDlqUrl: string;
  taskEventsUrl: string;
  taskEventsDlqUrl: string;
  /** The topic's events for the lifecycle history (subscribed with raw delivery). */
  historyEventsUrl: string;
  historyEventsDlqUrl: string;
  topicArn: string;
}

export interface MessagingClients {
  sqs: SQSClient;
  sns: SNSClient;
}

/**
 * Creates what is missing and brings existing queues to the expected attributes, so it
 * is safe to run at every start and from several processes at once.
 */
export async function ensureMessaging({ sqs, sns }: MessagingClients): Promise<MessagingResources> {
  const [
    [lifecycleCommandsUrl, lifecycleCommandsDlqUrl],
    [agentReportsUrl, agentReportsDlqUrl],
    [taskEventsUrl, taskEventsDlqUrl],
    [historyEventsUrl, historyEventsDlqUrl],
    topicArn,
  ] = await Promise.all([
    ensureQueueWithDeadLetters(
      sqs,
      QUEUE_NAMES.lifecycleCommands,
      QUEUE_NAMES.lifecycleCommandsDlq,
    ),
    ensureQueueWithDeadLetters(sqs, QUEUE_NAMES.agentReports, QUEUE_NAMES.agentReportsDlq),
    ensureQueueWithDeadLetters(sqs, QUEUE_NAMES.taskEvents, QUEUE_NAMES.taskEventsDlq),
    ensureQueueWithDeadLetters(sqs, QUEUE_NAMES.historyEvents, QUEUE_NAMES.historyEventsDlq),
    createTopic(sns),
  ]);
  await subscribeQueue(sqs, sns, historyEventsUrl, QUEUE_NAMES.historyEvents, topicArn);
  return {
    historyEventsUrl,
    historyEventsDlqUrl,
    lifecycleCommandsUrl,
    lifecycleCommandsDlqUrl,
    agentReportsUrl,
    agentReportsDlqUrl,
    taskEventsUrl,
    taskEventsDlqUrl,
    topicArn,
  };
}

/**
 * Creates (or brings in line) a work queue and its dead-letter queue, with the contract's
 * attributes. Returns `[queueUrl, deadLetterQueueUrl]`.
 */
export async function ensureQueueWithDeadLetters(
  sqs: SQSClient,
  name: string,
  deadLetterName: string,
): Promise<[string, string]> {
  const deadLetterUrl = await ensureQueue(sqs, deadLetterName, deadLetterQueueAttributes());
  const deadLetterArn = await queueArn(sqs, deadLetterUrl, deadLetterName);
  const url = await ensureQueue(sqs, name, workQueueAttributes(deadLetterArn));
  return [url, deadLetterUrl];
}

/**
 * Finds the resources without creating anything, for services that must not set up
 * infrastructure themselves. Throws UnavailableError naming everything that is missing.
 * The topic is known by its ARN (`BERTH_LIFECYCLE_TOPIC_ARN`, which every service's task
 * definition carries), never looked up: finding it by name takes sns:ListTopics, which IAM
 * grants only on every topic of the account.
 */
export async function resolveMessaging({
  sqs,
  sns,
  topicArn,
}: MessagingClients & { topicArn: string }): Promise<MessagingResources> {
  const missing: string[] = [];
  const urlOf = async (name: string): Promise<string> => {
    try {
      const output = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
      if (output.QueueUrl) return output.QueueUrl;
    } catch (error) {
      if (!isMissingQueue(error)) throw toMessagingError(error, `looking up queue ${name}`);
    }
    missing.push(`queue ${name}`);
    return '';
  };
  const topicExists = async (): Promise<void> => {
    try {
      await sns.send(new GetTopicAttributesCommand({ TopicArn: topicArn }));
    } catch (error) {
      if (!isMissingTopic(error)) throw toMessagingError(error, `looking up topic ${topicArn}`);
      missing.push(`topic ${topicArn}`);
    }
  };
  const [
    lifecycleCommandsUrl,
    lifecycleCommandsDlqUrl,
    agentReportsUrl,
    agentReportsDlqUrl,
    taskEventsUrl,
    taskEventsDlqUrl,
    historyEventsUrl,
    historyEventsDlqUrl,
  ] = await Promise.all([
    urlOf(QUEUE_NAMES.lifecycleCommands),
    urlOf(QUEUE_NAMES.lifecycleCommandsDlq),
    urlOf(QUEUE_NAMES.agentReports),
    urlOf(QUEUE_NAMES.agentReportsDlq),
    urlOf(QUEUE_NAMES.taskEvents),
    urlOf(QUEUE_NAMES.taskEventsDlq),
    urlOf(QUEUE_NAMES.historyEvents),
    urlOf(QUEUE_NAMES.historyEventsDlq),
    topicExists(),
  ]);
  if (missing.length > 0) {
    throw new UnavailableError(`messaging is not set up: missing ${missing.sort().join(', ')}`);
  }
  return {
    lifecycleCommandsUrl,
    lifecycleCommandsDlqUrl,
    agentReportsUrl,
    agentReportsDlqUrl,
    taskEventsUrl,
    taskEventsDlqUrl,
    historyEventsUrl,
    historyEventsDlqUrl,
    topicArn,
  };
}

/**
 * For tools that talk to a local stack (the CLI, tests, benchmarks, the soak): the topic's
 * ARN as configured (`BERTH_LIFECYCLE_TOPIC_ARN`, BerthConfig's `lifecycleTopicArn`), or else
 * as the emulator names it (CreateTopic of an existing topic returns its ARN and changes
 * nothing). Services never call this: on AWS it would take sns:CreateTopic.
 */
export async function localLifecycleTopicArn(
  sns: SNSClient,
  configuredArn: string | undefined,
): Promise<string> {
  return configuredArn ? configuredArn : createTopic(sns);
}

function deadLetterQueueAttributes(): Record<string, string> {
  return { MessageRetentionPeriod: String(DLQ_RETENTION_SECONDS) };
}

function workQueueAttributes(deadLetterTargetArn: string): Record<string, string> {
  return {
    VisibilityTimeout: String(COMMAND_VISIBILITY_TIMEOUT_SECONDS),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn, maxReceiveCount: MAX_RECEIVE_COUNT }),
  };
}

async function ensureQueue(
  sqs: SQSClient,
  name: string,
  attributes: Record<string, string>,
): Promise<string> {
  try {
    const output = await sqs.send(
      new CreateQueueCommand({ QueueName: name, Attributes: attributes }),
    );
    if (!output.QueueUrl) throw new UnavailableError(`creating queue ${name} returned no URL`);
    return output.QueueUrl;
  } catch (error) {
    // An existing queue with other attributes (an older setup, a hand edit) is brought
    // in line rather than refused.
    if (!hasCode(error, 'QueueNameExists') && !hasCode(error, 'QueueAlreadyExists')) {
      throw toMessagingError(error, `creating queue ${name}`);
    }
  }
  try {
    const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
    if (!QueueUrl) throw new UnavailableError(`looking up queue ${name} returned no URL`);
    await sqs.send(new SetQueueAttributesCommand({ QueueUrl, Attributes: attributes }));
    return QueueUrl;
  } catch (error) {
    throw toMessagingError(error, `updating queue ${name}`);
  }
}

async function queueArn(sqs: SQSClient, queueUrl: string, name: string): Promise<string> {
  try {
    const { Attributes } = await sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
    );
    const arn = Attributes?.QueueArn;
    if (!arn) throw new UnavailableError(`queue ${name} has no QueueArn attribute`);
    return arn;
  } catch (error) {
    throw toMessagingError(error, `reading the ARN of queue ${name}`);
  }
}

/**
 * Subscribes a shared queue to the topic with raw delivery, letting the topic send to it. On AWS
 * the data stack makes this subscription; here (the local stack) it is made at every start, and
 * subscribing again with the same attributes changes nothing.
 */
export async function subscribeQueue(
  sqs: SQSClient,
  sns: SNSClient,
  queueUrl: string,
  name: string,
  topicArn: string,
): Promise<void> {
  const arn = await queueArn(sqs, queueUrl, name);
  try {
    await sqs.send(
      new SetQueueAttributesCommand({
        QueueUrl: queueUrl,
        Attributes: {
          Policy: JSON.stringify({
            Version: '2012-10-17',
            Statement: [
              {
                Sid: 'berth-lifecycle-events',
                Effect: 'Allow',
                Principal: { Service: 'sns.amazonaws.com' },
                Action: 'sqs:SendMessage',
                Resource: arn,
                Condition: { ArnEquals: { 'aws:SourceArn': topicArn } },
              },
            ],
          }),
        },
      }),
    );
    await sns.send(
      new SubscribeCommand({
        TopicArn: topicArn,
        Protocol: 'sqs',
        Endpoint: arn,
        Attributes: { RawMessageDelivery: 'true' },
      }),
    );
  } catch (error) {
    throw toMessagingError(error, `subscribing queue ${name} to the lifecycle topic`);
  }
}

async function createTopic(sns: SNSClient): Promise<string> {
  try {
    const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: TOPIC_NAME }));
    if (!TopicArn) throw new UnavailableError(`creating topic ${TOPIC_NAME} returned no ARN`);
    return TopicArn;
  } catch (error) {
    throw toMessagingError(error, `creating topic ${TOPIC_NAME}`);
  }
}
