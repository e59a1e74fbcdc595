/**
 * `npm run bench:discovery`: autocannon against the discovery service on the local stack,
 * for a cached container and for a store hit, next to a Fastify hello-world measured in the
 * same run. Goal (issue 2): a cached discover at 50 % or more of the hello-world's throughput.
 *
 * Each discovery variant is `apps/discovery/src/main.ts` started by this script with the
 * stack's environment and its own BERTH_CACHE_TTL and port, so every variant is a separate
 * process exactly like the stack's own discovery service, against the same DynamoDB Local,
 * fauxqs and local runtime.
 */
import { DISCOVERY_SUBSCRIPTION_PREFIX } from '@berth/messaging';
import autocannon, { type Result } from 'autocannon';
import { DEFAULT_TABLES } from '@berth/domain';
import { DynamoStateStore } from '@berth/dynamodb';
import { mintToken } from '@berth/platform';
import { freePort } from '@berth/testing';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { RunningStack } from '../stack/harness.ts';
import {
  callLogEnv,
  callMark,
  callsSince,
  describeCalls,
  type CallsPerOperation,
} from './calls.ts';
import {
  closedLoop,
  fmt,
  fmtPercent,
  fmtRatio,
  machine,
  processCpuSeconds,
  ratio,
  round,
  runMain,
  say,
  startBenchStack,
  stopBenchStack,
  startChildServer,
  textTable,
  useStackAws,
  type ChildServer,
  type MachineInfo,
  type ProbeFigures,
  UNREACHABLE_RATE_LIMIT,
} from './common.ts';

/** The queue of a discovery process's cache-invalidation feed, by its ARN. */
const isInvalidationFeed = (resource: string) =>
  resource.includes(`:${DISCOVERY_SUBSCRIPTION_PREFIX}`);
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DISCOVERY_MAIN = resolve(ROOT, 'apps/discovery/src/main.ts');
const HELLO_WORLD = fileURLToPath(new URL('./hello-world.ts', import.meta.url));

export interface LoadFigures {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  requests: number;
  non2xx: number;
  errors: number;
  /** CPU time the server process spent per request (user + system), in microseconds. */
  cpuMicrosPerRequest?: number;
  /** Answers other than 2xx, by status code. */
  otherStatuses?: Record<string, number>;
  /** For discovery: how many answers came from each `source`, read from its /metrics. */
  sources?: Record<string, number>;
}

export interface DiscoveryTarget {
  name: string;
  description: string;
  /** Medians over the rounds; `sources` summed over them. */
  figures: LoadFigures;
  /** Requests per second in each round, in round order. */
  rounds: number[];
  /** Median over the rounds of (this target's figure / the hello-world's in the same round). */
  throughputRatio: number;
  p50Ratio: number;
  p99Ratio: number;
  /**
   * The hello-world's CPU per request divided by this target's: the share of the
   * hello-world's throughput it would reach where the server process is what limits both.
   */
  cpuCapacityRatio: number;
  /** SDK calls per request during the measured rounds, by engine (the recorder's log). */
  calls?: CallsPerOperation;
}

export interface DiscoveryBenchResult {
  benchmark: 'discovery';
  date: string;
  machine: MachineInfo;
  settings: {
    connections: number;
    rounds: number;
    secondsPerRound: number;
    warmupSeconds: number;
  };
  /** The hello-world: medians over the rounds. */
  baseline: LoadFigures;
  baselineRounds: number[];
  targets: DiscoveryTarget[];
  /**
   * What a store hit is made of, called from this process with as many in flight as
   * autocannon's connections: one consistent DynamoDB GetItem (its only call).
   */
  storeHitParts: { name: string; figures: ProbeFigures }[];
  goal: {
    description: string;
    threshold: number;
    /** Measured throughput ratio (median of per-round ratios). */
    ratio: number;
    met: boolean;
    /** The same goal judged by CPU per request, which the machine's load disturbs less. */
    cpuRatio: number;
    metByCpu: boolean;
  };
  machineAfter: MachineInfo;
}

