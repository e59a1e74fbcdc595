import { randomUUID } from 'node:crypto';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { UnavailableError, type CommandType } from '@berth/domain';
import { createSqsClient } from './clients.ts';
import { queueNameOf, toMessagingError } from './errors.ts';

export interface CommandSenderOptions {
  sqs?: SQSClient;
  queueUrl: string;
}

/** Puts commands on the lifecycle command queue (`{"type", "commandId", "payload"}`). */
export class CommandSender {
  readonly #sqs: SQSClient;
  readonly #queueUrl: string;

  constructor(options: CommandSenderOptions) {
    this.#sqs = options.sqs ?? createSqsClient();
    this.#queueUrl = options.queueUrl;
  }

  /** A string goes out as it is (so tests can send bodies that are not JSON); anything else as JSON. */
  async send(body: object | string): Promise<{ messageId: string }> {
    const queueName = queueNameOf(this.#queueUrl);
    try {
      const { MessageId } = await this.#sqs.send(
        new SendMessageCommand({
          QueueUrl: this.#queueUrl,
          MessageBody: typeof body === 'string' ? body : JSON.stringify(body),
        }),
      );
      if (!MessageId)
        throw new UnavailableError(`sending to queue ${queueName} returned no message id`);
      return { messageId: MessageId };
    } catch (error) {
      throw toMessagingError(error, `sending to queue ${queueName}`);
    }
  }

  async sendCommand(
    type: CommandType,
    payload: Record<string, unknown>,
    commandId: string = randomUUID(),
  ): Promise<{ messageId: string; commandId: string }> {
    const { messageId } = await this.send({ type, commandId, payload });
    return { messageId, commandId };
  }
}
