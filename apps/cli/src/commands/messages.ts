/**
 * Talking to a session's thread. `send-message` sends one message (and with `--wait` prints
 * the reply); an interactive `chat` belongs beside it, on the same ThreadChannel.
 */
import { parseDuration, type SessionJson } from '@berth/domain';
import type { Command } from 'commander';
import { opaqueId } from '../arguments.ts';
import type { CliContext } from '../context.ts';
import { CliError, EXIT } from '../errors.ts';
import { ThreadChannel } from '../thread-channel.ts';

export function registerMessages(program: Command, ctx: CliContext): void {
  program
    .command('send-message')
    .description("send a message to a session's thread (its container's input queue)")
    .argument('<sessionId>', 'an active session', opaqueId('sessionId'))
    .argument('<text>', 'the message text')
    .option('--wait', "wait for the thread's reply on the output queue and print it")
    .option('--timeout <duration>', 'how long --wait waits, e.g. 90s', '60s')
    .action(
      async (sessionId: string, text: string, options: { wait?: boolean; timeout: string }) => {
        const timeoutMs = parseDuration(options.timeout, '--timeout');
        const { body } = await ctx
          .api()
          .request<{ session: SessionJson }>(
            'GET',
            `/v1/sessions/${encodeURIComponent(sessionId)}`,
          );
        const messaging = ctx.messaging();
        try {
          const channel = ThreadChannel.of(messaging.sqs, body.session);
          const messageId = await channel.send(text).catch((error: unknown) => {
            throw new CliError(
              `cannot send to the input queue (SQS from ${messaging.from}): ${(error as Error).message}`,
              EXIT.unavailable,
            );
          });
          if (!options.wait) {
            ctx
              .out()
              .print(
                { sessionId, threadId: channel.threadId, messageId },
                () => `sent to thread ${channel.threadId} (messageId ${messageId})`,
              );
            return;
          }
          const reply = await channel.nextReply(timeoutMs);
          ctx.out().print(reply, () => reply.text.replace(/\n$/, ''));
          if (reply.exitCode !== 0) {
            process.stderr.write(`berth: the workload exited with code ${reply.exitCode}\n`);
            process.exitCode = EXIT.failure;
          }
        } finally {
          messaging.destroy();
        }
      },
    );
}