export interface DiscoveryBenchOptions {
  connections?: number;
  rounds?: number;
  secondsPerRound?: number;
  warmupSeconds?: number;
  /** Progress lines; silent when absent. */
  progress?: (line: string) => void;
}

const KEY = { clientId: 'bench', projectId: 'website', userId: 'alice' };

function figuresOf(result: Result): LoadFigures {
  return {
    requestsPerSecond: round(result.requests.average, 1),
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    meanMs: round(result.latency.average),
    requests: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    otherStatuses: Object.fromEntries(
      Object.entries(result.statusCodeStats)
        .filter(([status]) => !status.startsWith('2'))
        .map(([status, { count }]) => [status, Number(count)]),
    ),
  };
}

/** berth_discoveries_total by source, from Prometheus text. */
async function discoveriesBySource(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const match of text.matchAll(/^berth_discoveries_total\{([^}]*)\} (\d+)/gm)) {
    const source = /source="([^"]+)"/.exec(match[1] ?? '')?.[1];
    if (source !== undefined) counts[source] = Number(match[2]);
  }
  return counts;
}

function difference(
  after: Record<string, number>,
  before: Record<string, number>,
): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after)
      .map(([source, count]) => [source, count - (before[source] ?? 0)] as const)
      .filter(([, count]) => count > 0),
  );
}

async function startDiscovery(
  stack: RunningStack,
  secret: string,
  cacheTtl: string,
  logLevel: string,
  name: string,
  callLog: string,
): Promise<ChildServer> {
  const port = await freePort();
  return startChildServer({
    entry: DISCOVERY_MAIN,
    env: {
      ...stack.env,
      ...callLogEnv(callLog),
      BERTH_HTTP_PORT: String(port),
      BERTH_AUTH_SECRET: secret,
      BERTH_RUNTIME: 'local',
      BERTH_CACHE_TTL: cacheTtl,
      BERTH_LOG_LEVEL: logLevel,
      BERTH_RATE_LIMIT: UNREACHABLE_RATE_LIMIT,
    },
    port,
    logFile: join(stack.dataDir, 'logs', `bench-${name}.log`),
    readyPath: '/readyz',
  });
}

interface Target {
  name: string;
  description: string;
  url: string;
  request: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string };
  server: ChildServer;
  metrics: boolean;
  /** The service's AWS call log, for calls per request. */
  callLog?: string;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? Number.NaN)
    : ((sorted[middle - 1] ?? Number.NaN) + (sorted[middle] ?? Number.NaN)) / 2;
};

function medianFigures(runs: LoadFigures[]): LoadFigures {
  const pick = (field: 'requestsPerSecond' | 'p50Ms' | 'p99Ms' | 'meanMs') =>
    round(median(runs.map((run) => run[field])), 1);
  const sum = (field: 'requests' | 'non2xx' | 'errors') =>
    runs.reduce((total, run) => total + run[field], 0);
  return {
    requestsPerSecond: pick('requestsPerSecond'),
    p50Ms: pick('p50Ms'),
    p99Ms: pick('p99Ms'),
    meanMs: pick('meanMs'),
    requests: sum('requests'),
    non2xx: sum('non2xx'),
    errors: sum('errors'),
    otherStatuses: runs.reduce<Record<string, number>>((total, run) => {
      for (const [status, count] of Object.entries(run.otherStatuses ?? {}))
        total[status] = (total[status] ?? 0) + count;
      return total;
    }, {}),
  };
}

/**
 * Every target is started up front and measured in short rounds, all targets once per round
 * in a rotating order, so a change in the machine's load hits baseline and subjects alike;
 * each ratio is taken within a round, then the median over rounds is reported.
 */
