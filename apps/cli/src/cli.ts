import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  COMMAND_TYPES,
  ConfigError,
  assertContainerKey,
  assertIdPart,
  assertOpaqueId,
  loadConfig,
  parseCommand,
  parseDuration,
  type BerthConfig,
  type ContainerJson,
  type SessionJson,
} from '@berth/domain';
import {
  CommandSender,
  EventSubscription,
  createSnsClient,
  createSqsClient,
  resolveMessaging,
} from '@berth/messaging';
import { localAuthSecret, mintToken } from '@berth/platform';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { ApiError, apiClient } from './http.ts';
import {
  CONTAINER_HEADERS,
  SESSION_HEADERS,
  containerLines,
  containerRow,
  output,
  sessionRow,
  table,
} from './output.ts';

export const EXIT = {
  ok: 0,
  failure: 1,
  usage: 2,
  notFound: 3,
  auth: 4,
  unavailable: 5,
  conflict: 6,
} as const;

class CliError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode: number) {
    super(message);
    this.exitCode = exitCode;
  }
}

function exitCodeFor(error: ApiError): number {
  if (error.status === 400 || error.status === 413) return EXIT.usage;
  if (error.status === 404) return EXIT.notFound;
  if (error.status === 401 || error.status === 403) return EXIT.auth;
  if (error.status === 409) return EXIT.conflict;
  if (error.status === 0 || error.status >= 500 || error.status === 429) return EXIT.unavailable;
  return EXIT.failure;
}

