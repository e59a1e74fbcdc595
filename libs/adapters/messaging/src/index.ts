export { createSnsClient, createSqsClient } from './clients.ts';
export { isMissingQueue, toMessagingError } from './errors.ts';
export {
  COMMAND_VISIBILITY_TIMEOUT_SECONDS,
  MAX_RECEIVE_COUNT,
  QUEUE_NAMES,
  TOPIC_NAME,
  ensureMessaging,
  localLifecycleTopicArn,
  resolveMessaging,
} from './resources.ts';
export type { MessagingClients, MessagingResources } from './resources.ts';
export { SnsEventPublisher } from './sns-event-publisher.ts';
export type { SnsEventPublisherOptions } from './sns-event-publisher.ts';
export {
  SqsContainerQueues,
  containerQueueNames,
  poolControlQueueName,
} from './sqs-container-queues.ts';
export type { SqsContainerQueuesOptions } from './sqs-container-queues.ts';
export { CommandSender } from './command-sender.ts';
export type { CommandSenderOptions } from './command-sender.ts';
export { startQueueConsumer, validateQueueConsumerOptions } from './queue-consumer.ts';
export type {
  HandleOutcome,
  QueueConsumer,
  QueueConsumerOptions,
  QueueMessage,
  ResolvedQueueConsumerOptions,
} from './queue-consumer.ts';
export { EventSubscription, EventTimeoutError } from './event-subscription.ts';
export type { EventMatcher, EventSubscriptionOptions } from './event-subscription.ts';
export { TaskEventSender, type TaskEventSenderOptions } from './task-event-sender.ts';
export {
  ABANDONED_AFTER_MS,
  DISCOVERY_SUBSCRIPTION_PREFIX,
  HEARTBEAT_INTERVAL_MS,
  SUBSCRIPTION_TAGS,
  deleteAbandonedSubscriptions,
  renewHeartbeat,
} from './owned-subscriptions.ts';
export type { AbandonedSubscriptionsOptions } from './owned-subscriptions.ts';
export {
  WEBHOOK_EVENTS_DLQ,
  WEBHOOK_EVENTS_QUEUE,
  ensureWebhookEventsQueue,
  resolveWebhookEventsQueue,
} from './webhook-events-queue.ts';
