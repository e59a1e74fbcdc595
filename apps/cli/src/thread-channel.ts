/**
 * Talking to one session's thread through its container's queues, as a chat product does:
 * `{sessionId, threadId, text}` on the input queue, `{sessionId, threadId, text, exitCode}`
 * back on the output queue (docs/contract.md, "Messages to a container").
 */
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SessionJson } from '@berth/domain';
import { CliError, EXIT } from './errors.ts';

export interface ThreadReply {
  sessionId: string;
  threadId: string;
  text: string;
  exitCode: number;
  /** The run's checkpoint commit, null when it changed nothing (absent from older agents). */
  checkpoint?: string | null;
}

function parseReply(body: string | undefined): Partial<ThreadReply> | undefined {
  try {
    const parsed = JSON.parse(body ?? '') as Partial<ThreadReply> | null;
    return typeof parsed === 'object' && parsed !== null ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export class ThreadChannel {
  readonly sessionId: string;
  readonly threadId: string;
  readonly #sqs: SQSClient;
  readonly #inputQueueUrl: string;
  readonly #outputQueueUrl: string;

  /** The channel of an active session; a released or expired one has no container to talk to. */
  static of(sqs: SQSClient, session: SessionJson): ThreadChannel {
    if (session.status !== 'active')
      throw new CliError(
        `session ${session.sessionId} is ${session.status}: assign it first (berth sessions assign)`,
        EXIT.conflict,
      );
    if (!session.inputQueueUrl || !session.outputQueueUrl || !session.threadId)
      throw new CliError(
        `session ${session.sessionId} has no container queues yet; try again shortly`,
        EXIT.unavailable,
      );
    return new ThreadChannel(sqs, {
      sessionId: session.sessionId,
      threadId: session.threadId,
      inputQueueUrl: session.inputQueueUrl,
      outputQueueUrl: session.outputQueueUrl,
    });
  }

  private constructor(
    sqs: SQSClient,
    ids: { sessionId: string; threadId: string; inputQueueUrl: string; outputQueueUrl: string },
  ) {
    this.#sqs = sqs;
    this.sessionId = ids.sessionId;
    this.threadId = ids.threadId;
    this.#inputQueueUrl = ids.inputQueueUrl;
    this.#outputQueueUrl = ids.outputQueueUrl;
  }

  async send(text: string): Promise<string> {
    const { MessageId } = await this.#sqs.send(
      new SendMessageCommand({
        QueueUrl: this.#inputQueueUrl,
        MessageBody: JSON.stringify({ sessionId: this.sessionId, threadId: this.threadId, text }),
      }),
    );
    return MessageId ?? '';
  }

  /**
   * The next output message of this session's thread, taken off the queue. Messages of other
   * sessions share the queue: they are made visible again at once, for their own reader.
   */
  async nextReply(timeoutMs: number): Promise<ThreadReply> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const waitSeconds = Math.max(1, Math.min(5, Math.ceil((deadline - Date.now()) / 1000)));
      const { Messages = [] } = await this.#sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.#outputQueueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: waitSeconds,
          VisibilityTimeout: 30,
        }),
      );
      let reply: ThreadReply | undefined;
      for (const message of Messages) {
        const body = parseReply(message.Body);
        const ours =
          reply === undefined &&
          body?.sessionId === this.sessionId &&
          body.threadId === this.threadId;
        const handle = { QueueUrl: this.#outputQueueUrl, ReceiptHandle: message.ReceiptHandle };
        if (ours) await this.#sqs.send(new DeleteMessageCommand(handle));
        else
          await this.#sqs.send(
            new ChangeMessageVisibilityCommand({ ...handle, VisibilityTimeout: 0 }),
          );
        if (ours)
          reply = {
            sessionId: this.sessionId,
            threadId: this.threadId,
            text: typeof body.text === 'string' ? body.text : '',
            exitCode: typeof body.exitCode === 'number' ? body.exitCode : -1,
            ...(body.checkpoint === undefined ? {} : { checkpoint: body.checkpoint }),
          };
      }
      if (reply) return reply;
    }
    throw new CliError(
      `no reply on session ${this.sessionId}'s thread within ${Math.round(timeoutMs / 1000)} s`,
      EXIT.unavailable,
    );
  }
}
