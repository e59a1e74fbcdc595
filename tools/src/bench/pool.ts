/**
 * `npm run bench:pool` (issue 16): a discover that misses, cold start vs. warm-pool claim, in
 * the same run on the same local stack. Each round waits for a full pool, then discovers a new
 * user (served by the pool), drains the rest of the pool with other new users, and discovers
 * one more new user (cold: the pool is refilled on the reaper's tick, later). Each sample is
 * classified by the `source` its answer gives, never by intent. Measured per sample, from the
 * request: the answer saying `running` (`?wait=60`), and the first answer of the agent on the
 * output queue to a message sent right after (the workspace checked out and the workload run).
 *
 * Part 2 does the same with BERTH_LOCAL_START_DELAY=30s: every agent waits 30 s before it
 * starts, as a Fargate task provisions and pulls its image; a pool member pays it ahead of
 * the claim. Both parts go through the ECS adapter against the local runtime.
 */
import { ReceiveMessageCommand, SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { ContainerJson } from '@berth/domain';
import { DynamoStateStore } from '@berth/dynamodb';
import { createSqsClient } from '@berth/messaging';
import type { RunningStack } from '../stack/harness.ts';
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
  useStackAws,
  UNREACHABLE_RATE_LIMIT,
  type LatencySummary,
  type MachineInfo,
} from './common.ts';

const POOL_SIZE = 2;

interface Sample {
  source: string;
  toRunningMs: number;
  toFirstAnswerMs: number;
}

interface PartResult {
  name: string;
  startDelay: string | undefined;
  rounds: number;
  samples: Sample[];
  cold: { toRunning: LatencySummary; toFirstAnswer: LatencySummary };
  pool: { toRunning: LatencySummary; toFirstAnswer: LatencySummary };
  /** Pool p50 ÷ cold p50, to running. */
  p50Ratio: number;
}

interface PoolBenchResult {
  startedAt: string;
  machineAtStart: MachineInfo;
  machineAtEnd: MachineInfo;
  parts: PartResult[];
}

async function discover(
  stack: RunningStack,
  userId: string,
  wait: boolean,
): Promise<{ status: number; container: ContainerJson; source: string }> {
  const response = await fetch(`${stack.url}/v1/containers/discover${wait ? '?wait=60' : ''}`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${stack.adminToken}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({ clientId: 'bench', projectId: 'pool', userId }),
  });
  const body = (await response.json()) as { container: ContainerJson; source: string };
  if (response.status >= 300) throw new Error(`discover ${userId}: ${response.status}`);
  return { status: response.status, ...body };
}

async function firstAnswer(sqs: SQSClient, container: ContainerJson, tag: string): Promise<void> {
  await sqs.send(
    new SendMessageCommand({
      QueueUrl: container.inputQueueUrl ?? '',
      MessageBody: JSON.stringify({ sessionId: tag, threadId: tag, text: 'ping' }),
    }),
  );
  const deadline = Date.now() + 120_000;
  while (Date.now() < deadline) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: container.outputQueueUrl ?? '',
        WaitTimeSeconds: 1,
        MaxNumberOfMessages: 10,
      }),
    );
    if (Messages.some((message) => (message.Body ?? '').includes(tag))) return;
  }
  throw new Error(`no answer from ${container.containerId}`);
}

async function measure(stack: RunningStack, sqs: SQSClient, userId: string): Promise<Sample> {
  const started = performance.now();
  const found = await discover(stack, userId, true);
  if (found.container.status !== 'running')
    throw new Error(`${userId} is ${found.container.status}`);
  const toRunningMs = performance.now() - started;
  await firstAnswer(sqs, found.container, `m-${userId}`);
  return { source: found.source, toRunningMs, toFirstAnswerMs: performance.now() - started };
}