/** Wraps commander's parsers so a bad argument names itself and exits with 2. */
const idPart = (field: string) => (value: string) => {
  try {
    return assertIdPart(field, value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};
const opaqueId = (field: string) => (value: string) => {
  try {
    return assertOpaqueId(field, value);
  } catch (error) {
    throw new InvalidArgumentError((error as Error).message);
  }
};
const integer = (min: number, max: number) => (value: string) => {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max)
    throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}`);
  return n;
};

interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
}

function configFromEnv(): BerthConfig {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(error.message, EXIT.usage);
    throw error;
  }
}

function tokenFor(options: GlobalOptions, config: BerthConfig): string | undefined {
  if (options.token) return options.token;
  if (process.env.BERTH_TOKEN) return process.env.BERTH_TOKEN;
  try {
    return readFileSync(resolve(config.dataDir, 'admin-token'), 'utf8').trim();
  } catch {
    return undefined;
  }
}

export async function runCli(program: Command, argv: string[]): Promise<void> {
  program
    .name('berth')
    .description('Manage berth workspace containers: one per (client, project, user).')
    .option(
      '--url <url>',
      'discovery URL (default: $BERTH_URL or http://127.0.0.1:$BERTH_HTTP_PORT)',
    )
    .option('--token <jwt>', 'bearer token (default: $BERTH_TOKEN or the local stack admin token)')
    .option('--json', 'machine-readable JSON output')
    .showHelpAfterError()
    .exitOverride();

  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  const api = () => {
    const config = configFromEnv();
    const options = globals();
    const url = options.url ?? process.env.BERTH_URL ?? `http://127.0.0.1:${config.httpPort}`;
    return apiClient(url, tokenFor(options, config));
  };
  const out = () => output(Boolean(globals().json));

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
        const { status, body } = await api().request<{ container: ContainerJson; source: string }>(
          'POST',
          `/v1/containers/discover${query}`,
          key,
        );
        out().print(
          body,
          () =>
            `${status === 201 ? 'started' : 'found'} (source: ${body.source})\n${containerLines(body.container)}`,
        );
      },
    );

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
        const { body } = await api().request<{
          containers: ContainerJson[];
          nextCursor: string | null;
        }>('GET', `/v1/containers?${params.toString()}`);
        out().print(body, () =>
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
      const { body } = await api().request<{ container: ContainerJson }>(
        'GET',
        `/v1/containers/${encodeURIComponent(containerId)}`,
      );
      out().print(body, () => containerLines(body.container));
    });
  containers
    .command('stop')
    .description('stop a container gracefully (its workspace is saved first)')
    .argument('<containerId>', 'clientId.projectId.userId')
    .option('--reason <text>', 'why, recorded in the stop reason')
    .action(async (containerId: string, options: { reason?: string }) => {
      const { body } = await api().request<{ container: ContainerJson }>(
        'POST',
        `/v1/containers/${encodeURIComponent(containerId)}/stop`,
        options.reason ? { reason: options.reason } : {},
      );
      out().print(body, () => `stopping\n${containerLines(body.container)}`);
    });

  const sessions = program
    .command('sessions')
    .description('show sessions, and assign, release or touch them');
  sessions
    .command('ls')
    .description("list a container's sessions")
    .argument('<containerId>', 'clientId.projectId.userId')
    .action(async (containerId: string) => {
      const { body } = await api().request<{ sessions: SessionJson[] }>(
        'GET',
        `/v1/containers/${encodeURIComponent(containerId)}/sessions`,
      );
      out().print(body, () =>
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
      const { body } = await api().request<{ session: SessionJson }>(
        'GET',
        `/v1/sessions/${encodeURIComponent(sessionId)}`,
      );
      out().print(body, () => table(SESSION_HEADERS, [sessionRow(body.session)]));
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
          type,
          { sessionId },
          options.wait && type === 'session.release'
            ? ['session.released', 'session.expired', 'command.rejected']
            : undefined,
        );
      });
  }

  const sendCommand = async (
    type: string,
    payload: Record<string, unknown>,
    waitFor?: string[],
  ): Promise<void> => {
    configFromEnv();
    const sqs = createSqsClient();
    const sns = createSnsClient();
    try {
      const messaging = await resolveMessaging({ sqs, sns });
      const commandId = randomUUID();
      const body = { type, commandId, payload };
      const parsed = parseCommand(JSON.stringify(body));
      if (!parsed.ok) throw new CliError(`invalid ${type}: ${parsed.rejection.reason}`, EXIT.usage);
      const subscription = waitFor
        ? await EventSubscription.open({ sqs, sns, topicArn: messaging.topicArn })
        : undefined;
      try {
        const { messageId } = await new CommandSender({
          sqs,
          queueUrl: messaging.lifecycleCommandsUrl,
        }).send(body);
        if (!subscription) {
          out().print({ commandId, messageId }, () => `sent ${type} (commandId ${commandId})`);
          return;
        }
        const event = await subscription.waitFor(
          (e) => e.commandId === commandId && (waitFor ?? []).includes(e.type),
          60_000,
        );
        out().print(event, () => `${event.type}: ${JSON.stringify(event.payload)}`);
        if (event.type.endsWith('rejected')) process.exitCode = EXIT.conflict;
      } finally {
        await subscription?.close();
      }
    } finally {
      sqs.destroy();
      sns.destroy();
    }
  };

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
      await sendCommand(type, payload as Record<string, unknown>);
    });

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
        configFromEnv();
        const idleMs = options.timeout ? parseDuration(options.timeout, '--timeout') : undefined;
        const sqs = createSqsClient();
        const sns = createSnsClient();
        const messaging = await resolveMessaging({ sqs, sns });
        const subscription = await EventSubscription.open({
          sqs,
          sns,
          topicArn: messaging.topicArn,
        });
        let closed = false;
        const close = async () => {
          if (closed) return;
          closed = true;
          await subscription.close();
          sqs.destroy();
          sns.destroy();
        };
        process.once('SIGINT', () => void close().then(() => process.exit(0)));
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
              globals().json
                ? `${JSON.stringify(event)}\n`
                : `${[event.occurredAt, event.type.padEnd(22), event.containerId ?? '-', event.sessionId ?? '', typeof event.payload.reason === 'string' ? event.payload.reason : ''].join('  ').trimEnd()}\n`,
            );
            seen += 1;
            if (options.count !== undefined && seen >= options.count) break;
          }
        } finally {
          await close();
        }
      },
    );

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
        const config = configFromEnv();
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
        out().print({ token }, () => token);
      },
    );

  try {
    await program.parseAsync(argv);
  } catch (error) {
    if (error instanceof ApiError) {
      process.stderr.write(
        `berth: ${error.code}: ${error.message}${error.field ? ` (field ${error.field})` : ''}\n`,
      );
      process.exit(exitCodeFor(error));
    }
    if (error instanceof CliError) {
      process.stderr.write(`berth: ${error.message}\n`);
      process.exit(error.exitCode);
    }
    if (
      error instanceof Error &&
      error.name !== 'CommanderError' &&
      'code' in error &&
      error.code === 'unavailable'
    ) {
      process.stderr.write(`berth: ${error.message}\n`);
      process.exit(EXIT.unavailable);
    }
    if (error instanceof Error && error.name === 'InvalidArgumentError' && 'field' in error) {
      process.stderr.write(`berth: ${error.message}\n`);
      process.exit(EXIT.usage);
    }
    throw error;
  }
}
