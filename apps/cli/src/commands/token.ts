import { resolve } from 'node:path';
import { parseDuration } from '@berth/domain';
import { localAuthSecret, mintToken } from '@berth/platform';
import { Option, type Command } from 'commander';
import type { CliContext } from '../context.ts';
import { CliError, EXIT } from '../errors.ts';

export function registerToken(program: Command, ctx: CliContext): void {
  program
    .command('token')
    .description('mint a JWT with the local secret ($BERTH_AUTH_SECRET or <data>/auth-secret)')
    .option('--client <clientId>', 'the client claim', 'admin')
    .option('--user <userId>', 'the sub claim (user id)', 'admin')
    .addOption(
      new Option('--role <role>', 'the role claim')
        .choices(['user', 'service', 'admin'])
        .default('admin'),
    )
    .option('--ttl <duration>', 'how long it is valid, e.g. 12h', '12h')
    .action(
      (options: {
        client: string;
        user: string;
        role: 'user' | 'service' | 'admin';
        ttl: string;
      }) => {
        const config = ctx.config();
        let secret: string;
        try {
          secret = localAuthSecret(resolve(config.dataDir), config.authSecret, false);
        } catch (error) {
          throw new CliError((error as Error).message, EXIT.usage);
        }
        const token = mintToken(
          secret,
          { client: options.client, sub: options.user, role: options.role },
          parseDuration(options.ttl, '--ttl'),
        );
        ctx.out().print({ token }, () => token);
      },
    );
}
