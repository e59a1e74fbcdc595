/**
 * `npm run bench:preview` (issue 19): a static file of a container's dev server, straight from
 * the dev server (the baseline) and through the preview gateway with its cookie, with
 * autocannon in the same run on the same local stack, alternating (direct, gateway, direct,
 * gateway) so the machine's load falls on both alike. Goal: the gateway at 0.5x the direct
 * throughput or better. Then the time from opening a stopped container's preview to the first
 * byte of its page: the container is stopped, and the preview requested again (as the waiting
 * page's reload does, here at once) until the page itself answers.
 *
 * The dev server is the local stack's default (`npm start`'s static server of the workspace);
 * the file is the project's README.md. A short run (about a minute and a half).
 */
import autocannon, { type Result } from 'autocannon';
import type { ContainerJson } from '@berth/domain';
import { STATIC_SITE_COMMAND, type RunningStack } from '../stack/harness.ts';
import {
  fmt,
  fmtRatio,
  machine,
  pollUntil,
  ratio,
  runMain,
  say,
  startBenchStack,
  stopBenchStack,
  summarize,
  textTable,
  UNREACHABLE_RATE_LIMIT,
  type LatencySummary,
  type MachineInfo,
} from './common.ts';

const KEY = { clientId: 'bench', projectId: 'site', userId: 'ann' };
const CONTAINER_ID = `${KEY.clientId}.${KEY.projectId}.${KEY.userId}`;
const FILE = '/README.md';
const CONNECTIONS = 10;
const SECONDS = 8;
const ROUNDS = 3;
const WARM_UP_SECONDS = 2;
const COLD_SAMPLES = 2;
const GOAL = 0.5;

interface Throughput {
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  errors: number;
}

interface PreviewBenchResult {
  startedAt: string;
  machineAtStart: MachineInfo;
  machineAtEnd: MachineInfo;
  connections: number;
  secondsPerRun: number;
  direct: Throughput[];
  gateway: Throughput[];
  /** Median over the rounds of the gateway's requests per second over the direct one's. */
  throughputRatio: number;
  roundRatios: number[];
  /** The gateway's p99 over the direct one's (mean of the rounds' p99). */
  p99Ratio: number;
  goalMet: boolean;
  coldStart: {
    samples: { firstByteMs: number; waitingPages: number }[];
    firstByte: LatencySummary;
  };
}

async function api<T>(stack: RunningStack, method: string, path: string, body?: unknown) {
  const response = await fetch(`${stack.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${stack.adminToken}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} answered ${response.status}: ${text}`);
  return (text ? JSON.parse(text) : {}) as T;
}

const containerOf = async (stack: RunningStack) =>
  (await api<{ container: ContainerJson }>(stack, 'GET', `/v1/containers/${CONTAINER_ID}`))
    .container;

async function load(
  url: string,
  headers: Record<string, string>,
  seconds = SECONDS,
): Promise<Throughput> {
  const result: Result = await autocannon({
    url,
    connections: CONNECTIONS,
    duration: seconds,
    headers,
  });
  return {
    requestsPerSecond: result.requests.average,
    p50Ms: result.latency.p50,
    p99Ms: result.latency.p99,
    non2xx: result.non2xx,
    errors: result.errors,
  };
}

