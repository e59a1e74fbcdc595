import { assertContainerKey } from '@berth/domain';
import type { Command } from 'commander';
import { idPart } from '../arguments.ts';
import type { CliContext } from '../context.ts';

export function registerPrewarm(program: Command, ctx: CliContext): void {
  program
    .command('prewarm')
    .description(
      'hint that a discover of a (client, project, user) follows soon: finds, claims (warm pool) or starts its container without waiting',
    )
    .argument('<clientId>', 'client id', idPart('clientId'))
    .argument('<projectId>', 'project id', idPart('projectId'))
    .argument('<userId>', 'user id', idPart('userId'))
    .action(async (clientId: string, projectId: string, userId: string) => {
      const key = assertContainerKey({ clientId, projectId, userId });
      const { body } = await ctx
        .api()
        .request<{ containerId: string }>('POST', '/v1/containers/prewarm', key);
      ctx
        .out()
        .print(
          body,
          () =>
            `prewarming ${body.containerId}: a discover finds it (or waits for it) when it is needed`,
        );
    });
}
