/**
 * berth's services consume their queues through this wrapper around sqs-consumer: handlers
 * answer 'done' or 'retry', at most `concurrency` of them run at once, and `stop()` lets
 * the handlers in flight finish before it resolves.
 */
import { ChangeMessageVisibilityCommand, type Message, type SQSClient } from '@aws-sdk/client-sqs';
import { InvalidArgumentError, UnavailableError, type HandleOutcome } from '@berth/domain';
import { Consumer, SQSError } from 'sqs-consumer';
import { createSqsClient } from './clients.ts';
import { errorCodes, queueNameOf, toMessagingError } from './errors.ts';

export interface QueueMessage {
  body: string;
  messageId: string;
  /** 1 on the first delivery; the message moves to the dead-letter queue after the 5th. */
  receiveCount: number;
  /**
   * SQS's `SenderId` system attribute: who sent it (for an assumed role, as an ECS task's,
   * `<role unique id>:<role session name>`). Undefined when the queue gave none.
   */
  senderId?: string;
}

export type { HandleOutcome };

export interface QueueConsumerOptions {
  sqs?: SQSClient;
  queueUrl: string;
  /** Messages per receive, 1-10. Default 10. */
  batchSize?: number;
  /** Most handlers running at once, across all receives. Default `batchSize`. */
  concurrency?: number;
  /** How long a received message stays hidden from other receivers. Default 30. */
  visibilityTimeoutSeconds?: number;
  /**
   * While a handler runs, its message's visibility is extended this often (by
   * `visibilityTimeoutSeconds` each time). Must be below `visibilityTimeoutSeconds`;
   * 0 turns it off. Default: half the visibility timeout, or off when that is under 1 s.
   */
  heartbeatIntervalSeconds?: number;
  /** Long-poll duration of each receive, 1-20. Default 20. */
  waitTimeSeconds?: number;
  /** How long `stop()` waits for handlers in flight. Default 60 000. */
  stopTimeoutMs?: number;
  handle: (message: QueueMessage) => Promise<HandleOutcome>;
  /**
   * Handler failures (the message is retried) and queue trouble, already mapped to domain
   * errors where they come from SQS. Default: one line on standard error.
   */
  onError?: (error: Error, message?: QueueMessage) => void;
}

export interface QueueConsumer {
  /**
   * Stops receiving, waits for the handlers in flight and their deletes, then resolves.
   * Messages received but not yet started are handed back to the queue at once.
   */
  stop(): Promise<void>;
}

export interface ResolvedQueueConsumerOptions {
  queueUrl: string;
  batchSize: number;
  concurrency: number;
  visibilityTimeoutSeconds: number;
  heartbeatIntervalSeconds: number;
  waitTimeSeconds: number;
  stopTimeoutMs: number;
}

const MAX_VISIBILITY_TIMEOUT_SECONDS = 43_200;
/** Pause between receives after one failed, so an unreachable queue is not hammered. */
const RECEIVE_RETRY_DELAY_MS = 1000;

function wholeNumber(
  field: keyof QueueConsumerOptions,
  value: unknown,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    const got =
      typeof value === 'number' ? String(value) : `a ${value === null ? 'null' : typeof value}`;
    throw new InvalidArgumentError(
      `${field} must be a whole number from ${min} to ${max}; got ${got}`,
      field,
    );
  }
  return value;
}

