/**
 * The webhook service's own subscription to the lifecycle topic: queue `berth-webhook-events`
 * (dead-letter queue `berth-webhook-events-dlq`), raw delivery. On AWS the data stack makes
 * both and the subscription; the local stack makes them here.
 */
import type { SNSClient } from '@aws-sdk/client-sns';
import { GetQueueUrlCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { UnavailableError } from '@berth/domain';
import { isMissingQueue, toMessagingError } from './errors.ts';
import { ensureQueueWithDeadLetters, subscribeQueue } from './resources.ts';

export const WEBHOOK_EVENTS_QUEUE = 'berth-webhook-events';
export const WEBHOOK_EVENTS_DLQ = 'berth-webhook-events-dlq';

/**
 * The local stack: makes the queue and its dead-letter queue with the shared queues'
 * attributes, and the same raw subscription with the topic-only queue policy, if missing.
 */
export async function ensureWebhookEventsQueue(options: {
  sqs: SQSClient;
  sns: SNSClient;
  topicArn: string;
}): Promise<string> {
  const { sqs, sns, topicArn } = options;
  const [url] = await ensureQueueWithDeadLetters(sqs, WEBHOOK_EVENTS_QUEUE, WEBHOOK_EVENTS_DLQ);
  await subscribeQueue(sqs, sns, url, WEBHOOK_EVENTS_QUEUE, topicArn);
  return url;
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
