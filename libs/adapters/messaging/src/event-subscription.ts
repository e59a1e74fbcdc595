/**
 * A private queue subscribed to the lifecycle topic, for `berth events` and for tests that
 * watch what the services announce.
 */
import { randomBytes } from 'node:crypto';
import { SubscribeCommand, UnsubscribeCommand, type SNSClient } from '@aws-sdk/client-sns';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SetQueueAttributesCommand,
  TagQueueCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import {
  EventSchema,
  InvalidArgumentError,
  MANAGED_BY,
  TASK_TAGS,
  UnavailableError,
  validator,
  type BerthEvent,
} from '@berth/domain';
import { createSnsClient, createSqsClient } from './clients.ts';
import { isMissingQueue, isMissingTopic, toMessagingError, topicNameOf } from './errors.ts';
import { SUBSCRIPTION_TAGS } from './owned-subscriptions.ts';

const eventValidator = validator<BerthEvent>(EventSchema);
const QUEUE_NAME = /^[A-Za-z0-9_-]{1,80}$/;
/** The longest long poll SQS allows. */
const MAX_WAIT_SECONDS = 20;

/** Either a predicate or the fields an event must have, e.g. `{ type: 'session.assigned', sessionId }`. */
export type EventMatcher =
  | ((event: BerthEvent) => boolean)
  | Partial<Pick<BerthEvent, 'type' | 'eventId' | 'containerId' | 'sessionId' | 'commandId'>>;

export class EventTimeoutError extends Error {
  readonly waitedFor: string;
  /** Events that arrived and did not match, still available to `next()`. */
  readonly unmatched: readonly BerthEvent[];

  constructor(waitedFor: string, timeoutMs: number, unmatched: readonly BerthEvent[]) {
    const listed = unmatched
      .slice(0, 10)
      .map(
        (event) =>
          `${event.type}${event.containerId ? ` ${event.containerId}` : ''}${event.sessionId ? ` ${event.sessionId}` : ''}`,
      );
    const others =
      unmatched.length === 0
        ? 'no other events arrived'
        : `other events: ${listed.join(', ')}${unmatched.length > listed.length ? ', ...' : ''}`;
    super(`no event matching ${waitedFor} within ${timeoutMs} ms (${others})`);
    this.name = 'EventTimeoutError';
    this.waitedFor = waitedFor;
    this.unmatched = unmatched;
  }
}

export interface EventSubscriptionOptions {
  sqs?: SQSClient;
  sns?: SNSClient;
  topicArn: string;
  /** The queue's full name; `berth-events-<random>` when absent. */
  name?: string;
  /** More tags for the queue; its subscription's ARN is added as tag `SubscriptionArn`. */
  tags?: Record<string, string>;
}

function describeMatcher(matcher: EventMatcher, description: string | undefined): string {
  if (description !== undefined) return description;
  if (typeof matcher === 'function')
    return matcher.name ? `the predicate ${matcher.name}` : 'the predicate';
  return JSON.stringify(matcher);
}

function toPredicate(matcher: EventMatcher): (event: BerthEvent) => boolean {
  if (typeof matcher === 'function') return matcher;
  const wanted = Object.entries(matcher).filter(([, value]) => value !== undefined);
  return (event) => wanted.every(([key, value]) => event[key as keyof BerthEvent] === value);
}