export async function runDiscoveryBenchmark(
  options: DiscoveryBenchOptions = {},
): Promise<DiscoveryBenchResult> {
  const connections = options.connections ?? Number(process.env.BENCH_CONNECTIONS ?? '20');
  const rounds = options.rounds ?? Number(process.env.BENCH_ROUNDS ?? '5');
  const secondsPerRound = options.secondsPerRound ?? Number(process.env.BENCH_DURATION ?? '3');
  const warmupSeconds = options.warmupSeconds ?? 2;
  const progress = options.progress ?? (() => {});
  const before = machine();

  progress('discovery benchmark: starting the local stack');
  // One user makes every request here, so the per-(client, user) rate limit is set out of
  // reach: the limiter still runs on every request, it just never refuses one.
  const stack = await startBenchStack({
    BERTH_IDLE_TIMEOUT: '1h',
    BERTH_LOG_LEVEL: 'warn',
    BERTH_RATE_LIMIT: UNREACHABLE_RATE_LIMIT,
  });
  const servers: ChildServer[] = [];
  try {
    const secret = readFileSync(join(stack.dataDir, 'auth-secret'), 'utf8').trim();
    const token = mintToken(secret, { client: KEY.clientId, sub: KEY.userId, role: 'user' });
    const discover = {
      method: 'POST' as const,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(KEY),
    };

    progress('  starting the benchmark container');
    const created = await fetch(`${stack.url}/v1/containers/discover?wait=60`, {
      method: 'POST',
      headers: discover.headers,
      body: discover.body,
    });
    const createdBody = (await created.json()) as {
      container?: {
        status?: string;
        containerId: string;
        taskArn: string | null;
        inputQueueUrl: string | null;
      };
    };
    if (createdBody.container?.status !== 'running') {
      throw new Error(
        `the benchmark container did not start: HTTP ${created.status} ${JSON.stringify(createdBody)}`,
      );
    }
    const container = createdBody.container;

    progress('  starting the hello-world and three discovery services');
    const helloPort = await freePort();
    const hello = await startChildServer({
      entry: HELLO_WORLD,
      env: { BENCH_PORT: String(helloPort) },
      port: helloPort,
      logFile: join(stack.dataDir, 'logs', 'bench-hello-world.log'),
      readyPath: '/',
    });
    servers.push(hello);
    const variants = [
      {
        name: 'discover, cached',
        description: 'the same triple again and again, BERTH_CACHE_TTL=1h, BERTH_LOG_LEVEL=warn',
        cacheTtl: '1h',
        logLevel: 'warn',
      },
      {
        name: 'discover, store hit',
        description:
          // Not 1ms: on a quiet machine a request often came within the millisecond and half
          // the "store hits" were answered by the cache.
          'BERTH_CACHE_TTL=0 (no cache), so every request reads the record from DynamoDB (one consistent GetItem), BERTH_LOG_LEVEL=warn',
        cacheTtl: '0',
        logLevel: 'warn',
      },
      {
        name: 'discover, cached, request logs',
        description:
          'as "cached" with BERTH_LOG_LEVEL=info: pino writes two lines per request to a file',
        cacheTtl: '1h',
        logLevel: 'info',
      },
    ];
    const targets: Target[] = [
      {
        name: 'hello-world',
        description: 'Fastify, GET / -> {"hello":"world"}',
        url: `${hello.url}/`,
        request: { method: 'GET' },
        server: hello,
        metrics: false,
      },
    ];
    for (const [index, variant] of variants.entries()) {
      const callLog = join(stack.dataDir, 'logs', `bench-discovery-${index}-calls.jsonl`);
      const server = await startDiscovery(
        stack,
        secret,
        variant.cacheTtl,
        variant.logLevel,
        `discovery-${index}`,
        callLog,
      );
      servers.push(server);
      targets.push({
        name: variant.name,
        description: variant.description,
        url: `${server.url}/v1/containers/discover`,
        request: discover,
        server,
        metrics: true,
        callLog,
      });
    }

    for (const target of targets) {
      progress(`  warming up ${target.name} (${warmupSeconds} s)`);
      await autocannon({
        url: target.url,
        connections,
        duration: warmupSeconds,
        ...target.request,
      });
    }
    const sourcesBefore = await Promise.all(
      targets.map((target) =>
        target.metrics ? discoveriesBySource(target.server.url) : Promise.resolve({}),
      ),
    );
    const callMarks = targets.map((target) => (target.callLog ? callMark(target.callLog) : 0));
    const runs = targets.map((): LoadFigures[] => []);
    const cpu = targets.map(() => ({ seconds: 0, requests: 0, known: true }));
    for (let roundIndex = 0; roundIndex < rounds; roundIndex += 1) {
      progress(
        `  round ${roundIndex + 1} of ${rounds}: ${secondsPerRound} s per target at ${connections} connections`,
      );
      for (let step = 0; step < targets.length; step += 1) {
        const index = (step + roundIndex) % targets.length;
        const target = targets[index];
        if (!target) continue;
        const cpuBefore = processCpuSeconds(target.server.process.pid);
        const result = await autocannon({
          url: target.url,
          connections,
          duration: secondsPerRound,
          title: target.name,
          ...target.request,
        });
        const cpuAfter = processCpuSeconds(target.server.process.pid);
        runs[index]?.push(figuresOf(result));
        const used = cpu[index];
        if (used && cpuBefore !== undefined && cpuAfter !== undefined) {
          used.seconds += cpuAfter - cpuBefore;
          used.requests += result.requests.total;
        } else if (used) used.known = false;
      }
    }
    const sourcesAfter = await Promise.all(
      targets.map((target) =>
        target.metrics ? discoveriesBySource(target.server.url) : Promise.resolve({}),
      ),
    );

    // The calls of each request; the cache-invalidation feed's long polls (and the heartbeat
    // tag of its queue, `discovery-invalidations-<host>-<pid>`) are not one.
    const requestCalls = targets.map((target, index) =>
      target.callLog
        ? callsSince(
            target.callLog,
            callMarks[index] ?? 0,
            (runs[index] ?? []).reduce((total, run) => total + run.requests, 0),
            (call) => !call.iam.some((check) => isInvalidationFeed(check.resource)),
          )
        : undefined,
    );

    progress('  the parts of a store hit, one by one');
    useStackAws(stack.env);
    const store = new DynamoStateStore({
      ...DEFAULT_TABLES,
    });
    const probeSeconds = secondsPerRound;
    const storeHitParts = [
      {
        name: 'DynamoDB Local GetItem (consistent)',
        figures: await closedLoop(probeSeconds, connections, () =>
          store.getContainer(container.containerId),
        ),
      },
    ];

    const cpuMicros = cpu.map((used) =>
      used.known && used.requests > 0 ? round((used.seconds / used.requests) * 1e6, 1) : Number.NaN,
    );
    const helloRuns = runs[0] ?? [];
    const roundRatio = (
      subject: LoadFigures[],
      field: 'requestsPerSecond' | 'p50Ms' | 'p99Ms',
    ): number =>
      round(
        median(subject.map((run, index) => ratio(run[field], helloRuns[index]?.[field] ?? 0))),
        3,
      );
    const measured: DiscoveryTarget[] = targets.slice(1).map((target, offset) => {
      const index = offset + 1;
      const subject = runs[index] ?? [];
      return {
        name: target.name,
        description: target.description,
        figures: {
          ...medianFigures(subject),
          cpuMicrosPerRequest: cpuMicros[index] ?? Number.NaN,
          sources: difference(sourcesAfter[index] ?? {}, sourcesBefore[index] ?? {}),
        },
        rounds: subject.map((run) => run.requestsPerSecond),
        throughputRatio: roundRatio(subject, 'requestsPerSecond'),
        p50Ratio: roundRatio(subject, 'p50Ms'),
        p99Ratio: roundRatio(subject, 'p99Ms'),
        cpuCapacityRatio: round(
          ratio(cpuMicros[0] ?? Number.NaN, cpuMicros[index] ?? Number.NaN),
          3,
        ),
        ...(requestCalls[index] ? { calls: requestCalls[index] } : {}),
      };
    });
    const goalRatio = measured[0]?.throughputRatio ?? Number.NaN;
    const goalCpuRatio = measured[0]?.cpuCapacityRatio ?? Number.NaN;
    return {
      benchmark: 'discovery',
      date: new Date().toISOString(),
      machine: before,
      settings: { connections, rounds, secondsPerRound, warmupSeconds },
      baseline: { ...medianFigures(helloRuns), cpuMicrosPerRequest: cpuMicros[0] ?? Number.NaN },
      baselineRounds: helloRuns.map((run) => run.requestsPerSecond),
      targets: measured,
      storeHitParts,
      goal: {
        description: 'a cached discover at 50 % or more of the hello-world throughput',
        threshold: 0.5,
        ratio: goalRatio,
        met: goalRatio >= 0.5,
        cpuRatio: goalCpuRatio,
        metByCpu: goalCpuRatio >= 0.5,
      },
      machineAfter: machine(),
    };
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
    await stopBenchStack(stack);
  }
}

