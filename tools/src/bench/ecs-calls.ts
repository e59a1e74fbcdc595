/**
 * `npm run bench:ecs-calls`: how many ECS API calls berth makes per minute with 1,000 running
 * containers, at 10 and at 500 discovers per second — counted, not timed, on a fake clock.
 *
 * The real use cases (`@berth/core`) run over an in-memory store and the real `EcsRuntime`
 * adapter, whose ECS client answers from a table of 1,000 RUNNING tasks
 * (aws-sdk-client-mock; every command it receives is counted). One simulated minute is 60
 * ticks of the fake clock; per tick: `rate` discovers (`findOrStart` for random containers,
 * i.e. store hits with the cache off: the worst case), then the reaper's tick (idle check
 * and carrying out stops); at the end of the minute, the task watcher's reconciliation (every
 * `min(BERTH_SWEEP_INTERVAL, 60 s)`). The reaper's backstop sweep runs once per
 * BERTH_SWEEP_INTERVAL (10 min) and is counted separately, per run.
 */
import {
  DescribeTasksCommand,
  ECSClient,
  ListTasksCommand,
  RunTaskCommand,
  StopTaskCommand,
  type Task,
} from '@aws-sdk/client-ecs';
import { UseCases } from '@berth/core';
import {
  DEFAULT_AGENT_CONTAINER_NAME,
  MANAGED_BY,
  TASK_TAGS,
  newContainerRecord,
  type ContainerRecord,
} from '@berth/domain';
import { EcsRuntime } from '@berth/ecs';
import { FakeQueues, InMemoryStateStore, ManualClock, RecordingPublisher } from '@berth/testing';
import { mockClient } from 'aws-sdk-client-mock';
import { fmt, machine, round, runMain, say, textTable, type MachineInfo } from './common.ts';

const CLUSTER = 'berth';
const CONTAINER_NAME = DEFAULT_AGENT_CONTAINER_NAME;
const PAGE = 100;

export interface EcsCallsRow {
  discoversPerSecond: number;
  discovers: number;
  /** ECS API calls in the simulated minute, by command, and all of them. */
  byCommand: Record<string, number>;
  perMinute: number;
  perLiveContainerPerMinute: number;
}

export interface EcsCallsResult {
  benchmark: 'ecs-calls';
  date: string;
  machine: MachineInfo;
  liveContainers: number;
  rows: EcsCallsRow[];
  /** One backstop sweep of the reaper (every BERTH_SWEEP_INTERVAL, 10 min by default). */
  sweep: Record<string, number>;
  /** The formula of docs/design.md for the same number of containers, per minute. */
  formulaPerMinute: number;
}

function taskOf(container: ContainerRecord): Task {
  return {
    taskArn: container.taskArn ?? '',
    lastStatus: 'RUNNING',
    desiredStatus: 'RUNNING',
    containers: [{ name: CONTAINER_NAME, lastStatus: 'RUNNING' }],
    tags: [
      { key: TASK_TAGS.containerId, value: container.containerId },
      { key: TASK_TAGS.clientId, value: container.clientId },
      { key: TASK_TAGS.projectId, value: container.projectId },
      { key: TASK_TAGS.userId, value: container.userId },
      { key: TASK_TAGS.generation, value: String(container.generation) },
      { key: TASK_TAGS.managedBy, value: MANAGED_BY },
    ],
  };
}

async function world(liveContainers: number) {
  const clock = new ManualClock();
  const store = new InMemoryStateStore();
  const tasks = new Map<string, Task>();
  const keys = [];
  for (let index = 0; index < liveContainers; index += 1) {
    const key = { clientId: 'bench', projectId: 'site', userId: `u${index}` };
    const containerId = `bench.site.u${index}`;
    const record: ContainerRecord = {
      ...newContainerRecord({ ...key, containerId }, 1, clock.iso()),
      status: 'running',
      startedAt: clock.iso(),
      taskArn: `arn:aws:ecs:us-east-1:000000000000:task/${CLUSTER}/${index.toString(16).padStart(32, '0')}`,
      inputQueueUrl: `https://sqs.local/000000000000/berth-${index}-input`,
      outputQueueUrl: `https://sqs.local/000000000000/berth-${index}-output`,
      // In use: no idle stop falls due within the simulated minutes.
      sessions: [`s${index}`],
      idleSince: null,
    };
    await store.write({
      containers: [{ record, expect: { kind: 'new-generation', previousGeneration: null } }],
    });
    tasks.set(record.taskArn ?? '', taskOf(record));
    keys.push(key);
  }
  const client = new ECSClient({ region: 'us-east-1' });
  const ecs = mockClient(client);
  ecs.on(ListTasksCommand).callsFake((input: { nextToken?: string; maxResults?: number }) => {
    const arns = [...tasks.keys()];
    const start = Number(input.nextToken ?? '0');
    const end = start + (input.maxResults ?? PAGE);
    return {
      taskArns: arns.slice(start, end),
      ...(end < arns.length ? { nextToken: String(end) } : {}),
    };
  });
  ecs.on(DescribeTasksCommand).callsFake((input: { tasks?: string[] }) => {
    const found = (input.tasks ?? []).flatMap((arn) => tasks.get(arn) ?? []);
    const missing = (input.tasks ?? []).filter((arn) => !tasks.has(arn));
    return { tasks: found, failures: missing.map((arn) => ({ arn, reason: 'MISSING' })) };
  });
  ecs.on(StopTaskCommand).resolves({});
  ecs.on(RunTaskCommand).rejects(new Error('no task starts in this benchmark'));
  const runtime = new EcsRuntime({
    client,
    cluster: CLUSTER,
    taskDefinition: 'berth-workspace',
    containerName: CONTAINER_NAME,
    subnets: [],
    securityGroups: [],
    workspaceRoot: '/workspaces',
    launchType: undefined,
  });
  const useCases = new UseCases({
    store,
    runtime,
    queues: new FakeQueues(),
    publisher: new RecordingPublisher(),
    clock,
    settings: {
      maxSessions: 10,
      idleTimeoutMs: 20 * 60_000,
      sessionTtlMs: 2 * 3_600_000,
      shutdownGraceMs: 60_000,
      startTimeoutMs: 5 * 60_000,
      agentEnvironment: {},
    },
  });
  const counts = (): Record<string, number> => {
    const byCommand: Record<string, number> = {};
    for (const call of ecs.calls()) {
      const name = (call.args[0] as { constructor: { name: string } }).constructor.name.replace(
        /Command$/,
        '',
      );
      byCommand[name] = (byCommand[name] ?? 0) + 1;
    }
    return byCommand;
  };
  return { clock, useCases, keys, counts, reset: () => ecs.resetHistory() };
}