function parseEvent(body: string | undefined): BerthEvent | undefined {
  if (body === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(body);
    return eventValidator.check(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

export class EventSubscription implements AsyncIterable<BerthEvent> {
  readonly queueUrl: string;
  readonly queueName: string;
  readonly subscriptionArn: string;
  readonly #sqs: SQSClient;
  readonly #sns: SNSClient;
  readonly #ownsSqs: boolean;
  readonly #ownsSns: boolean;
  /** Received and not yet handed out, in arrival order. */
  readonly #buffer: BerthEvent[] = [];
  readonly #abort = new AbortController();
  #receiving: Promise<void> | undefined;
  #closed = false;
  #ignored = 0;

  private constructor(init: {
    sqs: SQSClient;
    sns: SNSClient;
    ownsSqs: boolean;
    ownsSns: boolean;
    queueUrl: string;
    queueName: string;
    subscriptionArn: string;
  }) {
    this.#sqs = init.sqs;
    this.#sns = init.sns;
    this.#ownsSqs = init.ownsSqs;
    this.#ownsSns = init.ownsSns;
    this.queueUrl = init.queueUrl;
    this.queueName = init.queueName;
    this.subscriptionArn = init.subscriptionArn;
  }

  /**
   * Creates the queue, lets the topic send to it and subscribes it with raw delivery, so
   * each message body is the event itself. Events published before `open` resolves are
   * not seen.
   */
  static async open(options: EventSubscriptionOptions): Promise<EventSubscription> {
    const queueName = options.name ?? `berth-events-${randomBytes(8).toString('hex')}`;
    if (!QUEUE_NAME.test(queueName)) {
      throw new InvalidArgumentError(
        `name must be 1-80 characters of letters, digits, "-" and "_"; got ${JSON.stringify(queueName)}`,
        'name',
      );
    }
    const ownsSqs = options.sqs === undefined;
    const ownsSns = options.sns === undefined;
    const sqs = options.sqs ?? createSqsClient();
    const sns = options.sns ?? createSnsClient();
    const topicName = topicNameOf(options.topicArn);

    let queueUrl: string | undefined;
    try {
      queueUrl = (
        await sqs.send(
          new CreateQueueCommand({
            QueueName: queueName,
            tags: { ...options.tags, [TASK_TAGS.managedBy]: MANAGED_BY },
          }),
        )
      ).QueueUrl;
      if (!queueUrl) throw new UnavailableError(`creating queue ${queueName} returned no URL`);
      const { Attributes } = await sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
      );
      const queueArn = Attributes?.QueueArn;
      if (!queueArn) throw new UnavailableError(`queue ${queueName} has no QueueArn attribute`);
      await sqs.send(
        new SetQueueAttributesCommand({
          QueueUrl: queueUrl,
          Attributes: { Policy: JSON.stringify(topicMayDeliver(queueArn, options.topicArn)) },
        }),
      );
      const { SubscriptionArn } = await sns.send(
        new SubscribeCommand({
          TopicArn: options.topicArn,
          Protocol: 'sqs',
          Endpoint: queueArn,
          Attributes: { RawMessageDelivery: 'true' },
          ReturnSubscriptionArn: true,
        }),
      );
      if (!SubscriptionArn)
        throw new UnavailableError(`subscribing to topic ${topicName} returned no ARN`);
      // Whoever finds the queue abandoned can end the subscription too (owned-subscriptions.ts).
      await sqs.send(
        new TagQueueCommand({
          QueueUrl: queueUrl,
          Tags: { [SUBSCRIPTION_TAGS.subscription]: SubscriptionArn },
        }),
      );
      return new EventSubscription({
        sqs,
        sns,
        ownsSqs,
        ownsSns,
        queueUrl,
        queueName,
        subscriptionArn: SubscriptionArn,
      });
    } catch (error) {
      if (queueUrl !== undefined) {
        await sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl })).catch(() => undefined);
      }
      if (ownsSqs) sqs.destroy();
      if (ownsSns) sns.destroy();
      throw toMessagingError(error, `subscribing queue ${queueName} to topic ${topicName}`);
    }
  }

  /** Messages on the queue that were not events (bad JSON, wrong shape); they are dropped. */
  get ignoredMessages(): number {
    return this.#ignored;
  }

  /** The next event, or undefined when none arrives within `timeoutMs` or the subscription closes. */
  async next(timeoutMs = MAX_WAIT_SECONDS * 1000): Promise<BerthEvent | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const event = this.#buffer.shift();
      if (event !== undefined) return event;
      const remaining = deadline - Date.now();
      if (this.#closed || remaining <= 0) return undefined;
      await this.#receive(remaining);
    }
  }

  /**
   * The first event that matches, taken out of the stream; events that do not match stay
   * for `next()` and later waits, so several waits can be made in any order.
   */
  async waitFor(
    matcher: EventMatcher,
    timeoutMs = 10_000,
    description?: string,
  ): Promise<BerthEvent> {
    const matches = toPredicate(matcher);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.#buffer.findIndex(matches);
      const [match] = index >= 0 ? this.#buffer.splice(index, 1) : [];
      if (match !== undefined) return match;
      const remaining = deadline - Date.now();
      if (this.#closed || remaining <= 0) {
        throw new EventTimeoutError(describeMatcher(matcher, description), timeoutMs, [
          ...this.#buffer,
        ]);
      }
      await this.#receive(remaining);
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<BerthEvent> {
    while (!this.#closed) {
      const event = await this.next();
      if (event !== undefined) yield event;
    }
  }

  /** Unsubscribes and deletes the queue; safe to call more than once. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#abort.abort();
    const failures: unknown[] = [];
    try {
      await this.#sns.send(new UnsubscribeCommand({ SubscriptionArn: this.subscriptionArn }));
    } catch (error) {
      if (!isMissingTopic(error))
        failures.push(toMessagingError(error, `unsubscribing queue ${this.queueName}`));
    }
    try {
      await this.#sqs.send(new DeleteQueueCommand({ QueueUrl: this.queueUrl }));
    } catch (error) {
      if (!isMissingQueue(error))
        failures.push(toMessagingError(error, `deleting queue ${this.queueName}`));
    }
    if (this.#ownsSqs) this.#sqs.destroy();
    if (this.#ownsSns) this.#sns.destroy();
    if (failures.length > 0) throw failures[0];
  }

  /** One receive at a time: concurrent callers share it and then look at the buffer. */
  #receive(remainingMs: number): Promise<void> {
    this.#receiving ??= this.#receiveOnce(
      Math.min(MAX_WAIT_SECONDS, Math.ceil(remainingMs / 1000)),
    ).finally(() => {
      this.#receiving = undefined;
    });
    return this.#receiving;
  }

  async #receiveOnce(waitSeconds: number): Promise<void> {
    let messages;
    try {
      const output = await this.#sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.queueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: waitSeconds,
        }),
        { abortSignal: this.#abort.signal },
      );
      messages = output.Messages ?? [];
    } catch (error) {
      if (this.#closed) return;
      throw toMessagingError(error, `receiving events from queue ${this.queueName}`);
    }
    if (messages.length === 0 || this.#closed) return;
    for (const message of messages) {
      const event = parseEvent(message.Body);
      if (event === undefined) this.#ignored += 1;
      else this.#buffer.push(event);
    }
    const entries = messages.flatMap((message, index) =>
      message.ReceiptHandle ? [{ Id: String(index), ReceiptHandle: message.ReceiptHandle }] : [],
    );
    // A failed delete only means these events arrive again, which SNS may do anyway.
    await this.#sqs
      .send(new DeleteMessageBatchCommand({ QueueUrl: this.queueUrl, Entries: entries }))
      .catch(() => undefined);
  }
}

function topicMayDeliver(queueArn: string, topicArn: string): object {
  return {
    Version: '2012-10-17',
    Statement: [
      {
        Sid: 'berth-lifecycle-events',
        Effect: 'Allow',
        Principal: { Service: 'sns.amazonaws.com' },
        Action: 'sqs:SendMessage',
        Resource: queueArn,
        Condition: { ArnEquals: { 'aws:SourceArn': topicArn } },
      },
    ],
  };
}
