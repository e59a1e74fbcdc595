import { parseArgs } from 'node:util';
import { InvalidArgumentError, parseDuration } from '@berth/domain';
import { AGENT_FAULT_KINDS, type AgentFaultKind } from './agent-chaos.ts';
import type { Fault } from './fault-proxy.ts';

export const SERVICES = ['session', 'reaper', 'task-watcher', 'discovery'] as const;
export type ServiceName = (typeof SERVICES)[number];

export const FAULT_TARGETS = ['dynamodb', 'sqs'] as const;
export type FaultTarget = (typeof FAULT_TARGETS)[number];
export const FAULT_KINDS = ['latency', 'reset', 'refuse'] as const;
export type FaultKind = Fault['kind'];

export interface SoakOptions {
  /** How long the load runs (the settle and the checks come after). */
  durationMs: number;
  /** Distinct (client, user) pairs acting at once, one loop each. */
  users: number;
  /** Projects per client; each user works on all of them. */
  projects: number;
  clients: number;
  seed: number;
  /** SIGKILLs of service processes per minute of load; 0 for none. */
  crashesPerMinute: number;
  /** Fault windows per minute of load; 0 for none. */
  faultsPerMinute: number;
  faultLengthMs: number;
  faultKinds: FaultKind[];
  faultTargets: FaultTarget[];
  services: ServiceName[];
  /** Agent kills, runtime kills and git faults per minute of load (agent-chaos.ts); 0 for none. */
  agentFaultsPerMinute: number;
  agentFaultKinds: AgentFaultKind[];
  /** Upper bound for each wait after the load: queues drained, containers stopped. */
  settleTimeoutMs: number;
  /** Pause between one user's actions, drawn from [min, max]. */
  thinkMs: [number, number];
  /** Keep the data directory even when the run passes. */
  keep: boolean;
  /** Known gaps (see KNOWN_GAP_KINDS) fail the run too. */
  strict: boolean;
  /** Print the report as one JSON line at the end (for tests). */
  json: boolean;
  /** Progress lines while running. */
  verbose: boolean;
  /** Settings for the stack: the contract's variables with short timings. */
  stackEnv: Record<string, string>;
}

export const DEFAULT_STACK_ENV: Readonly<Record<string, string>> = {
  BERTH_IDLE_TIMEOUT: '4s',
  BERTH_SWEEP_INTERVAL: '5s',
  BERTH_SHUTDOWN_GRACE: '8s',
  BERTH_REAPER_TICK: '500ms',
  BERTH_SESSION_TTL: '60s',
  BERTH_MAX_SESSIONS: '3',
  BERTH_RATE_LIMIT: '0',
  // A container whose `running` report is lost is failed after this long instead of 5m, so
  // the run settles in bounded time; not much shorter, because a task watcher killed twice in
  // a row delays a report by two visibility timeouts (2 x 30 s).
  BERTH_START_TIMEOUT: '2m',
  BERTH_LOG_LEVEL: 'info',
};

export const USAGE = `npm run soak -- [options]   (each option also as an environment variable)

  --duration <d>        how long the load runs, e.g. 90s, 5m         SOAK_DURATION (2m)
  --users <n>           users acting at once                          SOAK_USERS (6)
  --projects <n>        projects per client                           SOAK_PROJECTS (3)
  --clients <n>         clients (tenants) the users belong to         SOAK_CLIENTS (2)
  --seed <n>            seed of every random choice                   SOAK_SEED (random)
  --crash-rate <n>      SIGKILLs of a service per minute (0: none)    SOAK_CRASH_RATE (3)
  --fault-rate <n>      fault windows per minute (0: none)            SOAK_FAULT_RATE (2)
  --fault-length <d>    length of one fault window                    SOAK_FAULT_LENGTH (5s)
  --fault-kinds <list>  latency,reset,refuse                          SOAK_FAULT_KINDS (all)
  --fault-targets <l>   dynamodb,sqs                                  SOAK_FAULT_TARGETS (both)
  --services <list>     services that may be killed                   SOAK_SERVICES (all four)
  --agent-fault-rate <n>  agent/runtime kills and git faults per minute SOAK_AGENT_FAULT_RATE (0)
  --agent-fault-kinds <l> kill-agent,kill-agent-saving,kill-runtime,   SOAK_AGENT_FAULT_KINDS (all)
                          remote-moved,stale-lock,refuse-pushes
  --step-fault-rate <p> probability that a core side effect (store      SOAK_STEP_FAULT_RATE (0)
                        write, RunTask, StopTask, queue create/delete,
                        publish) fails or kills its service right
                        before or after the step
  --settle-timeout <d>  bound of each wait after the load             SOAK_SETTLE_TIMEOUT (4m)
  --keep                keep the data directory even if the run passes
  --strict              fail on berth's known gaps too (lost events)
  --json                print the report as one JSON line at the end
  --quiet               no progress lines
  --help

Stack settings (BERTH_IDLE_TIMEOUT, ...) are taken from the environment when set, otherwise
short timings are used (idle 4s, sweep 5s, grace 8s, reaper tick 500ms, session TTL 60s,
3 sessions per container, no rate limit, start timeout 2m).`;

function listOf<T extends string>(name: string, raw: string, allowed: readonly T[]): T[] {
  const items = raw
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) {
      throw new InvalidArgumentError(
        `${name} must list only ${allowed.join(', ')}; got "${item}"`,
        name,
      );
    }
  }
  return items as T[];
}

