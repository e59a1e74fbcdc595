import type { BerthEvent, GenerationJson, UsageRow } from '@berth/domain';
import type { Command } from 'commander';
import { idPart, integer, opaqueId } from '../arguments.ts';
import type { CliContext } from '../context.ts';
import { table } from '../output.ts';

const dash = (value: string | number | null | undefined): string =>
  value === null || value === undefined || value === '' ? '-' : String(value);

/**
 * The lifecycle history (issue 18): `history` lists kept events (`GET /v1/events`),
 * `containers history` a container's generations, `usage` container-hours and sessions per day.
 */
export function registerHistory(program: Command, ctx: CliContext): void {
  program
    .command('history')
    .description('lifecycle events kept in the history, newest first (GET /v1/events)')
    .option('--container <containerId>', "only this container's events")
    .option('--session <sessionId>', "only this session's events", opaqueId('sessionId'))
    .option('--client <clientId>', "only this client's events", idPart('clientId'))
    .option('--since <instant>', 'only events at or after this ISO-8601 instant')
    .option('--type <type>', 'an event type, or a family such as container.*')
    .option('--limit <n>', 'at most this many (1-100)', integer(1, 100))
    .option('--cursor <cursor>', 'continue from a previous page')
    .action(
      async (options: {
        container?: string;
        session?: string;
        client?: string;
        since?: string;
        type?: string;
        limit?: number;
        cursor?: string;
      }) => {
        const params = new URLSearchParams();
        if (options.container) params.set('containerId', options.container);
        if (options.session) params.set('sessionId', options.session);
        if (options.client) params.set('clientId', options.client);
        if (options.since) params.set('since', options.since);
        if (options.type) params.set('type', options.type);
        if (options.limit) params.set('limit', String(options.limit));
        if (options.cursor) params.set('cursor', options.cursor);
        const { body } = await ctx.api().request<{
          events: BerthEvent[];
          nextCursor: string | null;
        }>('GET', `/v1/events?${params.toString()}`);
        ctx.out().print(body, () =>
          body.events.length === 0
            ? 'no events'
            : table(
                ['OCCURRED AT', 'TYPE', 'CONTAINER', 'SESSION', 'COMMAND'],
                body.events.map((event) => [
                  event.occurredAt,
                  event.type,
                  dash(event.containerId),
                  dash(event.sessionId),
                  dash(event.commandId),
                ]),
              ) + (body.nextCursor ? `\nmore: --cursor ${body.nextCursor}` : ''),
        );
      },
    );

  program
    .command('usage')
    .description('container-hours and sessions per client, project and day (GET /v1/usage)')
    .option(
      '--client <clientId>',
      'this client (an admin may leave it out: every client)',
      idPart('clientId'),
    )
    .option('--from <day>', 'first day, YYYY-MM-DD (default: the oldest day kept)')
    .option('--to <day>', 'last day, YYYY-MM-DD (default: today)')
    .action(async (options: { client?: string; from?: string; to?: string }) => {
      const params = new URLSearchParams();
      if (options.client) params.set('clientId', options.client);
      if (options.from) params.set('from', options.from);
      if (options.to) params.set('to', options.to);
      const { body } = await ctx.api().request<{
        from: string;
        to: string;
        days: UsageRow[];
        totals: { containerHours: number; sessions: number; generations: number };
      }>('GET', `/v1/usage?${params.toString()}`);
      ctx.out().print(body, () =>
        [
          body.days.length === 0
            ? `no usage from ${body.from} to ${body.to}`
            : table(
                ['DAY', 'CLIENT', 'PROJECT', 'CONTAINER HOURS', 'SESSIONS', 'GENERATIONS'],
                body.days.map((row) => [
                  row.day,
                  row.clientId,
                  row.projectId,
                  row.containerHours.toFixed(3),
                  String(row.sessions),
                  String(row.generations),
                ]),
              ),
          `total: ${body.totals.containerHours.toFixed(3)} container-hours, ${body.totals.sessions} sessions, ${body.totals.generations} generations`,
        ].join('\n'),
      );
    });
}

/** `containers history <containerId>`: its generations as the history tells them. */
export function registerContainerHistory(containers: Command, ctx: CliContext): void {
  containers
    .command('history')
    .description("a container's generations: started, stopped, why, how long, by whom")
    .argument('<containerId>', 'clientId.projectId.userId')
    .action(async (containerId: string) => {
      const { body } = await ctx.api().request<{
        containerId: string;
        generations: GenerationJson[];
      }>('GET', `/v1/containers/${encodeURIComponent(containerId)}/history`);
      ctx.out().print(body, () =>
        table(
          ['GEN', 'STATUS', 'CREATED', 'STOPPED', 'SECONDS', 'STOP REASON', 'BY COMMAND'],
          body.generations.map((g) => [
            String(g.generation),
            g.status,
            dash(g.createdAt),
            dash(g.stoppedAt),
            dash(g.durationSeconds === null ? null : Math.round(g.durationSeconds)),
            dash(g.stopReason),
            dash(g.stoppedBy?.commandId),
          ]),
        ),
      );
    });
}
