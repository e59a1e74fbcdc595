import { GetQueueUrlCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { UnavailableError, type TaskStateChange } from '@berth/domain';
import { createSqsClient } from './clients.ts';
import { queueNameOf, toMessagingError } from './errors.ts';
import { QUEUE_NAMES } from './resources.ts';

export interface TaskEventSenderOptions {
  sqs?: SQSClient;
  queueUrl: string;
}

/**
 * Puts `ECS Task State Change` events on the task event queue, as EventBridge does on AWS:
 * the local runtime uses it so one task watcher serves both.
 */
export class TaskEventSender {
  readonly #sqs: SQSClient;
  readonly #queueUrl: string;

  constructor(options: TaskEventSenderOptions) {
    this.#sqs = options.sqs ?? createSqsClient();
    this.#queueUrl = options.queueUrl;
  }

  /** Finds the queue by name (`berth-task-events` by default); UnavailableError when it does not exist (yet). */
  static async forQueueName(
    options: { sqs?: SQSClient; queueName?: string } = {},
  ): Promise<TaskEventSender> {
    const sqs = options.sqs ?? createSqsClient();
    const queueName = options.queueName ?? QUEUE_NAMES.taskEvents;
    try {
      const { QueueUrl } = await sqs.send(new GetQueueUrlCommand({ QueueName: queueName }));
      if (!QueueUrl) throw new UnavailableError(`looking up queue ${queueName} returned no URL`);
      return new TaskEventSender({ sqs, queueUrl: QueueUrl });
    } catch (error) {
      throw toMessagingError(error, `looking up queue ${queueName}`);
    }
  }

  get queueUrl(): string {
    return this.#queueUrl;
  }

  async send(event: TaskStateChange): Promise<void> {
    try {
      await this.#sqs.send(
        new SendMessageCommand({ QueueUrl: this.#queueUrl, MessageBody: JSON.stringify(event) }),
      );
    } catch (error) {
      throw toMessagingError(error, `sending a task event to queue ${queueNameOf(this.#queueUrl)}`);
    }
  }
}
