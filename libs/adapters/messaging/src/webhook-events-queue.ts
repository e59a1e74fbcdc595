/**
 * The webhook service's own subscription to the lifecycle topic: queue `berth-webhook-events`
 * (dead-letter queue `berth-webhook-events-dlq`), raw delivery. On AWS the data stack makes
 * both and the subscription; the local stack makes them here.
 */
import type { SNSClient } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  GetQueueUrlCommand,
  SetQueueAttributesCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { UnavailableError } from '@berth/domain';
import { hasCode, isMissingQueue, toMessagingError } from './errors.ts';
import { MAX_RECEIVE_COUNT, queueArn, subscribeQueue } from './resources.ts';

export const WEBHOOK_EVENTS_QUEUE = 'berth-webhook-events';
export const WEBHOOK_EVENTS_DLQ = 'berth-webhook-events-dlq';
/** Long enough for a pass that queues one event's delivery many times over. */
export const WEBHOOK_EVENTS_VISIBILITY_TIMEOUT_SECONDS = 30;

async function createOrGet(
  sqs: SQSClient,
  name: string,
  attributes: Record<string, string>,
): Promise<string> {
  try {
    const { QueueUrl } = await sqs.send(
      new CreateQueueCommand({ QueueName: name, Attributes: attributes }),
    );
    if (QueueUrl) return QueueUrl;
  } catch (error) {
    if (!hasCode(error, 'QueueNameExists') && !hasCode(error, 'QueueAlreadyExists')) {
      throw toMessagingError(error, `creating queue ${name}`);
    }
  }
  const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: name }));
  if (!QueueUrl) throw new UnavailableError(`queue ${name} has no URL`);
  await sqs.send(new SetQueueAttributesCommand({ QueueUrl, Attributes: attributes }));
  return QueueUrl;
}

/** The local stack: makes the queue, its dead-letter queue and the subscription if missing. */
export async function ensureWebhookEventsQueue(options: {
  sqs: SQSClient;
  sns: SNSClient;
  topicArn: string;
}): Promise<string> {
  const { sqs, sns, topicArn } = options;
  try {
    const dlqUrl = await createOrGet(sqs, WEBHOOK_EVENTS_DLQ, {
      MessageRetentionPeriod: String(14 * 24 * 3600),
    });
    const dlqArn = await queueArn(sqs, dlqUrl, WEBHOOK_EVENTS_DLQ);
    const url = await createOrGet(sqs, WEBHOOK_EVENTS_QUEUE, {
      VisibilityTimeout: String(WEBHOOK_EVENTS_VISIBILITY_TIMEOUT_SECONDS),
      RedrivePolicy: JSON.stringify({
        deadLetterTargetArn: dlqArn,
        maxReceiveCount: MAX_RECEIVE_COUNT,
      }),
    });
    // The same raw subscription, with the topic-only queue policy, as the shared queues get.
    await subscribeQueue(sqs, sns, url, WEBHOOK_EVENTS_QUEUE, topicArn);
    return url;
  } catch (error) {
    throw toMessagingError(error, `setting up queue ${WEBHOOK_EVENTS_QUEUE}`);
  }
}

/** AWS: the queue the data stack made, found by name (one GetQueueUrl). */
export async function resolveWebhookEventsQueue(sqs: SQSClient): Promise<string> {
  try {
    const { QueueUrl } = await sqs.send(
      new GetQueueUrlCommand({ QueueName: WEBHOOK_EVENTS_QUEUE }),
    );
    if (QueueUrl) return QueueUrl;
  } catch (error) {
    if (!isMissingQueue(error)) throw toMessagingError(error, `looking up ${WEBHOOK_EVENTS_QUEUE}`);
  }
  throw new UnavailableError(`messaging is not set up: missing queue ${WEBHOOK_EVENTS_QUEUE}`);
}
