import { readFileSync } from 'node:fs';
import type { DeliveryJson, WebhookJson } from '@berth/domain';
import type { Command } from 'commander';
import { idPart, integer } from '../arguments.ts';
import type { CliContext } from '../context.ts';
import { table } from '../output.ts';

const pathOf = (clientId: string): string => `/v1/webhooks/${encodeURIComponent(clientId)}`;

function webhookLines(hook: WebhookJson): string {
  return [
    `webhook of ${hook.clientId} (updated ${hook.updatedAt})`,
    `  url: ${hook.url}`,
    `  events: ${hook.events.join(', ')}`,
  ].join('\n');
}

/**
 * Signed webhooks (issue 18): `webhook set|get|rm|deliveries`. The secret is read from a file
 * (`--secret-file`, `-` for standard input), never from an argument, which `ps` and the shell's
 * history would show.
 */
export function registerWebhook(program: Command, ctx: CliContext): void {
  const webhook = program
    .command('webhook')
    .description(
      "a client's signed webhook and its deliveries (admin, or the client's service token)",
    );

  webhook
    .command('get')
    .description("show a client's webhook (never its secret)")
    .argument('<clientId>', 'the client', idPart('clientId'))
    .action(async (clientId: string) => {
      const { body } = await ctx.api().request<WebhookJson>('GET', pathOf(clientId));
      ctx.out().print(body, () => webhookLines(body));
    });

  webhook
    .command('set')
    .description('set where lifecycle events are POSTed, which ones, and the signing secret')
    .argument('<clientId>', 'the client', idPart('clientId'))
    .requiredOption(
      '--endpoint <url>',
      'the https URL the events are POSTed to (not --url, which names the berth to talk to)',
    )
    .requiredOption(
      '--event <pattern...>',
      'event types or families: container.*, session.released, * ...',
    )
    .requiredOption(
      '--secret-file <path>',
      'file holding the signing secret (16-256 characters); - reads standard input',
    )
    .action(
      async (
        clientId: string,
        options: { endpoint: string; event: string[]; secretFile: string },
      ) => {
        const secret = readFileSync(
          options.secretFile === '-' ? 0 : options.secretFile,
          'utf8',
        ).replace(/\r?\n$/, '');
        const { body } = await ctx.api().request<WebhookJson>('PUT', pathOf(clientId), {
          url: options.endpoint,
          events: options.event,
          secret,
        });
        ctx.out().print(body, () => webhookLines(body));
      },
    );

  webhook
    .command('rm')
    .description("remove a client's webhook (its queued deliveries are dead-lettered)")
    .argument('<clientId>', 'the client', idPart('clientId'))
    .action(async (clientId: string) => {
      await ctx.api().request('DELETE', pathOf(clientId));
      ctx.out().print({ clientId, removed: true }, () => 'webhook removed');
    });

  webhook
    .command('deliveries')
    .description("a client's webhook deliveries, newest first (pending, delivered, dead)")
    .argument('<clientId>', 'the client', idPart('clientId'))
    .option('--status <status>', 'pending, delivered or dead (the dead letters)')
    .option('--limit <n>', 'at most this many (1-100)', integer(1, 100))
    .option('--cursor <cursor>', 'continue from a previous page')
    .action(
      async (clientId: string, options: { status?: string; limit?: number; cursor?: string }) => {
        const params = new URLSearchParams();
        if (options.status) params.set('status', options.status);
        if (options.limit) params.set('limit', String(options.limit));
        if (options.cursor) params.set('cursor', options.cursor);
        const { body } = await ctx
          .api()
          .request<{ deliveries: DeliveryJson[]; nextCursor: string | null }>(
            'GET',
            `${pathOf(clientId)}/deliveries?${params.toString()}`,
          );
        ctx.out().print(body, () =>
          body.deliveries.length === 0
            ? 'no deliveries'
            : table(
                ['CREATED AT', 'STATUS', 'ATTEMPTS', 'EVENT', 'CONTAINER', 'LAST'],
                body.deliveries.map((d) => [
                  d.createdAt,
                  d.status,
                  String(d.attempts),
                  d.eventType,
                  d.containerId,
                  d.lastError ?? (d.lastStatusCode === null ? '-' : `HTTP ${d.lastStatusCode}`),
                ]),
              ) + (body.nextCursor ? `\nmore: --cursor ${body.nextCursor}` : ''),
        );
      },
    );
}
