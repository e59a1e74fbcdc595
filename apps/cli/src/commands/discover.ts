import { assertContainerKey, type ContainerJson } from '@berth/domain';
import type { Command } from 'commander';
import { idPart, integer } from '../arguments.ts';
import type { CliContext } from '../context.ts';
import { containerLines } from '../output.ts';

export function registerDiscover(program: Command, ctx: CliContext): void {
  program
    .command('discover')
    .description('find the live container of a (client, project, user), or start one')
    .argument('<clientId>', 'client id', idPart('clientId'))
    .argument('<projectId>', 'project id', idPart('projectId'))
    .argument('<userId>', 'user id', idPart('userId'))
    .option(
      '--wait <seconds>',
      'wait up to this long for the container to be running (0-60)',
      integer(0, 60),
    )
    .action(
      async (clientId: string, projectId: string, userId: string, options: { wait?: number }) => {
        const key = assertContainerKey({ clientId, projectId, userId });
        const query = options.wait !== undefined ? `?wait=${options.wait}` : '';
        const { status, body } = await ctx.api().request<{
          container: ContainerJson;
          source: string;
        }>('POST', `/v1/containers/discover${query}`, key);
        ctx
          .out()
          .print(
            body,
            () =>
              `${status === 201 ? 'started' : 'found'} (source: ${body.source})\n${containerLines(body.container)}`,
          );
      },
    );
}
