import type { PolicyJson } from '@berth/domain';
import type { Command } from 'commander';
import { idPart, integer } from '../arguments.ts';
import type { CliContext } from '../context.ts';

interface StoredPolicyJson {
  clientId: string;
  projectId: string | null;
  policy: PolicyJson;
  updatedAt: string;
}

/** The option of each policy field, as `policy set` takes it and `policy unset` names it. */
const FIELDS = [
  {
    field: 'idleTimeout',
    flag: '--idle-timeout <duration>',
    help: 'stop after idle this long (e.g. 30m)',
  },
  {
    field: 'maxLifetime',
    flag: '--max-lifetime <duration>',
    help: 'stop this long after start, even if busy',
  },
  { field: 'maxSessions', flag: '--max-sessions <n>', help: 'sessions per container', count: true },
  {
    field: 'maxLiveContainersPerUser',
    flag: '--max-live-per-user <n>',
    help: 'live containers of one user (client only)',
    count: true,
  },
  {
    field: 'maxLiveContainersPerClient',
    flag: '--max-live-per-client <n>',
    help: 'live containers of the client (client only)',
    count: true,
  },
  {
    field: 'maxProjectsPerClient',
    flag: '--max-projects <n>',
    help: 'project ids of the client (client only)',
    count: true,
  },
] as const satisfies readonly {
  field: keyof PolicyJson;
  flag: string;
  help: string;
  count?: boolean;
}[];

/** `--max-live-per-user` → `maxLivePerUser`: commander's name for an option's value. */
const optionKey = (flag: string) =>
  (flag.split(' ')[0] ?? '')
    .replace(/^--/, '')
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

function pathOf(clientId: string, projectId: string | undefined): string {
  return `/v1/policies/${encodeURIComponent(clientId)}${projectId ? `/${encodeURIComponent(projectId)}` : ''}`;
}

function policyLines(stored: StoredPolicyJson): string {
  const scope = stored.projectId ? `${stored.clientId}/${stored.projectId}` : stored.clientId;
  const lines = Object.entries(stored.policy).map(
    ([field, value]) => `  ${field}: ${String(value)}`,
  );
  return [
    `policy of ${scope} (updated ${stored.updatedAt})`,
    ...(lines.length ? lines : ['  (empty)']),
  ].join('\n');
}

export function registerPolicy(program: Command, ctx: CliContext): void {
  const policy = program
    .command('policy')
    .description(
      "lifecycle policies and quotas of a client or a project (admin; a client's service token may read)",
    );

  policy
    .command('get')
    .description(
      "show a client's or a project's policy, or with --container a container's effective one",
    )
    .argument('[clientId]', 'the client', idPart('clientId'))
    .argument(
      '[projectId]',
      'the project (its policy overrides the client, field by field)',
      idPart('projectId'),
    )
    .option(
      '--container <containerId>',
      "a container's effective policy and where each value came from",
    )
    .action(
      async (
        clientId: string | undefined,
        projectId: string | undefined,
        options: { container?: string },
      ) => {
        if (options.container) {
          const { body } = await ctx
            .api()
            .request<{ policy: Record<string, { value: unknown; source: string }> }>(
              'GET',
              `/v1/containers/${encodeURIComponent(options.container)}/policy`,
            );
          ctx.out().print(body, () =>
            Object.entries(body.policy)
              .map(
                ([field, v]) =>
                  `${field}: ${v.value === null ? 'none' : JSON.stringify(v.value)} (${v.source})`,
              )
              .join('\n'),
          );
          return;
        }
        if (!clientId) throw new Error('policy get needs a clientId or --container');
        const { body } = await ctx
          .api()
          .request<StoredPolicyJson>('GET', pathOf(clientId, projectId));
        ctx.out().print(body, () => policyLines(body));
      },
    );

  const set = policy
    .command('set')
    .description('set fields of a policy (the others are kept)')
    .argument('<clientId>', 'the client', idPart('clientId'))
    .argument('[projectId]', 'the project', idPart('projectId'));
  for (const spec of FIELDS) {
    if ('count' in spec) set.option(spec.flag, spec.help, integer(1, 1_000_000));
    else set.option(spec.flag, spec.help);
  }
  set.action(
    async (clientId: string, projectId: string | undefined, options: Record<string, unknown>) => {
      const current = await currentPolicy(ctx, clientId, projectId);
      const next: Record<string, unknown> = { ...current };
      for (const spec of FIELDS) {
        const value = options[optionKey(spec.flag)];
        if (value !== undefined) next[spec.field] = value;
      }
      const { body } = await ctx
        .api()
        .request<StoredPolicyJson>('PUT', pathOf(clientId, projectId), next);
      ctx.out().print(body, () => policyLines(body));
    },
  );

  policy
    .command('unset')
    .description('remove fields of a policy, or the whole policy when no field is named')
    .argument('<clientId>', 'the client', idPart('clientId'))
    .argument('[projectId]', 'the project', idPart('projectId'))
    .option('--field <name...>', `fields to remove: ${FIELDS.map((f) => f.field).join(', ')}`)
    .action(
      async (clientId: string, projectId: string | undefined, options: { field?: string[] }) => {
        if (!options.field?.length) {
          await ctx.api().request('DELETE', pathOf(clientId, projectId));
          ctx
            .out()
            .print(
              { clientId, projectId: projectId ?? null, removed: true },
              () => 'policy removed',
            );
          return;
        }
        const current = await currentPolicy(ctx, clientId, projectId);
        for (const field of options.field) delete (current as Record<string, unknown>)[field];
        const { body } = await ctx
          .api()
          .request<StoredPolicyJson>('PUT', pathOf(clientId, projectId), current);
        ctx.out().print(body, () => policyLines(body));
      },
    );
}

async function currentPolicy(
  ctx: CliContext,
  clientId: string,
  projectId: string | undefined,
): Promise<PolicyJson> {
  try {
    const { body } = await ctx.api().request<StoredPolicyJson>('GET', pathOf(clientId, projectId));
    return body.policy;
  } catch (error) {
    if ((error as { status?: number }).status === 404) return {};
    throw error;
  }
}
