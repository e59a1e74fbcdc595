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
import autocannon, { type Result } from 'autocannon';
import { DynamoStateStore } from '@berth/dynamodb';
import { EcsRuntime, createEcsClient } from '@berth/ecs';
import { SqsContainerQueues, createSqsClient } from '@berth/messaging';
import { mintToken } from '@berth/platform';
import { freePort } from '@berth/testing';
import { readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack, type RunningStack } from '../stack/harness.ts';
import {
  closedLoop,
  fmt,
  fmtPercent,
  fmtRatio,
  machine,
  ratio,
  round,
  runMain,
  say,
  startChildServer,
  textTable,
  useStackAws,
  type ChildServer,
  type MachineInfo,
  type ProbeFigures,
} from './common.ts';

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
  /** For discovery: how many answers came from each `source`, read from its /metrics. */
  sources?: Record<string, number>;
}

export interface DiscoveryTarget {
  name: string;
  description: string;
  figures: LoadFigures;
  /** Requests per second divided by the hello-world's. */
  throughputRatio: number;
  p50Ratio: number;
  p99Ratio: number;
}

export interface DiscoveryBenchResult {
  benchmark: 'discovery';
  date: string;
  machine: MachineInfo;
  settings: { connections: number; durationSeconds: number; warmupSeconds: number };
  /** The hello-world, run first and last; `baseline` is their mean. */
  helloWorldRuns: LoadFigures[];
  baseline: LoadFigures;
  targets: DiscoveryTarget[];
  /**
   * What a store hit is made of, each called from this process with as many in flight as
   * autocannon's connections: DynamoDB GetItem, the runtime's DescribeTasks, SQS
   * GetQueueAttributes (a store hit makes one, one and two of these).
   */
  storeHitParts: { name: string; figures: ProbeFigures }[];
  goal: { description: string; threshold: number; ratio: number; met: boolean };
  machineAfter: MachineInfo;
}

export interface DiscoveryBenchOptions {
  connections?: number;
  durationSeconds?: number;
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
): Promise<ChildServer> {
  const port = await freePort();
  return startChildServer({
    entry: DISCOVERY_MAIN,
    env: {
      ...stack.env,
      BERTH_HTTP_PORT: String(port),
      BERTH_AUTH_SECRET: secret,
      BERTH_RUNTIME: 'local',
      BERTH_CACHE_TTL: cacheTtl,
      BERTH_LOG_LEVEL: logLevel,
    },
    port,
    logFile: join(stack.dataDir, 'logs', `bench-${name}.log`),
    readyPath: '/readyz',
  });
}