const total = (byCommand: Record<string, number>) =>
  Object.values(byCommand).reduce((sum, count) => sum + count, 0);

export async function runEcsCallsBenchmark(
  options: { liveContainers?: number; rates?: number[]; progress?: (line: string) => void } = {},
): Promise<EcsCallsResult> {
  const liveContainers = options.liveContainers ?? 1000;
  const rates = options.rates ?? [10, 500];
  const progress = options.progress ?? (() => {});
  const before = machine();
  const rows: EcsCallsRow[] = [];
  for (const rate of rates) {
    progress(`ecs-calls: ${liveContainers} running containers, ${rate} discovers/s for one minute`);
    const w = await world(liveContainers);
    let discovers = 0;
    for (let second = 0; second < 60; second += 1) {
      const keys = Array.from(
        { length: rate },
        (_, index) => w.keys[(second * rate + index) % w.keys.length] ?? w.keys[0],
      ).filter((key) => key !== undefined);
      await Promise.all(keys.map((key) => w.useCases.containers.findOrStart(key)));
      discovers += keys.length;
      w.clock.advance(1000);
      await w.useCases.reaper.stopIdle();
      await w.useCases.reaper.carryOutStops();
    }
    await w.useCases.reaper.reconcile();
    const byCommand = w.counts();
    const perMinute = total(byCommand);
    rows.push({
      discoversPerSecond: rate,
      discovers,
      byCommand,
      perMinute,
      perLiveContainerPerMinute: round(perMinute / liveContainers, 4),
    });
  }
  progress('ecs-calls: one backstop sweep');
  const w = await world(liveContainers);
  await w.useCases.reaper.sweep();
  const pages = Math.ceil(liveContainers / PAGE);
  return {
    benchmark: 'ecs-calls',
    date: new Date().toISOString(),
    machine: before,
    liveContainers,
    rows,
    sweep: w.counts(),
    // docs/design.md: 2·⌈N/100⌉·(60 s/R + 60 s/S) with R = 60 s, S = 10 min, nothing stopping.
    formulaPerMinute: round(2 * pages * (1 + 1 / 10), 1),
  };
}

export function renderEcsCalls(result: EcsCallsResult): string {
  const commands = [
    ...new Set([
      ...result.rows.flatMap((row) => Object.keys(row.byCommand)),
      ...Object.keys(result.sweep),
    ]),
  ].sort();
  return [
    `ECS API calls in one simulated minute (fake clock), ${fmt(result.liveContainers, 0)} running containers, store hits with the cache off; reaper tick every second, watcher reconciliation once:`,
    textTable(
      ['discovers/s', 'discovers', ...commands, 'ECS calls/min', 'per live container/min'],
      result.rows.map((row) => [
        row.discoversPerSecond,
        row.discovers,
        ...commands.map((command) => row.byCommand[command] ?? 0),
        row.perMinute,
        fmt(row.perLiveContainerPerMinute, 3),
      ]),
    ),
    `one backstop sweep (every BERTH_SWEEP_INTERVAL, 10 min): ${
      commands.map((command) => `${command} ${result.sweep[command] ?? 0}`).join(', ') || 'none'
    }`,
    `formula (docs/design.md), steady state: 2·⌈N/100⌉·(1 + 1/10) = ${fmt(result.formulaPerMinute)} per minute, sweep amortized`,
  ].join('\n');
}

if (import.meta.main) {
  await runMain('bench:ecs-calls', () => runEcsCallsBenchmark({ progress: say }), renderEcsCalls);
}
