/**
 * Talking to a session's thread. `send-message` sends one message (and with `--wait` prints
 * the reply); `chat` sends each line of its input and prints each reply as it arrives; both on
 * the same ThreadChannel. `checkpoints` and `revert` are the thread's history and undo.
 */
import { createInterface } from 'node:readline';
import { parseDuration, type CheckpointJson, type SessionJson } from '@berth/domain';
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

  program
    .command('chat')
    .description(
      "talk to a session's thread: each line read is a message, each reply printed as it arrives (with --json, one JSON object per line)",
    )
    .argument('<sessionId>', 'an active session', opaqueId('sessionId'))
    .option('--timeout <duration>', 'how long to wait for each reply, e.g. 5m', '5m')
    .action(async (sessionId: string, options: { timeout: string }) => {
      const timeoutMs = parseDuration(options.timeout, '--timeout');
      const { body } = await ctx
        .api()
        .request<{ session: SessionJson }>('GET', `/v1/sessions/${encodeURIComponent(sessionId)}`);
      const json = ctx.out().json;
      const messaging = ctx.messaging();
      const interactive = process.stdin.isTTY && !json;
      const lines = createInterface({ input: process.stdin, terminal: interactive });
      try {
        const channel = ThreadChannel.of(messaging.sqs, body.session);
        if (interactive)
          process.stderr.write(`chatting on thread ${channel.threadId}; Ctrl-D ends\n> `);
        for await (const line of lines) {
          if (line.trim() === '') {
            if (interactive) process.stderr.write('> ');
            continue;
          }
          await channel.send(line).catch((error: unknown) => {
            throw new CliError(
              `cannot send to the input queue (SQS from ${messaging.from}): ${(error as Error).message}`,
              EXIT.unavailable,
            );
          });
          const reply = await channel.nextReply(timeoutMs);
          if (json) process.stdout.write(`${JSON.stringify(reply)}\n`);
          else {
            process.stdout.write(`${reply.text.replace(/\n$/, '')}\n`);
            if (reply.exitCode !== 0)
              process.stderr.write(`berth: the workload exited with code ${reply.exitCode}\n`);
            if (reply.checkpoint) process.stderr.write(`berth: checkpoint ${reply.checkpoint}\n`);
          }
          if (reply.exitCode !== 0) process.exitCode = EXIT.failure;
          if (interactive) process.stderr.write('> ');
        }
      } finally {
        lines.close();
        messaging.destroy();
      }
    });

  program
    .command('checkpoints')
    .description("list the checkpoints of a session's thread, newest first")
    .argument('<sessionId>', 'session id', opaqueId('sessionId'))
    .option('--limit <n>', '1-100', '50')
    .option('--cursor <cursor>', 'the nextCursor of a previous page')
    .action(async (sessionId: string, options: { limit: string; cursor?: string }) => {
      const query = new URLSearchParams({ limit: options.limit });
      if (options.cursor) query.set('cursor', options.cursor);
      const { body } = await ctx
        .api()
        .request<{ checkpoints: CheckpointJson[]; nextCursor: string | null }>(
          'GET',
          `/v1/sessions/${encodeURIComponent(sessionId)}/checkpoints?${query.toString()}`,
        );
      ctx.out().print(body, () => {
        if (body.checkpoints.length === 0) return 'no checkpoints';
        const rows = body.checkpoints.map(
          (c) =>
            `${c.commit.slice(0, 12)}  ${c.createdAt}  ${c.revertOf ? `revert to ${c.revertOf.slice(0, 12)}` : `${c.filesTotal} file(s): ${c.files.slice(0, 3).join(', ')}${c.filesTotal > 3 ? ', ...' : ''}`}`,
        );
        return [...rows, ...(body.nextCursor ? [`more: --cursor ${body.nextCursor}`] : [])].join(
          '\n',
        );
      });
    });

  program
    .command('revert')
    .description("bring a session's thread back to one of its checkpoints, as a new commit")
    .argument('<sessionId>', 'an active session', opaqueId('sessionId'))
    .argument('<commit>', 'a checkpoint of its thread (full commit id)', (value: string) => {
      if (!/^[0-9a-f]{40}([0-9a-f]{24})?$/.test(value))
        throw new CliError(
          `commit must be a full commit id (40 hex digits); got "${value}"`,
          EXIT.usage,
        );
      return value;
    })
    .action(async (sessionId: string, commit: string) => {
      const { body } = await ctx
        .api()
        .request<{ sessionId: string; threadId: string; checkpoint: string; requestId: string }>(
          'POST',
          `/v1/sessions/${encodeURIComponent(sessionId)}/revert`,
          { checkpoint: commit },
        );
      ctx
        .out()
        .print(
          body,
          () =>
            `reverting thread ${body.threadId} to ${body.checkpoint} (request ${body.requestId}); session.reverted follows`,
        );
    });
}
