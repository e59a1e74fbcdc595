import { randomUUID } from 'node:crypto';
import { COMMAND_TYPES, parseCommand } from '@berth/domain';
import type { Command } from 'commander';
import type { CliContext } from '../context.ts';
import { CliError, EXIT } from '../errors.ts';
import { sendCommand } from '../lifecycle-queue.ts';

export function registerSend(program: Command, ctx: CliContext): void {
  program
    .command('send')
    .description(`send a command to the lifecycle queue (${COMMAND_TYPES.join(', ')})`)
    .argument('<type>', 'command type')
    .argument('<payload>', 'the payload as JSON')
    .option('--command-id <id>', 'command id (default: a new UUID)')
    .action(async (type: string, payloadText: string, options: { commandId?: string }) => {
      let payload: unknown;
      try {
        payload = JSON.parse(payloadText);
      } catch {
        throw new CliError('payload is not valid JSON', EXIT.usage);
      }
      const body = { type, commandId: options.commandId ?? randomUUID(), payload };
      const parsed = parseCommand(JSON.stringify(body));
      if (!parsed.ok) {
        throw new CliError(
          `invalid command: ${parsed.rejection.reason}${parsed.rejection.field ? ` (field ${parsed.rejection.field})` : ''}`,
          EXIT.usage,
        );
      }
      await sendCommand(ctx, type, payload as Record<string, unknown>);
    });
}
