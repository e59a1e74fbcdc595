import { createHash } from 'node:crypto';
import {
  CreateQueueCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import {
  InvalidArgumentError,
  MANAGED_BY,
  TASK_TAGS,
  UnavailableError,
  parseContainerId,
  type ContainerQueueUrls,
  type ContainerQueues,
  type PoolControlQueues,
} from '@berth/domain';
import { createSqsClient } from './clients.ts';
import { isMissingQueue, queueNameOf, toMessagingError } from './errors.ts';

/**
 * SQS names are at most 80 characters of `[A-Za-z0-9_-]`; a containerId may be 191 and
 * holds dots. A hash prefix of 80 bits keeps the names short with no realistic chance of
 * two containers sharing a queue, and the tags say whose queue it is.
 */
export function containerQueueNames(
  containerId: string,
  generation: number,
): { input: string; output: string } {
  parseContainerId(containerId);
  if (!Number.isSafeInteger(generation) || generation < 1) {
    throw new InvalidArgumentError(
      `generation must be a whole number of at least 1; got ${generation}`,
      'generation',
    );
  }
  const digest = createHash('sha256').update(containerId).digest('hex').slice(0, 20);
  const base = `berth-${digest}-g${generation}`;
  return { input: `${base}-in`, output: `${base}-out` };
}

/** A warm-pool member's control queue, on which it waits for the identity it is claimed for. */
export function poolControlQueueName(slot: number, generation: number): string {
  for (const [name, value] of [
    ['slot', slot],
    ['generation', generation],
  ] as const) {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new InvalidArgumentError(`${name} must be a whole number; got ${value}`, name);
    }
  }
  return `berth-pool-s${slot}-g${generation}-ctl`;
}

export interface SqsContainerQueuesOptions {
  sqs?: SQSClient;
}

/** The input and output queue of each container generation. */
export class SqsContainerQueues implements ContainerQueues, PoolControlQueues {
  readonly #sqs: SQSClient;

  constructor(options: SqsContainerQueuesOptions = {}) {
    this.#sqs = options.sqs ?? createSqsClient();
  }

  async create(containerId: string, generation: number): Promise<ContainerQueueUrls> {
    const names = containerQueueNames(containerId, generation);
    const tags = {
      [TASK_TAGS.containerId]: containerId,
      [TASK_TAGS.generation]: String(generation),
      [TASK_TAGS.managedBy]: MANAGED_BY,
    };
    const createQueue = async (name: string): Promise<string> => {
      try {
        // CreateQueue answers with the existing queue's URL for a name already taken, which
        // is what makes a retried create idempotent.
        const { QueueUrl } = await this.#sqs.send(
          new CreateQueueCommand({ QueueName: name, tags }),
        );
        if (!QueueUrl) throw new UnavailableError(`creating queue ${name} returned no URL`);
        return QueueUrl;
      } catch (error) {
        throw toMessagingError(error, `creating queue ${name} for container ${containerId}`);
      }
    };
    const [inputQueueUrl, outputQueueUrl] = await Promise.all([
      createQueue(names.input),
      createQueue(names.output),
    ]);
    return { inputQueueUrl, outputQueueUrl };
  }

  async createControl(slot: number, generation: number): Promise<string> {
    const name = poolControlQueueName(slot, generation);
    try {
      const { QueueUrl } = await this.#sqs.send(
        new CreateQueueCommand({
          QueueName: name,
          tags: {
            [TASK_TAGS.managedBy]: MANAGED_BY,
            PoolSlot: String(slot),
            [TASK_TAGS.generation]: String(generation),
          },
        }),
      );
      if (!QueueUrl) throw new UnavailableError(`creating queue ${name} returned no URL`);
      return QueueUrl;
    } catch (error) {
      throw toMessagingError(error, `creating pool control queue ${name}`);
    }
  }

  async deleteControl(queueUrl: string): Promise<void> {
    try {
      await this.#sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
    } catch (error) {
      if (isMissingQueue(error)) return;
      throw toMessagingError(error, `deleting queue ${queueNameOf(queueUrl)}`);
    }
  }

  async delete(urls: ContainerQueueUrls): Promise<void> {
    await Promise.all(
      [urls.inputQueueUrl, urls.outputQueueUrl].map(async (queueUrl) => {
        try {
          await this.#sqs.send(new DeleteQueueCommand({ QueueUrl: queueUrl }));
        } catch (error) {
          if (isMissingQueue(error)) return;
          throw toMessagingError(error, `deleting queue ${queueNameOf(queueUrl)}`);
        }
      }),
    );
  }

  async exists(queueUrl: string): Promise<boolean> {
    try {
      await this.#sqs.send(
        new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] }),
      );
      return true;
    } catch (error) {
      if (isMissingQueue(error)) return false;
      throw toMessagingError(error, `checking queue ${queueNameOf(queueUrl)}`);
    }
  }

  /** Waiting, being handled or delayed. A queue that is gone has nothing in flight. */
  async messagesInFlight(inputQueueUrl: string): Promise<number> {
    try {
      const { Attributes = {} } = await this.#sqs.send(
        new GetQueueAttributesCommand({
          QueueUrl: inputQueueUrl,
          AttributeNames: [
            'ApproximateNumberOfMessages',
            'ApproximateNumberOfMessagesNotVisible',
            'ApproximateNumberOfMessagesDelayed',
          ],
        }),
      );
      return (
        count(Attributes.ApproximateNumberOfMessages) +
        count(Attributes.ApproximateNumberOfMessagesNotVisible) +
        count(Attributes.ApproximateNumberOfMessagesDelayed)
      );
    } catch (error) {
      if (isMissingQueue(error)) return 0;
      throw toMessagingError(error, `counting messages on queue ${queueNameOf(inputQueueUrl)}`);
    }
  }

  async send(queueUrl: string, body: object): Promise<void> {
    try {
      await this.#sqs.send(
        new SendMessageCommand({ QueueUrl: queueUrl, MessageBody: JSON.stringify(body) }),
      );
    } catch (error) {
      throw toMessagingError(error, `sending to queue ${queueNameOf(queueUrl)}`);
    }
  }
}

function count(value: string | undefined): number {
  const n = Number(value ?? 0);
  return Number.isFinite(n) ? n : 0;
}