export async function runDiscoveryBenchmark(
  options: DiscoveryBenchOptions = {},
): Promise<DiscoveryBenchResult> {
  const connections = options.connections ?? Number(process.env.BENCH_CONNECTIONS ?? '20');
  const durationSeconds = options.durationSeconds ?? Number(process.env.BENCH_DURATION ?? '10');
  const warmupSeconds = options.warmupSeconds ?? 2;
  const progress = options.progress ?? (() => {});
  const before = machine();

  const load = async (
    url: string,
    request: { method: 'GET' | 'POST'; headers?: Record<string, string>; body?: string },
    title: string,
  ) => {
    await autocannon({ url, connections, duration: warmupSeconds, ...request });
    progress(`  ${title}: ${durationSeconds} s at ${connections} connections`);
    return autocannon({ url, connections, duration: durationSeconds, title, ...request });
  };
  const helloWorld = async (): Promise<LoadFigures> => {
    const port = await freePort();
    const server = await startChildServer({
      entry: HELLO_WORLD,
      env: { BENCH_PORT: String(port) },
      port,
      logFile: join(stack.dataDir, 'logs', 'bench-hello-world.log'),
      readyPath: '/',
    });
    try {
      return figuresOf(await load(`${server.url}/`, { method: 'GET' }, 'hello-world'));
    } finally {
      await server.stop();
    }
  };

  progress('discovery benchmark: starting the local stack');
  const stack = await startStack({ BERTH_IDLE_TIMEOUT: '1h', BERTH_LOG_LEVEL: 'warn' });
  try {
    const secret = readFileSync(join(stack.dataDir, 'auth-secret'), 'utf8').trim();
    const token = mintToken(secret, { client: KEY.clientId, sub: KEY.userId, role: 'user' });
    const request = {
      method: 'POST' as const,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(KEY),
    };

    progress('  starting the benchmark container');
    const created = await fetch(`${stack.url}/v1/containers/discover?wait=60`, {
      method: 'POST',
      headers: request.headers,
      body: request.body,
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

    const helloWorldRuns = [await helloWorld()];
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
          'BERTH_CACHE_TTL=1ms, so every request reads DynamoDB and checks the task and its queues, BERTH_LOG_LEVEL=warn',
        cacheTtl: '1ms',
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
    const measured: { variant: (typeof variants)[number]; figures: LoadFigures }[] = [];
    for (const [index, variant] of variants.entries()) {
      const server = await startDiscovery(
        stack,
        secret,
        variant.cacheTtl,
        variant.logLevel,
        `discovery-${index}`,
      );
      try {
        const sourcesBefore = await discoveriesBySource(server.url);
        const result = await load(`${server.url}/v1/containers/discover`, request, variant.name);
        const sources = difference(await discoveriesBySource(server.url), sourcesBefore);
        measured.push({ variant, figures: { ...figuresOf(result), sources } });
      } finally {
        await server.stop();
      }
    }
    helloWorldRuns.push(await helloWorld());

    progress('  the parts of a store hit, one by one');
    useStackAws(stack.env);
    const store = new DynamoStateStore({
      containerTable: 'berth-containers',
      sessionTable: 'berth-sessions',
    });
    const runtime = new EcsRuntime({
      client: createEcsClient({ endpoint: `http://127.0.0.1:${stack.env.BERTH_RUNTIME_PORT}` }),
      cluster: 'berth-local',
      taskDefinition: 'berth-workspace',
      containerName: 'workspace',
      subnets: [],
      securityGroups: [],
      workspaceRoot: join(stack.dataDir, 'workspaces'),
      launchType: undefined,
    });
    const queues = new SqsContainerQueues({ sqs: createSqsClient() });
    const probeSeconds = Math.min(3, durationSeconds);
    const storeHitParts = [
      {
        name: 'DynamoDB Local GetItem (consistent)',
        figures: await closedLoop(probeSeconds, connections, () =>
          store.getContainer(container.containerId),
        ),
      },
      {
        name: 'local runtime DescribeTasks',
        figures: await closedLoop(probeSeconds, connections, () =>
          runtime.describeTask(container.taskArn ?? ''),
        ),
      },
      {
        name: 'fauxqs GetQueueAttributes',
        figures: await closedLoop(probeSeconds, connections, () =>
          queues.exists(container.inputQueueUrl ?? ''),
        ),
      },
    ];

    const mean = (pick: (figures: LoadFigures) => number) =>
      round(helloWorldRuns.reduce((total, run) => total + pick(run), 0) / helloWorldRuns.length, 1);
    const baseline: LoadFigures = {
      requestsPerSecond: mean((run) => run.requestsPerSecond),
      p50Ms: mean((run) => run.p50Ms),
      p99Ms: mean((run) => run.p99Ms),
      meanMs: mean((run) => run.meanMs),
      requests: helloWorldRuns.reduce((total, run) => total + run.requests, 0),
      non2xx: helloWorldRuns.reduce((total, run) => total + run.non2xx, 0),
      errors: helloWorldRuns.reduce((total, run) => total + run.errors, 0),
    };
    const targets: DiscoveryTarget[] = measured.map(({ variant, figures }) => ({
      name: variant.name,
      description: variant.description,
      figures,
      throughputRatio: round(ratio(figures.requestsPerSecond, baseline.requestsPerSecond), 3),
      p50Ratio: round(ratio(figures.p50Ms, baseline.p50Ms), 2),
      p99Ratio: round(ratio(figures.p99Ms, baseline.p99Ms), 2),
    }));
    const cached = targets[0];
    const goalRatio = cached?.throughputRatio ?? Number.NaN;
    return {
      benchmark: 'discovery',
      date: new Date().toISOString(),
      machine: before,
      settings: { connections, durationSeconds, warmupSeconds },
      helloWorldRuns,
      baseline,
      targets,
      storeHitParts,
      goal: {
        description: 'a cached discover at 50 % or more of the hello-world throughput',
        threshold: 0.5,
        ratio: goalRatio,
        met: goalRatio >= 0.5,
      },
      machineAfter: machine(),
    };
  } finally {
    await stack.stop();
    rmSync(stack.dataDir, { recursive: true, force: true });
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
    ratios ? fmtRatio(ratios.throughputRatio) : '1.00x',
    ratios ? fmtRatio(ratios.p50Ratio) : '1.00x',
    ratios ? fmtRatio(ratios.p99Ratio) : '1.00x',
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
      'req/s vs hello',
      'p50 vs hello',
      'p99 vs hello',
      'answers by source',
    ],
    [
      ...result.helloWorldRuns.map((run, index) => row(`hello-world (run ${index + 1})`, run)),
      row('hello-world (mean, the baseline)', result.baseline),
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
  return [
    `discovery: ${result.settings.connections} connections, ${result.settings.durationSeconds} s per target (after ${result.settings.warmupSeconds} s of warm-up)`,
    table,
    '',
    `what a store hit calls (GetItem once, DescribeTasks once, GetQueueAttributes twice), ${result.settings.connections} in flight:`,
    parts,
    '',
    `goal: ${result.goal.description}: ${fmtPercent(result.goal.ratio)} -> ${result.goal.met ? 'met' : 'NOT met'}`,
    `load average before ${result.machine.loadAverage.map((value) => fmt(value, 2)).join(' ')}, after ${result.machineAfter.loadAverage.map((value) => fmt(value, 2)).join(' ')} on ${result.machine.cpuCount} CPUs`,
  ].join('\n');
}

if (import.meta.main) {
  await runMain('bench:discovery', () => runDiscoveryBenchmark({ progress: say }), renderDiscovery);
}
