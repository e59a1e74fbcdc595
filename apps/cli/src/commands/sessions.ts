import type { SessionJson } from '@berth/domain';
import type { Command } from 'commander';
import { idPart, opaqueId } from '../arguments.ts';
import type { CliContext } from '../context.ts';
import { sendCommand } from '../lifecycle-queue.ts';
import { SESSION_HEADERS, sessionRow, table } from '../output.ts';

export function registerSessions(program: Command, ctx: CliContext): void {
  const sessions = program
    .command('sessions')
    .description('show sessions, and assign, release or touch them');
  sessions
    .command('ls')
    .description("list a container's sessions")
    .argument('<containerId>', 'clientId.projectId.userId')
    .action(async (containerId: string) => {
      const { body } = await ctx.api().request<{
        sessions: SessionJson[];
      }>('GET', `/v1/containers/${encodeURIComponent(containerId)}/sessions`);
      ctx
        .out()
        .print(body, () =>
          body.sessions.length === 0
            ? 'no sessions'
            : table(SESSION_HEADERS, body.sessions.map(sessionRow)),
        );
    });
  sessions
    .command('get')
    .description('show one session')
    .argument('<sessionId>', 'session id', opaqueId('sessionId'))
    .action(async (sessionId: string) => {
      const { body } = await ctx
        .api()
        .request<{ session: SessionJson }>('GET', `/v1/sessions/${encodeURIComponent(sessionId)}`);
      ctx.out().print(body, () => table(SESSION_HEADERS, [sessionRow(body.session)]));
    });
  sessions
    .command('assign')
    .description('send session.assign: put a session into the container of (client, project, user)')
    .argument('<sessionId>', 'session id', opaqueId('sessionId'))
    .argument('<clientId>', 'client id', idPart('clientId'))
    .argument('<projectId>', 'project id', idPart('projectId'))
    .argument('<userId>', 'user id', idPart('userId'))
    .option('--thread <threadId>', 'thread id (default: the session id)', opaqueId('threadId'))
    .option('--wait', 'wait for session.assigned or session.rejected')
    .action(
      async (
        sessionId: string,
        clientId: string,
        projectId: string,
        userId: string,
        options: { thread?: string; wait?: boolean },
      ) => {
        await sendCommand(
          ctx,
          'session.assign',
          {
            sessionId,
            clientId,
            projectId,
            userId,
            ...(options.thread ? { threadId: options.thread } : {}),
          },
          options.wait ? ['session.assigned', 'session.rejected', 'command.rejected'] : undefined,
        );
      },
    );
  for (const [name, type, description] of [
    ['release', 'session.release', 'send session.release: the session leaves its container'],
    [
      'touch',
      'session.touch',
      'send session.touch: record activity so the session does not expire',
    ],
  ] as const) {
    sessions
      .command(name)
      .description(description)
      .argument('<sessionId>', 'session id', opaqueId('sessionId'))
      .option('--wait', 'wait for the resulting event (release only)')
      .action(async (sessionId: string, options: { wait?: boolean }) => {
        await sendCommand(
          ctx,
          type,
          { sessionId },
          options.wait && type === 'session.release'
            ? ['session.released', 'session.expired', 'command.rejected']
            : undefined,
        );
      });
  }
}
