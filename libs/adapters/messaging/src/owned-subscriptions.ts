/**
 * Subscription queues that belong to one process (a discovery replica's cache invalidation
 * feed). Each is tagged with its owner, its SNS subscription and a heartbeat its owner renews
 * while it lives; a queue whose heartbeat has gone stale lost its owner (a crash, a killed
 * task) and is unsubscribed and deleted by `deleteAbandonedSubscriptions` (the reaper's sweep).
 */
import { UnsubscribeCommand, type SNSClient } from '@aws-sdk/client-sns';
import {
  DeleteQueueCommand,
  ListQueueTagsCommand,
  TagQueueCommand,
  paginateListQueues,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { isMissingQueue, isMissingTopic, queueNameOf, toMessagingError } from './errors.ts';

export const SUBSCRIPTION_TAGS = {
  owner: 'Owner',
  subscription: 'SubscriptionArn',
  heartbeat: 'Heartbeat',
} as const;

/**
 * Discovery's per-process subscription queues. Deliberately outside `berth-*`, the prefix of
 * per-container queues that workspace roles may read: a workload must never be able to read
 * the lifecycle events of every tenant.
 */
export const DISCOVERY_SUBSCRIPTION_PREFIX = 'discovery-invalidations-';

/** How often an owner renews its heartbeat, and when a queue counts as abandoned. */
export const HEARTBEAT_INTERVAL_MS = 60_000;
export const ABANDONED_AFTER_MS = 10 * HEARTBEAT_INTERVAL_MS;

export async function renewHeartbeat(sqs: SQSClient, queueUrl: string, now: Date): Promise<void> {
  try {
    await sqs.send(
      new TagQueueCommand({
        QueueUrl: queueUrl,
        Tags: { [SUBSCRIPTION_TAGS.heartbeat]: now.toISOString() },
      }),
    );
  } catch (error) {
    throw toMessagingError(error, `renewing the heartbeat of queue ${queueNameOf(queueUrl)}`);
  }
}

export interface AbandonedSubscriptionsOptions {
  sqs: SQSClient;
  sns: SNSClient;
  prefix: string;
  now: Date;
  abandonedAfterMs?: number;
}

/**
 * Unsubscribes and deletes every queue of `prefix` whose heartbeat is older than
 * `abandonedAfterMs` (or that has none, and so was never owned by a live process for long).
 * Returns the names deleted.
 */
export async function deleteAbandonedSubscriptions(
  options: AbandonedSubscriptionsOptions,
): Promise<string[]> {
  const { sqs, sns, prefix, now } = options;
  const horizon = now.getTime() - (options.abandonedAfterMs ?? ABANDONED_AFTER_MS);
  const deleted: string[] = [];
  try {
    for await (const page of paginateListQueues({ client: sqs }, { QueueNamePrefix: prefix })) {
      for (const queueUrl of page.QueueUrls ?? []) {
        const { Tags = {} } = await sqs.send(new ListQueueTagsCommand({ QueueUrl: queueUrl }));
        const heartbeat = Date.parse(Tags[SUBSCRIPTION_TAGS.heartbeat] ?? '');
        if (Number.isFinite(heartbeat) && heartbeat >= horizon) continue;
        const subscriptionArn = Tags[SUBSCRIPTION_TAGS.subscription];
        if (subscriptionArn) {
          await sns
            .send(new UnsubscribeCommand({ SubscriptionArn: subscriptionArn }))
            .catch((error: unknown) => {
              if (!isMissingTopic(error)) throw error;
            });
        }
        await sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl })).catch((error: unknown) => {
          if (!isMissingQueue(error)) throw error;
        });
        deleted.push(queueNameOf(queueUrl));
      }
    }
  } catch (error) {
    throw toMessagingError(error, `deleting abandoned subscription queues ${prefix}*`);
  }
  return deleted;
}
