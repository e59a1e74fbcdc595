import type { Command } from 'commander';
import { registerContainers } from './commands/containers.ts';
import { registerDiscover } from './commands/discover.ts';
import { registerPrewarm } from './commands/prewarm.ts';
import { registerEvents } from './commands/events.ts';
import { registerHistory } from './commands/history.ts';
import { registerMessages } from './commands/messages.ts';
import { registerPolicy } from './commands/policy.ts';
import { registerSend } from './commands/send.ts';
import { registerSessions } from './commands/sessions.ts';
import { registerToken } from './commands/token.ts';
import { registerWebhook } from './commands/webhook.ts';
import { cliContext } from './context.ts';
import { exitOnKnownError } from './errors.ts';

export { EXIT } from './errors.ts';

/** The `berth` program: global options, then one command group per file under commands/. */
export async function runCli(program: Command, argv: string[]): Promise<void> {
  program
    .name('berth')
    .description('Manage berth workspace containers: one per (client, project, user).')
    .option(
      '--url <url>',
      'discovery URL (default: $BERTH_URL, the running local stack, or http://127.0.0.1:$BERTH_HTTP_PORT)',
    )
    .option('--token <jwt>', 'bearer token (default: $BERTH_TOKEN or the local stack admin token)')
    .option('--json', 'machine-readable JSON output')
    .option('--verbose', 'say which berth is used and where each setting came from (on stderr)')
    .showHelpAfterError()
    .exitOverride();

  const ctx = cliContext(program);
  registerDiscover(program, ctx);
  registerPrewarm(program, ctx);
  registerContainers(program, ctx);
  registerSessions(program, ctx);
  registerMessages(program, ctx);
  registerSend(program, ctx);
  registerEvents(program, ctx);
  registerHistory(program, ctx);
  registerToken(program, ctx);
  registerPolicy(program, ctx);
  registerWebhook(program, ctx);

  try {
    await program.parseAsync(argv);
  } catch (error) {
    exitOnKnownError(error);
    throw error;
  }
}