function whole(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min || n > max) {
    throw new InvalidArgumentError(
      `${name} must be a whole number from ${min} to ${max}; got "${raw}"`,
      name,
    );
  }
  return n;
}

function rate(name: string, raw: string): number {
  const n = Number(raw);
  if (!/^\d+(\.\d+)?$/.test(raw) || n > 120) {
    throw new InvalidArgumentError(
      `${name} must be a number from 0 to 120 (per minute); got "${raw}"`,
      name,
    );
  }
  return n;
}

/** Flags win over environment variables, which win over the defaults. */
export function parseSoakOptions(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): SoakOptions | 'help' {
  const { values } = parseArgs({
    args: [...argv],
    options: {
      duration: { type: 'string' },
      users: { type: 'string' },
      projects: { type: 'string' },
      clients: { type: 'string' },
      seed: { type: 'string' },
      'crash-rate': { type: 'string' },
      'fault-rate': { type: 'string' },
      'fault-length': { type: 'string' },
      'fault-kinds': { type: 'string' },
      'fault-targets': { type: 'string' },
      services: { type: 'string' },
      'agent-fault-rate': { type: 'string' },
      'agent-fault-kinds': { type: 'string' },
      'settle-timeout': { type: 'string' },
      'step-fault-rate': { type: 'string' },
      keep: { type: 'boolean' },
      strict: { type: 'boolean' },
      json: { type: 'boolean' },
      quiet: { type: 'boolean' },
      help: { type: 'boolean' },
    },
    strict: true,
    allowPositionals: false,
  });
  if (values.help) return 'help';
  const read = (flag: keyof typeof values, variable: string): string | undefined => {
    const value = values[flag];
    if (typeof value === 'string') return value;
    const fromEnv = env[variable]?.trim();
    return fromEnv === '' ? undefined : fromEnv;
  };
  const stackEnv: Record<string, string> = {};
  for (const [name, fallback] of Object.entries(DEFAULT_STACK_ENV)) {
    stackEnv[name] = env[name]?.trim() || fallback;
  }
  const faultKinds = listOf(
    '--fault-kinds',
    read('fault-kinds', 'SOAK_FAULT_KINDS') ?? FAULT_KINDS.join(','),
    FAULT_KINDS,
  );
  const faultTargets = listOf(
    '--fault-targets',
    read('fault-targets', 'SOAK_FAULT_TARGETS') ?? FAULT_TARGETS.join(','),
    FAULT_TARGETS,
  );
  const services = listOf(
    '--services',
    read('services', 'SOAK_SERVICES') ?? SERVICES.join(','),
    SERVICES,
  );
  const agentFaultKinds = listOf(
    '--agent-fault-kinds',
    read('agent-fault-kinds', 'SOAK_AGENT_FAULT_KINDS') ?? AGENT_FAULT_KINDS.join(','),
    AGENT_FAULT_KINDS,
  );
  const stepFaultRate = read('step-fault-rate', 'SOAK_STEP_FAULT_RATE');
  if (stepFaultRate !== undefined) {
    const probability = Number(stepFaultRate);
    if (!/^\d+(\.\d+)?$/.test(stepFaultRate) || probability > 0.5) {
      throw new InvalidArgumentError(
        `--step-fault-rate must be a probability from 0 to 0.5; got "${stepFaultRate}"`,
        '--step-fault-rate',
      );
    }
    // Every service reads it (libs/platform/src/step-faults.ts).
    stackEnv.BERTH_STEP_FAULT_RATE = stepFaultRate;
  }
  const seedText = read('seed', 'SOAK_SEED');
  return {
    durationMs: parseDuration(read('duration', 'SOAK_DURATION') ?? '2m', '--duration'),
    users: whole('--users', read('users', 'SOAK_USERS') ?? '6', 1, 200),
    projects: whole('--projects', read('projects', 'SOAK_PROJECTS') ?? '3', 1, 50),
    clients: whole('--clients', read('clients', 'SOAK_CLIENTS') ?? '2', 1, 50),
    seed:
      seedText === undefined
        ? Math.floor(Math.random() * 2 ** 31)
        : whole('--seed', seedText, 0, 2 ** 32 - 1),
    crashesPerMinute: rate('--crash-rate', read('crash-rate', 'SOAK_CRASH_RATE') ?? '3'),
    faultsPerMinute: rate('--fault-rate', read('fault-rate', 'SOAK_FAULT_RATE') ?? '2'),
    faultLengthMs: parseDuration(
      read('fault-length', 'SOAK_FAULT_LENGTH') ?? '5s',
      '--fault-length',
    ),
    faultKinds: faultKinds.length > 0 ? faultKinds : [...FAULT_KINDS],
    faultTargets: faultTargets.length > 0 ? faultTargets : [...FAULT_TARGETS],
    services: services.length > 0 ? services : [...SERVICES],
    agentFaultsPerMinute: rate(
      '--agent-fault-rate',
      read('agent-fault-rate', 'SOAK_AGENT_FAULT_RATE') ?? '0',
    ),
    agentFaultKinds: agentFaultKinds.length > 0 ? agentFaultKinds : [...AGENT_FAULT_KINDS],
    settleTimeoutMs: parseDuration(
      read('settle-timeout', 'SOAK_SETTLE_TIMEOUT') ?? '4m',
      '--settle-timeout',
    ),
    thinkMs: [150, 900],
    keep: values.keep ?? false,
    strict: values.strict ?? false,
    json: values.json ?? false,
    verbose: !(values.quiet ?? false),
    stackEnv,
  };
}
