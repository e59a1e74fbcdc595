import { parseDuration } from '@berth/domain';
import { EventSubscription } from '@berth/messaging';
import type { Command } from 'commander';
import { integer } from '../arguments.ts';
import type { CliContext } from '../context.ts';
import { withMessaging } from '../lifecycle-queue.ts';

export function registerEvents(program: Command, ctx: CliContext): void {
  program
    .command('events')
    .description('stream events from the lifecycle topic (Ctrl-C to stop)')
    .option('--type <types...>', 'only these event types')
    .option('--container <containerId>', 'only events of this container')
    .option('--count <n>', 'stop after this many events', integer(1, 1_000_000))
    .option('--timeout <duration>', 'stop after this long without an event, e.g. 30s')
    .action(
      async (options: {
        type?: string[];
        container?: string;
        count?: number;
        timeout?: string;
      }) => {
        ctx.config();
        const idleMs = options.timeout ? parseDuration(options.timeout, '--timeout') : undefined;
        await withMessaging(ctx, async ({ sqs, sns }, resources) => {
          const subscription = await EventSubscription.open({
            sqs,
            sns,
            topicArn: resources.topicArn,
          });
          let closed = false;
          const close = async () => {
            if (closed) return;
            closed = true;
            await subscription.close();
          };
          process.once('SIGINT', () => void close().then(() => process.exit(0)));
          // On stderr, so that standard output carries only events.
          process.stderr.write(`berth: following ${resources.topicArn} (Ctrl-C to stop)\n`);
          let seen = 0;
          let lastEventAt = Date.now();
          try {
            while (!closed) {
              const event = await subscription.next(5_000);
              if (!event) {
                if (idleMs !== undefined && Date.now() - lastEventAt >= idleMs) break;
                continue;
              }
              lastEventAt = Date.now();
              if (options.type && !options.type.includes(event.type)) continue;
              if (options.container && event.containerId !== options.container) continue;
              process.stdout.write(
                ctx.globals().json
                  ? `${JSON.stringify(event)}\n`
                  : `${[event.occurredAt, event.type.padEnd(22), event.containerId ?? '-', event.sessionId ?? '', typeof event.payload.reason === 'string' ? event.payload.reason : ''].join('  ').trimEnd()}\n`,
              );
              seen += 1;
              if (options.count !== undefined && seen >= options.count) break;
            }
          } finally {
            await close();
          }
        });
      },
    );
}