/** Checks every option and fills in the defaults; throws InvalidArgumentError naming the field. */
export function validateQueueConsumerOptions(
  options: QueueConsumerOptions,
): ResolvedQueueConsumerOptions {
  if (typeof options.queueUrl !== 'string' || !URL.canParse(options.queueUrl)) {
    throw new InvalidArgumentError(
      `queueUrl must be a queue URL; got ${JSON.stringify(options.queueUrl)}`,
      'queueUrl',
    );
  }
  if (typeof options.handle !== 'function') {
    throw new InvalidArgumentError(
      "handle must be a function answering 'done' or 'retry'",
      'handle',
    );
  }
  if (options.onError !== undefined && typeof options.onError !== 'function') {
    throw new InvalidArgumentError('onError must be a function', 'onError');
  }
  const batchSize = wholeNumber('batchSize', options.batchSize, 10, 1, 10);
  const concurrency = wholeNumber('concurrency', options.concurrency, batchSize, 1, 1000);
  const visibilityTimeoutSeconds = wholeNumber(
    'visibilityTimeoutSeconds',
    options.visibilityTimeoutSeconds,
    30,
    0,
    MAX_VISIBILITY_TIMEOUT_SECONDS,
  );
  const heartbeatIntervalSeconds = wholeNumber(
    'heartbeatIntervalSeconds',
    options.heartbeatIntervalSeconds,
    Math.floor(visibilityTimeoutSeconds / 2),
    0,
    MAX_VISIBILITY_TIMEOUT_SECONDS,
  );
  if (heartbeatIntervalSeconds > 0 && heartbeatIntervalSeconds >= visibilityTimeoutSeconds) {
    throw new InvalidArgumentError(
      `heartbeatIntervalSeconds (${heartbeatIntervalSeconds}) must be less than visibilityTimeoutSeconds (${visibilityTimeoutSeconds}), or 0 for no heartbeat`,
      'heartbeatIntervalSeconds',
    );
  }
  const waitTimeSeconds = wholeNumber('waitTimeSeconds', options.waitTimeSeconds, 20, 1, 20);
  const stopTimeoutMs = wholeNumber(
    'stopTimeoutMs',
    options.stopTimeoutMs,
    60_000,
    1,
    24 * 60 * 60 * 1000,
  );
  return {
    queueUrl: options.queueUrl,
    batchSize,
    concurrency,
    visibilityTimeoutSeconds,
    heartbeatIntervalSeconds,
    waitTimeSeconds,
    stopTimeoutMs,
  };
}

/** Hands out at most `size` slots; the rest wait in arrival order. */
class Slots {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(size: number) {
    this.#free = size;
  }

  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free -= 1;
    else await new Promise<void>((resolve) => this.#waiting.push(resolve));
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free += 1;
    };
  }
}

function toQueueMessage(message: Message): QueueMessage {
  const receiveCount = Number(message.Attributes?.ApproximateReceiveCount ?? '1');
  const senderId = message.Attributes?.SenderId;
  return {
    body: message.Body ?? '',
    messageId: message.MessageId ?? '',
    receiveCount: Number.isInteger(receiveCount) && receiveCount > 0 ? receiveCount : 1,
    ...(senderId ? { senderId } : {}),
  };
}

function isAbort(error: unknown): boolean {
  const cause = error instanceof SQSError ? error.cause : error;
  return (
    errorCodes(cause).includes('AbortError') ||
    (error instanceof SQSError && error.code === 'AbortError')
  );
}

/**
 * Starts consuming at once. sqs-consumer handles one receive at a time per consumer and
 * waits for the whole batch before the next, so `concurrency` above `batchSize` is served
 * by several consumers on the same queue, and a shared limit keeps the handlers in bounds.
 */