async function part(name: string, rounds: number, startDelay?: string): Promise<PartResult> {
  say(
    `${name}: starting a local stack (pool of ${POOL_SIZE}${startDelay ? `, start delay ${startDelay}` : ''})`,
  );
  const stack = await startBenchStack({
    BERTH_POOL_SIZE: String(POOL_SIZE),
    BERTH_RATE_LIMIT: UNREACHABLE_RATE_LIMIT,
    BERTH_CACHE_TTL: '0',
    ...(startDelay ? { BERTH_LOCAL_START_DELAY: startDelay } : {}),
  });
  useStackAws(stack.env);
  const sqs = createSqsClient();
  const dynamodb = new DynamoDBClient({});
  const store = new DynamoStateStore({
    client: dynamodb,
    containerTable: 'berth-containers',
    sessionTable: 'berth-sessions',
  });
  const samples: Sample[] = [];
  try {
    for (let round = 0; round < rounds; round += 1) {
      await pollUntil(
        'a full pool',
        async () => {
          const pool = await store.readPool(POOL_SIZE);
          return pool.every(({ member }) => member?.state === 'free' && member.controlQueueUrl)
            ? true
            : undefined;
        },
        180_000,
      );
      samples.push(await measure(stack, sqs, `r${round}-warm`));
      for (let drain = 1; drain < POOL_SIZE; drain += 1)
        await discover(stack, `r${round}-drain${drain}`, false);
      samples.push(await measure(stack, sqs, `r${round}-cold`));
      const last = samples.slice(-2);
      say(
        `  round ${round + 1}: ${last.map((s) => `${s.source} ${fmt(s.toRunningMs, 0)} ms`).join(', ')}`,
      );
    }
  } finally {
    sqs.destroy();
    dynamodb.destroy();
    await stopBenchStack(stack);
  }
  const of = (source: string) => samples.filter((sample) => sample.source === source);
  const cold = of('created');
  const pool = of('pool');
  const summary = (list: Sample[]) => ({
    toRunning: summarize(list.map((s) => s.toRunningMs)),
    toFirstAnswer: summarize(list.map((s) => s.toFirstAnswerMs)),
  });
  const coldSummary = summary(cold);
  const poolSummary = summary(pool);
  return {
    name,
    startDelay,
    rounds,
    samples,
    cold: coldSummary,
    pool: poolSummary,
    p50Ratio: ratio(poolSummary.toRunning.p50, coldSummary.toRunning.p50),
  };
}

function render(result: PoolBenchResult): string {
  const lines: string[] = [
    `## Warm pool (\`npm run bench:pool\`, issue 16)`,
    '',
    `- Date: ${result.startedAt} (UTC); load average at the start ${result.machineAtStart.loadAverage.join(' / ')}, at the end ${result.machineAtEnd.loadAverage.join(' / ')} on ${result.machineAtStart.cpuCount} CPUs`,
    `- Pool of ${POOL_SIZE}; each round: a miss served by the pool, then the pool drained, then a cold miss (samples classified by the answer's \`source\`)`,
    '',
  ];
  for (const p of result.parts) {
    lines.push(
      `### ${p.name}`,
      '',
      textTable(
        ['miss served', 'n', 'to running p50 ms', 'p99 ms', 'to first answer p50 ms', 'p99 ms'],
        (
          [
            ['cold (baseline)', p.cold],
            ['pool', p.pool],
          ] as const
        ).map(([label, figures]) => [
          label,
          String(figures.toRunning.count),
          fmt(figures.toRunning.p50, 0),
          fmt(figures.toRunning.p99, 0),
          fmt(figures.toFirstAnswer.p50, 0),
          fmt(figures.toFirstAnswer.p99, 0),
        ]),
      ),
      '',
      `Pool ÷ cold, to running, p50: ${fmtRatio(p.p50Ratio)}.`,
      '',
    );
  }
  return lines.join('\n');
}

await runMain(
  'bench:pool',
  async (): Promise<PoolBenchResult> => {
    const startedAt = new Date().toISOString();
    const machineAtStart = machine();
    const plain = await part('Plain local stack', 6);
    const delayed = await part('Simulated 30 s task start (BERTH_LOCAL_START_DELAY=30s)', 3, '30s');
    return { startedAt, machineAtStart, machineAtEnd: machine(), parts: [plain, delayed] };
  },
  render,
);
