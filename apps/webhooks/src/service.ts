/**
 * The webhook service (docs/design.md, "Signed webhooks"): follows the lifecycle topic through
 * its own queue (`berth-webhook-events`), queues each event a client's webhook takes in the
 * webhook table, and delivers what is due. Its role holds nothing but that queue and that
 * table, because it sends requests to addresses tenants choose.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { WebhookDeliveries, type WebhookSender } from '@berth/core';
import {
  EventSchema,
  InvalidArgumentError,
  systemClock,
  validator,
  type BerthConfig,
  type BerthEvent,
  type Clock,
  type Logger,
  type WebhookDelivery,
} from '@berth/domain';
import { DynamoWebhookStore, ensureWebhookTable } from '@berth/dynamodb';
import {
  createSnsClient,
  createSqsClient,
  ensureWebhookEventsQueue,
  localLifecycleTopicArn,
  resolveWebhookEventsQueue,
  startQueueConsumer,
  type QueueConsumer,
} from '@berth/messaging';
import {
  HttpWebhookSender,
  awsCallRecording,
  recordAwsCalls,
  type ServiceMetrics,
} from '@berth/platform';
import { Counter } from 'prom-client';

const eventValidator = validator<BerthEvent>(EventSchema);

export interface WebhookServiceOptions {
  config: BerthConfig;
  log: Logger;
  metrics: ServiceMetrics;
  /** Creates the table, the queue and its subscription (the local stack); default: runtime local. */
  bootstrap?: boolean;
  /** Tests: another sender (the HTTP one by default) or clock. */
  sender?: WebhookSender;
  clock?: Clock;
  /** How often the due deliveries are read when nothing wakes the loop; default 1 s. */
  pollMs?: number;
  /** How often parked deliveries are checked for a lost promotion; default 30 s. */
  sweepMs?: number;
  onAttempt?: (delivery: WebhookDelivery) => void;
  /**
   * How long a received event stays hidden from other receivers; default 30 s. Tests shorten
   * it: a long poll cut short by a stop can still take a message, which comes back only then.
   */
  visibilityTimeoutSeconds?: number;
}

export interface WebhookService {
  deliveries: WebhookDeliveries;
  queueUrl: string;
  stop(): Promise<void>;
}

export async function startWebhookService(options: WebhookServiceOptions): Promise<WebhookService> {
  const { config, log, metrics } = options;
  const recordingConfig = awsCallRecording(config.awsCallLogPath, config.rehearsalTarget);
  const recording = recordingConfig && { service: 'webhooks', ...recordingConfig };
  const dynamodb = new DynamoDBClient({});
  const sqs = createSqsClient();
  const sns = createSnsClient();
  if (recording) {
    recordAwsCalls(dynamodb, recording);
    recordAwsCalls(sqs, recording);
    recordAwsCalls(sns, recording);
  }
  const bootstrap = options.bootstrap ?? config.runtime === 'local';
  let queueUrl: string;
  if (bootstrap) {
    await ensureWebhookTable(dynamodb, config.webhooks.table);
    const topicArn = await localLifecycleTopicArn(sns, config.lifecycleTopicArn);
    queueUrl = await ensureWebhookEventsQueue({ sqs, sns, topicArn });
  } else {
    queueUrl = await resolveWebhookEventsQueue(sqs);
  }

  const attempts = new Counter({
    name: 'berth_webhook_attempts_total',
    help: 'Webhook delivery attempts by outcome (delivered, retry, dead); never by client',
    labelNames: ['outcome'],
    registers: [metrics.registry],
  });
  const deliveries = new WebhookDeliveries({
    store: new DynamoWebhookStore({ client: dynamodb, table: config.webhooks.table }),
    sender: options.sender ?? new HttpWebhookSender({ network: config.webhooks.network }),
    clock: options.clock ?? systemClock,
    log,
    timeoutMs: config.webhooks.timeoutMs,
    retryBaseMs: config.webhooks.retryBaseMs,
    retryWindowMs: config.webhooks.retryWindowMs,
    concurrencyPerClient: config.webhooks.concurrencyPerClient,
    onAttempt: (delivery) => {
      const outcome = delivery.status === 'pending' ? 'retry' : delivery.status;
      attempts.inc({ outcome });
      metrics.emf('WebhookAttempts', 1, 'Count', { Outcome: outcome });
      options.onAttempt?.(delivery);
    },
  });

  const visibilityTimeoutSeconds = options.visibilityTimeoutSeconds ?? 30;
  const consumer: QueueConsumer = startQueueConsumer({
    sqs,
    queueUrl,
    batchSize: 10,
    concurrency: 10,
    visibilityTimeoutSeconds,
    heartbeatIntervalSeconds: Math.floor(visibilityTimeoutSeconds / 3),
    handle: async (message) => {
      let event: BerthEvent;
      try {
        event = eventValidator.parse(JSON.parse(message.body));
      } catch (error) {
        if (error instanceof SyntaxError || error instanceof InvalidArgumentError) {
          log.warn({ messageId: message.messageId, err: error }, 'not a lifecycle event; dropped');
          return 'done';
        }
        throw error;
      }
      await deliveries.accept(event);
      return 'done';
    },
    onError: (error: unknown) => log.error({ err: error }, 'webhook events consumer error'),
  });

  // The loop: a pass on every wake (an event queued, a lane freed) and at least every pollMs.
  let stopping = false;
  let running: Promise<void> | undefined;
  let again = false;
  const runPass = (): void => {
    if (stopping) return;
    if (running) {
      again = true;
      return;
    }
    running = deliveries
      .pass()
      .then(
        () => undefined,
        (error: unknown) => log.error({ err: error }, 'webhook delivery pass failed'),
      )
      .finally(() => {
        running = undefined;
        if (again) {
          again = false;
          setImmediate(runPass);
        }
      });
  };
  deliveries.onWork = runPass;
  const poll = setInterval(runPass, options.pollMs ?? 1000);
  const sweep = setInterval(() => {
    deliveries
      .sweepParked()
      .catch((error: unknown) => log.error({ err: error }, 'webhook parked sweep failed'));
  }, options.sweepMs ?? 30_000);
  runPass();
  log.info({ queueUrl, table: config.webhooks.table }, 'webhook service delivering');

  return {
    deliveries,
    queueUrl,
    async stop() {
      stopping = true;
      clearInterval(poll);
      clearInterval(sweep);
      await consumer.stop();
      await running;
      // Attempts in flight end within the timeout; one cut short is due again after its lease.
      await deliveries.drain();
      dynamodb.destroy();
      sqs.destroy();
      sns.destroy();
    },
  };
}