export function startQueueConsumer(options: QueueConsumerOptions): QueueConsumer {
  const settings = validateQueueConsumerOptions(options);
  const queueName = queueNameOf(settings.queueUrl);
  const ownsClient = options.sqs === undefined;
  const sqs = options.sqs ?? createSqsClient();
  const slots = new Slots(settings.concurrency);
  let stopping = false;

  const report = (error: unknown, message?: QueueMessage): void => {
    const reported = error instanceof Error ? error : new Error(String(error));
    try {
      if (options.onError) options.onError(reported, message);
      else console.error(`queue consumer on ${queueName}: ${reported.message}`);
    } catch {
      // A failing error reporter must not take the consumer down with it.
    }
  };

  /** Makes a message visible again at once, for another consumer or replica to take. */
  const handBack = async (message: Message): Promise<void> => {
    if (!message.ReceiptHandle) return;
    try {
      await sqs.send(
        new ChangeMessageVisibilityCommand({
          QueueUrl: settings.queueUrl,
          ReceiptHandle: message.ReceiptHandle,
          VisibilityTimeout: 0,
        }),
      );
    } catch (error) {
      report(
        toMessagingError(error, `handing a message back to queue ${queueName}`),
        toQueueMessage(message),
      );
    }
  };

  /** Never throws: the message comes back to be deleted when it is done, and only then. */
  const handleMessage = async (message: Message): Promise<Message | undefined> => {
    if (stopping) {
      await handBack(message);
      return undefined;
    }
    const release = await slots.acquire();
    const received = toQueueMessage(message);
    try {
      if (stopping) {
        await handBack(message);
        return undefined;
      }
      const outcome = await options.handle(received);
      if (outcome === 'done') return message;
      if (outcome !== 'retry') {
        report(
          new InvalidArgumentError(
            `handle answered ${JSON.stringify(outcome)}; expected 'done' or 'retry'`,
          ),
          received,
        );
      }
      return undefined;
    } catch (error) {
      report(error, received);
      return undefined;
    } finally {
      release();
    }
  };

  /**
   * A received batch: every message on its own handler (within the slots), then one
   * DeleteMessageBatch for those answered 'done' (a message whose handler did not finish
   * stays, to come back), instead of one DeleteMessage per message.
   */
  const handleMessageBatch = async (messages: Message[]): Promise<Message[]> => {
    const acknowledged = await Promise.all(messages.map((message) => handleMessage(message)));
    return acknowledged.filter((message): message is Message => message !== undefined);
  };

  const workers = Array.from(
    { length: Math.ceil(settings.concurrency / settings.batchSize) },
    () => {
      const consumer = Consumer.create({
        sqs,
        queueUrl: settings.queueUrl,
        batchSize: settings.batchSize,
        visibilityTimeout: settings.visibilityTimeoutSeconds,
        ...(settings.heartbeatIntervalSeconds > 0
          ? { heartbeatInterval: settings.heartbeatIntervalSeconds }
          : {}),
        waitTimeSeconds: settings.waitTimeSeconds,
        pollingCompleteWaitTimeMs: settings.stopTimeoutMs,
        messageSystemAttributeNames: ['ApproximateReceiveCount', 'SenderId'],
        strictReturn: true,
        handleMessageBatch,
      });
      // Between a receive that brought messages and the end of their handlers and deletes.
      let busy = false;
      let backingOff = false;
      consumer.on('message_received', () => {
        busy = true;
      });
      const received = (): void => {
        busy = false;
        if (backingOff) {
          backingOff = false;
          consumer.updateOption('pollingWaitTimeMs', 0);
        }
      };
      consumer.on('response_processed', received);
      consumer.on('empty', received);
      consumer.on('error', (error, messages) => {
        if (stopping && isAbort(error)) return;
        const cause = error instanceof SQSError ? error.cause : error;
        const first = Array.isArray(messages) ? messages[0] : messages;
        if (first === undefined) {
          report(toMessagingError(cause, `receiving from queue ${queueName}`));
          if (!backingOff) {
            backingOff = true;
            consumer.updateOption('pollingWaitTimeMs', RECEIVE_RETRY_DELAY_MS);
          }
          return;
        }
        const action = /visibility/i.test(error.message)
          ? `extending the visibility of a message on queue ${queueName}`
          : `deleting a message from queue ${queueName}`;
        report(toMessagingError(cause, action), toQueueMessage(first));
      });
      consumer.on('waiting_for_polling_to_complete_timeout_exceeded', () => {
        report(
          new UnavailableError(
            `stopping the consumer on queue ${queueName}: handlers still running after ${settings.stopTimeoutMs} ms; their messages will be delivered again`,
          ),
        );
      });
      consumer.start();
      return {
        stop: (): Promise<void> =>
          new Promise<void>((resolve) => {
            consumer.once('stopped', () => resolve());
            // An idle consumer is only long-polling: cancelling that request loses nothing,
            // whereas a busy one must keep its signal alive for deletes and heartbeats.
            consumer.stop({ abort: !busy });
          }),
      };
    },
  );

  let stopped: Promise<void> | undefined;
  return {
    stop(): Promise<void> {
      stopped ??= (async () => {
        stopping = true;
        await Promise.all(workers.map((worker) => worker.stop()));
        if (ownsClient) sqs.destroy();
      })();
      return stopped;
    },
  };
}
