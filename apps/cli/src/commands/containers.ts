import type { ContainerJson } from '@berth/domain';
import { Option, type Command } from 'commander';
import { idPart, integer } from '../arguments.ts';
import type { CliContext } from '../context.ts';
import { registerContainerHistory } from './history.ts';
import { CONTAINER_HEADERS, containerLines, containerRow, table } from '../output.ts';

export function registerContainers(program: Command, ctx: CliContext): void {
  const containers = program.command('containers').description('list, show and stop containers');
  containers
    .command('ls')
    .description('list containers')
    .option('--client <clientId>', 'only this client', idPart('clientId'))
    .option('--project <projectId>', 'only this project', idPart('projectId'))
    .option('--user <userId>', 'only this user', idPart('userId'))
    .addOption(
      new Option('--status <status>', 'only this status').choices([
        'starting',
        'running',
        'terminating',
        'stopped',
        'failed',
      ]),
    )
    .option('--limit <n>', 'at most this many (1-100)', integer(1, 100))
    .option('--cursor <cursor>', 'continue from a previous page')
    .action(
      async (options: {
        client?: string;
        project?: string;
        user?: string;
        status?: string;
        limit?: number;
        cursor?: string;
      }) => {
        const params = new URLSearchParams();
        if (options.client) params.set('clientId', options.client);
        if (options.project) params.set('projectId', options.project);
        if (options.user) params.set('userId', options.user);
        if (options.status) params.set('status', options.status);
        if (options.limit) params.set('limit', String(options.limit));
        if (options.cursor) params.set('cursor', options.cursor);
        const { body } = await ctx.api().request<{
          containers: ContainerJson[];
          nextCursor: string | null;
        }>('GET', `/v1/containers?${params.toString()}`);
        ctx
          .out()
          .print(body, () =>
            body.containers.length === 0
              ? 'no containers'
              : table(CONTAINER_HEADERS, body.containers.map(containerRow)) +
                (body.nextCursor ? `\nmore: --cursor ${body.nextCursor}` : ''),
          );
      },
    );
  containers
    .command('get')
    .description('show one container')
    .argument('<containerId>', 'clientId.projectId.userId')
    .action(async (containerId: string) => {
      const { body } = await ctx
        .api()
        .request<{ container: ContainerJson }>(
          'GET',
          `/v1/containers/${encodeURIComponent(containerId)}`,
        );
      ctx.out().print(body, () => containerLines(body.container));
    });
  containers
    .command('stop')
    .description('stop a container gracefully (its workspace is saved first)')
    .argument('<containerId>', 'clientId.projectId.userId')
    .option('--reason <text>', 'why, recorded in the stop reason')
    .action(async (containerId: string, options: { reason?: string }) => {
      const { body } = await ctx
        .api()
        .request<{ container: ContainerJson }>(
          'POST',
          `/v1/containers/${encodeURIComponent(containerId)}/stop`,
          options.reason ? { reason: options.reason } : {},
        );
      ctx.out().print(body, () => `stopping\n${containerLines(body.container)}`);
    });
  registerContainerHistory(containers, ctx);
}