async function run(): Promise<PreviewBenchResult> {
  const startedAt = new Date().toISOString();
  const machineAtStart = machine();
  say('bench:preview: starting the local stack (static dev server per container)');
  const stack = await startBenchStack({
    BERTH_DEV_SERVER_COMMAND: STATIC_SITE_COMMAND,
    BERTH_RATE_LIMIT: UNREACHABLE_RATE_LIMIT,
    BERTH_IDLE_TIMEOUT: '10m',
    BERTH_SHUTDOWN_GRACE: '10s',
  });
  try {
    const discovered = await api<{ previewUrl: string }>(
      stack,
      'POST',
      '/v1/containers/discover?wait=60',
      KEY,
    );
    const devServer = await pollUntil(
      'the dev server to be up',
      async () => {
        const { devServer } = await containerOf(stack);
        return devServer?.state === 'up' && devServer.url ? devServer.url : undefined;
      },
      120_000,
      200,
    );
    // The preview URL's path and token, asked of this stack's gateway.
    const { pathname, search } = new URL(discovered.previewUrl);
    const opened = await fetch(`${stack.previewUrl}${pathname}${search}`, { redirect: 'manual' });
    const cookie = (opened.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    if (opened.status !== 303 || !cookie) {
      throw new Error(`opening the preview URL answered ${opened.status}, no cookie`);
    }
    const viaGateway = `${stack.previewUrl}/p/${CONTAINER_ID}${FILE}`;
    const check = await fetch(viaGateway, { headers: { cookie } });
    if (check.status !== 200) throw new Error(`the gateway answered ${check.status}`);

    // Both paths warmed up first (JIT, connection pools), then measured alternately.
    await load(`${devServer}${FILE}`, {}, WARM_UP_SECONDS);
    await load(viaGateway, { cookie }, WARM_UP_SECONDS);
    const direct: Throughput[] = [];
    const gateway: Throughput[] = [];
    for (let round = 1; round <= ROUNDS; round += 1) {
      say(`bench:preview: round ${round}/${ROUNDS}, direct then through the gateway`);
      direct.push(await load(`${devServer}${FILE}`, {}));
      gateway.push(await load(viaGateway, { cookie }));
    }

    const samples: { firstByteMs: number; waitingPages: number }[] = [];
    for (let sample = 1; sample <= COLD_SAMPLES; sample += 1) {
      say(`bench:preview: stopped container's preview, sample ${sample}/${COLD_SAMPLES}`);
      await api(stack, 'POST', `/v1/containers/${CONTAINER_ID}/stop`, {});
      await pollUntil(
        'the container to stop',
        async () => ((await containerOf(stack)).status === 'stopped' ? true : undefined),
        120_000,
        200,
      );
      const started = performance.now();
      let waitingPages = 0;
      const firstByteMs = await pollUntil(
        'the page of the restarted container',
        async () => {
          const response = await fetch(viaGateway, { headers: { cookie } });
          // The first byte of the page: its status line and headers are in.
          const at = performance.now() - started;
          await response.arrayBuffer();
          if (response.status === 200) return at;
          waitingPages += 1;
          return undefined;
        },
        180_000,
        0,
      );
      samples.push({ firstByteMs, waitingPages });
    }

    const meanP99 = (list: Throughput[]) => list.reduce((sum, t) => sum + t.p99Ms, 0) / list.length;
    // Per round (the two runs of a round share the machine's load of that moment), then the
    // median: the direct baseline alone moves by 2x between rounds on a busy machine.
    const roundRatios = direct.map((d, i) =>
      ratio(gateway[i]?.requestsPerSecond ?? 0, d.requestsPerSecond),
    );
    const throughputRatio = summarize(roundRatios).p50;
    return {
      startedAt,
      machineAtStart,
      machineAtEnd: machine(),
      connections: CONNECTIONS,
      secondsPerRun: SECONDS,
      direct,
      gateway,
      throughputRatio,
      roundRatios,
      p99Ratio: ratio(meanP99(gateway), meanP99(direct)),
      goalMet: throughputRatio >= GOAL,
      coldStart: { samples, firstByte: summarize(samples.map((s) => s.firstByteMs)) },
    };
  } finally {
    await stopBenchStack(stack);
  }
}

function render(result: PreviewBenchResult): string {
  const m = result.machineAtStart;
  const row = (round: number, path: string, run: Throughput) => [
    `${round}`,
    path,
    fmt(run.requestsPerSecond, 0),
    fmt(run.p50Ms),
    fmt(run.p99Ms),
    String(run.non2xx + run.errors),
  ];
  const rows = result.direct.flatMap((direct, index) => {
    const gateway = result.gateway[index];
    return [
      row(index + 1, 'direct (baseline)', direct),
      ...(gateway ? [row(index + 1, 'through the gateway', gateway)] : []),
    ];
  });
  return [
    '## Preview gateway (`npm run bench:preview`, issue 19)',
    '',
    `- Date: ${result.startedAt} (UTC); ${m.cpuCount} × ${m.cpuModel}, ${m.memoryGiB} GiB, Node ${m.node}; load average at the start ${m.loadAverage.join(' / ')}, at the end ${result.machineAtEnd.loadAverage.join(' / ')} (the machine is shared: absolute figures move with its load, the ratio less)`,
    `- \`${FILE}\` of a container's dev server (the local stack's static server), autocannon ${result.connections} connections × ${result.secondsPerRun} s per run, after a ${WARM_UP_SECONDS} s warm-up of each, direct and through the gateway alternately`,
    '',
    textTable(['round', 'path', 'req/s', 'p50 ms', 'p99 ms', 'non-2xx + errors'], rows),
    '',
    `Gateway ÷ direct: throughput ${fmtRatio(result.throughputRatio)}, the median of the rounds' ${result.roundRatios.map(fmtRatio).join(', ')} (goal ≥ ${fmtRatio(GOAL)}: ${result.goalMet ? 'met' : 'NOT met'}), p99 ${fmtRatio(result.p99Ratio)}.`,
    '',
    `Opening a stopped container's preview to the first byte of its page (requests repeated at once while the waiting page answers; a browser reloads it every 2 s): ${result.coldStart.samples.map((s) => `${fmt(s.firstByteMs, 0)} ms (${s.waitingPages} waiting page${s.waitingPages === 1 ? '' : 's'})`).join(', ')}; p50 ${fmt(result.coldStart.firstByte.p50, 0)} ms.`,
    '',
  ].join('\n');
}

await runMain('bench:preview', run, render);