export function renderDiscovery(result: DiscoveryBenchResult): string {
  const row = (name: string, figures: LoadFigures, ratios?: DiscoveryTarget) => [
    name,
    figures.requestsPerSecond,
    figures.p50Ms,
    figures.p99Ms,
    figures.meanMs,
    figures.non2xx + figures.errors,
    figures.cpuMicrosPerRequest ?? Number.NaN,
    ratios ? fmtRatio(ratios.cpuCapacityRatio) : '1.00x',
    ratios ? fmtRatio(ratios.throughputRatio) : '1.00x',
    ratios ? fmtRatio(ratios.p50Ratio) : '1.00x',
    ratios ? fmtRatio(ratios.p99Ratio) : '1.00x',
    (ratios?.rounds ?? result.baselineRounds).map((value) => fmt(value, 0)).join(' '),
    figures.sources
      ? Object.entries(figures.sources)
          .map(([source, count]) => `${source} ${count}`)
          .join(', ')
      : '',
  ];
  const table = textTable(
    [
      'target',
      'req/s',
      'p50 ms',
      'p99 ms',
      'mean ms',
      'failed',
      'CPU us/req',
      'capacity vs hello (CPU)',
      'req/s vs hello',
      'p50 vs hello',
      'p99 vs hello',
      'req/s by round',
      'answers by source',
    ],
    [
      row('hello-world (the baseline)', result.baseline),
      ...result.targets.map((target) => row(target.name, target.figures, target)),
    ],
  );
  const parts = textTable(
    ['part of a store hit', 'ops/s', 'p50 ms', 'p99 ms', 'mean ms', 'failed'],
    result.storeHitParts.map(({ name, figures }) => [
      name,
      figures.opsPerSecond,
      figures.p50Ms,
      figures.p99Ms,
      figures.meanMs,
      figures.failures,
    ]),
  );
  const calls = result.targets.map((target) => `  ${target.name}: ${describeCalls(target.calls)}`);
  return [
    `discovery: ${result.settings.connections} connections, ${result.settings.rounds} rounds of ${result.settings.secondsPerRound} s per target, interleaved (after ${result.settings.warmupSeconds} s of warm-up); medians over rounds, ratios taken within each round`,
    table,
    '',
    'AWS SDK calls per request, by engine, counted by the call recorder (BERTH_AWS_CALL_LOG):',
    ...calls,
    '',
    `what a store hit calls (one consistent GetItem), ${result.settings.connections} in flight:`,
    parts,
    '',
    `goal: ${result.goal.description}: measured throughput ${fmtPercent(result.goal.ratio)} -> ${result.goal.met ? 'met' : 'NOT met'}; by CPU per request ${fmtPercent(result.goal.cpuRatio)} -> ${result.goal.metByCpu ? 'met' : 'NOT met'}`,
    `load average before ${result.machine.loadAverage.map((value) => fmt(value, 2)).join(' ')}, after ${result.machineAfter.loadAverage.map((value) => fmt(value, 2)).join(' ')} on ${result.machine.cpuCount} CPUs`,
  ].join('\n');
}

if (import.meta.main) {
  await runMain('bench:discovery', () => runDiscoveryBenchmark({ progress: say }), renderDiscovery);
}
