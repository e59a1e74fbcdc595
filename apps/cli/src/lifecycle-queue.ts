import { randomUUID } from 'node:crypto';
import { parseCommand } from '@berth/domain';
import {
  CommandSender,
  EventSubscription,
  localLifecycleTopicArn,
  resolveMessaging,
  type MessagingResources,
} from '@berth/messaging';
import type { CliContext, Messaging } from './context.ts';
import { CliError, EXIT } from './errors.ts';

/**
 * Opens SQS/SNS as the target says, finds berth's queues and topic, runs `use`, and closes
 * the clients. A failure to reach them names where the CLI looked.
 */
export async function withMessaging<T>(
  ctx: CliContext,
  use: (messaging: Messaging, resources: MessagingResources) => Promise<T>,
): Promise<T> {
  const messaging = ctx.messaging();
  try {
    let resources: MessagingResources;
    try {
      resources = await resolveMessaging({
        sqs: messaging.sqs,
        sns: messaging.sns,
        topicArn: await localLifecycleTopicArn(messaging.sns, ctx.config().lifecycleTopicArn),
      });
    } catch (error) {
      throw new CliError(
        `cannot reach berth's queues and topic (SQS/SNS from ${messaging.from}): ${(error as Error).message}`,
        EXIT.unavailable,
      );
    }
    return await use(messaging, resources);
  } finally {
    messaging.destroy();
  }
}

/**
 * Sends one command to the lifecycle queue; with `waitFor`, waits for the event that
 * answers it (matched by commandId) and prints that instead.
 */
export async function sendCommand(
  ctx: CliContext,
  type: string,
  payload: Record<string, unknown>,
  waitFor?: string[],
): Promise<void> {
  ctx.config();
  await withMessaging(ctx, async ({ sqs, sns }, resources) => {
    const commandId = randomUUID();
    const body = { type, commandId, payload };
    const parsed = parseCommand(JSON.stringify(body));
    if (!parsed.ok) throw new CliError(`invalid ${type}: ${parsed.rejection.reason}`, EXIT.usage);
    const subscription = waitFor
      ? await EventSubscription.open({ sqs, sns, topicArn: resources.topicArn })
      : undefined;
    try {
      const { messageId } = await new CommandSender({
        sqs,
        queueUrl: resources.lifecycleCommandsUrl,
      }).send(body);
      if (!subscription) {
        ctx.out().print({ commandId, messageId }, () => `sent ${type} (commandId ${commandId})`);
        return;
      }
      const event = await subscription.waitFor(
        (e) => e.commandId === commandId && (waitFor ?? []).includes(e.type),
        60_000,
      );
      ctx.out().print(event, () => `${event.type}: ${JSON.stringify(event.payload)}`);
      if (event.type.endsWith('rejected')) process.exitCode = EXIT.conflict;
    } finally {
      await subscription?.close();
    }
  });
}
