/**
 * `npm run bench:idle`, two parts.
 *
 * (a) The cost of finding idle containers. 1,000 and 20,000 containers are written into
 *     DynamoDB Local through DynamoStateStore, 1 % of them idle and due; the reaper runs
 *     over that store with fake runtime, queues and publisher, so only the store is real.
 *     Measured: the idle-index query alone, one `Reaper.stopIdle()` drain (passes until
 *     nothing is due) and the backstop `Reaper.sweep()`, each with its time and the
 *     DynamoDB capacity units the store reports. A control run on the 20,000 table with
 *     only 10 containers due shows whether the cost follows the idle containers or all of
 *     them. Baseline: a bare GetItem on the same engine.
 * (b) The delay between the idle timeout and `stopped`, on the local stack with a short
 *     BERTH_IDLE_TIMEOUT: containers are discovered, left idle, and polled over HTTP until
 *     stopped; delay = stoppedAt - (idleSince + timeout), split at `terminatingSince`.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { UseCases, type CoreDeps } from '@berth/core';
import {
  DEFAULT_TABLES,
  containerIdOf,
  newContainerRecord,
  parseDuration,
  systemClock,
  type ContainerJson,
  type ContainerRecord,
} from '@berth/domain';
import { DynamoStateStore, ensureTables } from '@berth/dynamodb';
import {
  DEFAULT_FAKE_SETTINGS,
  FakeQueues,
  FakeRuntime,
  RecordingPublisher,
  startDynamoDbLocal,
} from '@berth/testing';
import {
  fmt,
  fmtRatio,
  forEachLimit,
  machine,
  pollUntil,
  ratio,
  round,
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

export interface CostFigures {
  ms: number;
  readUnits: number;
  writeUnits: number;
}

export interface SweepCostCase {
  name: string;
  containers: number;
  idleDue: number;
  /** The idle-index query alone (read-only; median of several runs). */
  query: CostFigures & { items: number };
  /** `Reaper.stopIdle()` until nothing is due. */
  stopIdle: CostFigures & { passes: number; stopped: number };
}

export interface IdleBenchResult {
  benchmark: 'idle';
  date: string;
  machine: MachineInfo;
  sweepCost: {
    seedSeconds: Record<string, number>;
    baselineGetItem: CostFigures & { samples: number };
    cases: SweepCostCase[];
    /** `Reaper.sweep()` after the idle containers are stopped: the backstop's other parts. */
    backstopSweep: { containers: number; live: number; figures: CostFigures }[];
    /** 20,000 over 1,000 with 1 % idle each: the growth when both grow 20x. */
    growth: {
      idleRatio: number;
      allRatio: number;
      stopIdleReadUnits: number;
      stopIdleMs: number;
      queryReadUnits: number;
      queryMs: number;
    };
    /** 20,000 containers with 10 due over 1,000 with 10 due: ~1 when cost follows the idle ones only. */
    control: {
      stopIdleReadUnits: number;
      stopIdleMs: number;
      queryReadUnits: number;
      queryMs: number;
    };
  };
  stopDelay: {
    containers: number;
    idleTimeoutMs: number;
    reaperTickMs: number;
    measured: number;
    notIdleStopped: string[];
    /** idleSince + timeout → terminatingSince (the reaper noticing). */
    toTerminatingMs: LatencySummary;
    /** terminatingSince → stoppedAt (save, exit, task event). */
    terminatingToStoppedMs: LatencySummary;
    /** idleSince + timeout → stoppedAt. */
    toStoppedMs: LatencySummary;
    over5sToTerminating: number;
    over5sToStopped: number;
  };
  machineAfter: MachineInfo;
}

export interface IdleBenchOptions {
  sizes?: [number, number];
  stopDelayContainers?: number;
  progress?: (line: string) => void;
}

const HOUR = 3_600_000;
/** Idle-and-due containers went idle an hour or more ago, 10 s apart, oldest first. */
const IDLE_SPACING_MS = 10_000;

interface Seeded {
  store: DynamoStateStore;
  reads: () => number;
  writes: () => number;
  runtime: FakeRuntime;
  containers: number;
  idleDue: number;
  /** idleSince of the idle containers, oldest first. */
  idleSince: string[];
  someContainerId: string;
  seedSeconds: number;
}

function population(
  total: number,
  now: number,
  runtime: FakeRuntime,
): { records: ContainerRecord[]; idleSince: string[] } {
  const records: ContainerRecord[] = [];
  const idleSince: string[] = [];
  let idleRank = 0;
  const due = Math.round(total / 100);
  for (let index = 0; index < total; index += 1) {
    const key = {
      clientId: `client${index % 50}`,
      projectId: `project${index}`,
      userId: `user${index % 7}`,
    };
    const containerId = containerIdOf(key);
    const created = new Date(now - 3 * HOUR).toISOString();
    const base = newContainerRecord({ ...key, containerId }, 1, created);
    const queues = FakeQueues.urlsFor(containerId, 1);
    const running = {
      ...base,
      status: 'running' as const,
      startedAt: created,
      workspacePath: `/workspaces/${containerId}`,
      endpoint: `10.0.${index % 250}.${index % 200}`,
      ...queues,
    };
    // Spread evenly: every 100th is idle and due, half of the rest busy, half stopped.
    if (index % 100 === 0 && idleRank < due) {
      const since = new Date(now - HOUR - (due - idleRank) * IDLE_SPACING_MS).toISOString();
      idleRank += 1;
      const task = runtime.adopt({
        ...key,
        containerId,
        generation: 1,
        workspacePath: running.workspacePath,
        environment: {},
      });
      records.push({ ...running, taskArn: task.taskArn, idleSince: since, lastActivityAt: since });
      idleSince.push(since);
    } else if (index % 2 === 1) {
      const task = runtime.adopt({
        ...key,
        containerId,
        generation: 1,
        workspacePath: running.workspacePath,
        environment: {},
      });
      records.push({
        ...running,
        taskArn: task.taskArn,
        sessions: [`session-${index}-a`, `session-${index}-b`],
        idleSince: null,
      });
    } else {
      const stoppedAt = new Date(now - 2 * HOUR).toISOString();
      records.push({
        ...running,
        status: 'stopped',
        stoppedAt,
        stopReason: 'idle',
        idleSince: null,
        taskArn: `arn:fake:ecs:task/berth/${containerId}/gone`,
      });
    }
  }
  return { records, idleSince: idleSince.sort() };
}

async function seed(
  client: DynamoDBClient,
  total: number,
  progress: (line: string) => void,
): Promise<Seeded> {
  const names = {
    containerTable: `bench-containers-${total}`,
    sessionTable: `bench-sessions-${total}`,
  };
  await ensureTables(client, names);
  let reads = 0;
  let writes = 0;
  const store = new DynamoStateStore({
    client,
    ...names,
    onConsumedCapacity: (units, detail) => {
      if (detail.operation === 'put' || detail.operation === 'transact-write') writes += units;
      else reads += units;
    },
  });
  const runtime = new FakeRuntime();
  const { records, idleSince } = population(total, Date.now(), runtime);
  const started = performance.now();
  let written = 0;
  await forEachLimit(records, 32, async (record) => {
    await store.write({
      containers: [{ record, expect: { kind: 'new-generation', previousGeneration: null } }],
    });
    written += 1;
    if (written % 5000 === 0) progress(`    ${written} of ${total} written`);
  });
  const seedSeconds = round((performance.now() - started) / 1000, 1);
  return {
    store,
    reads: () => reads,
    writes: () => writes,
    runtime,
    containers: total,
    idleDue: idleSince.length,
    idleSince,
    someContainerId: records[1]?.containerId ?? '',
    seedSeconds,
  };
}

function coreDeps(seeded: Seeded, idleTimeoutMs: number): CoreDeps {
  return {
    store: seeded.store,
    runtime: seeded.runtime,
    queues: new FakeQueues(),
    publisher: new RecordingPublisher(),
    clock: systemClock,
    settings: { ...DEFAULT_FAKE_SETTINGS, agentEnvironment: {}, idleTimeoutMs },
  };
}

async function measure<T>(
  seeded: Seeded,
  run: () => Promise<T>,
): Promise<CostFigures & { value: T }> {
  const reads = seeded.reads();
  const writes = seeded.writes();
  const started = performance.now();
  const value = await run();
  return {
    ms: round(performance.now() - started),
    readUnits: round(seeded.reads() - reads, 1),
    writeUnits: round(seeded.writes() - writes, 1),
    value,
  };
}

function median<T extends CostFigures>(runs: T[]): T {
  const sorted = [...runs].sort((a, b) => a.ms - b.ms);
  return sorted[Math.floor(sorted.length / 2)] as T;
}

/** An idle timeout under which exactly the `count` oldest idle containers are due. */
function timeoutForOldest(seeded: Seeded, count: number): number {
  const last = seeded.idleSince[count - 1];
  const next = seeded.idleSince[count];
  if (last === undefined || next === undefined)
    throw new Error(`cannot single out ${count} idle containers`);
  // Halfway between the last one wanted and the next, so a few seconds of drift do not matter.
  const cutoff = (Date.parse(last) + Date.parse(next)) / 2;
  return Date.now() - cutoff;
}

/**
 * The query (read-only, median of 5) and the stopIdle drain, `repeats` times with the
 * stopped containers put back to idle in between (median by time; the last run stays).
 */
async function sweepCostCase(
  seeded: Seeded,
  name: string,
  due: number,
  idleTimeoutMs: number,
  repeats = 3,
): Promise<SweepCostCase> {
  const reaper = new UseCases(coreDeps(seeded, idleTimeoutMs)).reaper;
  const cutoff = new Date(Date.now() - idleTimeoutMs).toISOString();
  const queries = [];
  for (let run = 0; run < 5; run += 1) {
    const result = await measure(seeded, () => seeded.store.listIdleContainers(cutoff, 100_000));
    queries.push({ ...result, items: result.value.length });
  }
  const query = median(queries);
  const drains = [];
  for (let run = 0; run < repeats; run += 1) {
    if (run > 0) await restoreIdle(seeded, seeded.idleSince.slice(0, due));
    const drained = await measure(seeded, async () => {
      let passes = 0;
      let stopped = 0;
      for (;;) {
        passes += 1;
        const pass = await reaper.stopIdle();
        stopped += pass.stopped;
        if (pass.stopped === 0) return { passes, stopped };
      }
    });
    drains.push({
      ms: drained.ms,
      readUnits: drained.readUnits,
      writeUnits: drained.writeUnits,
      ...drained.value,
    });
  }
  return {
    name,
    containers: seeded.containers,
    idleDue: due,
    query: {
      ms: query.ms,
      readUnits: query.readUnits,
      writeUnits: query.writeUnits,
      items: query.items,
    },
    stopIdle: median(drains),
  };
}

/** Puts containers stopped by a control run back to idle, as they were seeded. */
async function restoreIdle(seeded: Seeded, idleSince: string[]): Promise<void> {
  const wanted = new Set(idleSince);
  const idle = await seeded.store.listContainersByStatus('terminating', 1000);
  for (const container of idle) {
    // The reaper keeps idleSince on a terminating record; only the control's are restored.
    if (!container.idleSince || !wanted.has(container.idleSince)) continue;
    await seeded.store.write({
      containers: [
        {
          record: {
            ...container,
            status: 'running',
            terminatingSince: null,
            stopReason: null,
            version: container.version + 1,
          },
          expect: { kind: 'version', version: container.version },
        },
      ],
    });
  }
}

async function sweepCost(
  sizes: [number, number],
  progress: (line: string) => void,
): Promise<IdleBenchResult['sweepCost']> {
  // On a loaded machine the JVM can miss the engine's 60 s start deadline once.
  const engine = await startDynamoDbLocal()
    .catch(() => startDynamoDbLocal())
    .catch(() => startDynamoDbLocal());
  const client = new DynamoDBClient({
    endpoint: engine.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    const [small, large] = sizes;
    progress(`  (a) seeding ${small} containers into DynamoDB Local`);
    const smallSeed = await seed(client, small, progress);
    progress(`  (a) seeding ${large} containers`);
    const largeSeed = await seed(client, large, progress);
    const idleTimeoutMs = DEFAULT_FAKE_SETTINGS.idleTimeoutMs;

    progress('  (a) baseline: GetItem');
    for (let run = 0; run < 20; run += 1)
      await largeSeed.store.getContainer(largeSeed.someContainerId);
    const gets = [];
    for (let run = 0; run < 50; run += 1)
      gets.push(
        await measure(largeSeed, () => largeSeed.store.getContainer(largeSeed.someContainerId)),
      );
    const getItem = median(gets);

    progress('  (a) warming up (a small table, measured and thrown away)');
    const warmup = await seed(client, 300, progress);
    await sweepCostCase(warmup, 'warm-up', warmup.idleDue, idleTimeoutMs);

    progress('  (a) measuring the sweeps');
    const cases: SweepCostCase[] = [];
    cases.push(
      await sweepCostCase(
        smallSeed,
        `${small} containers, ${smallSeed.idleDue} idle and due`,
        smallSeed.idleDue,
        idleTimeoutMs,
      ),
    );
    const controlDue = smallSeed.idleDue;
    cases.push(
      await sweepCostCase(
        largeSeed,
        `${large} containers, ${controlDue} due (control; ${largeSeed.idleDue - controlDue} more idle, not yet due)`,
        controlDue,
        timeoutForOldest(largeSeed, controlDue),
      ),
    );
    await restoreIdle(largeSeed, largeSeed.idleSince.slice(0, controlDue));
    cases.push(
      await sweepCostCase(
        largeSeed,
        `${large} containers, ${largeSeed.idleDue} idle and due`,
        largeSeed.idleDue,
        idleTimeoutMs,
      ),
    );

    const backstopSweep = [];
    for (const seeded of [smallSeed, largeSeed]) {
      const reaper = new UseCases(coreDeps(seeded, idleTimeoutMs)).reaper;
      const result = await measure(seeded, () => reaper.sweep());
      backstopSweep.push({
        containers: seeded.containers,
        live: seeded.runtime.liveTasks().length,
        figures: { ms: result.ms, readUnits: result.readUnits, writeUnits: result.writeUnits },
      });
    }

    const [smallCase, controlCase, largeCase] = cases as [
      SweepCostCase,
      SweepCostCase,
      SweepCostCase,
    ];
    return {
      seedSeconds: {
        [String(small)]: smallSeed.seedSeconds,
        [String(large)]: largeSeed.seedSeconds,
      },
      baselineGetItem: {
        ms: getItem.ms,
        readUnits: getItem.readUnits,
        writeUnits: getItem.writeUnits,
        samples: gets.length,
      },
      cases,
      backstopSweep,
      growth: {
        idleRatio: round(ratio(largeCase.idleDue, smallCase.idleDue)),
        allRatio: round(ratio(large, small)),
        stopIdleReadUnits: round(ratio(largeCase.stopIdle.readUnits, smallCase.stopIdle.readUnits)),
        stopIdleMs: round(ratio(largeCase.stopIdle.ms, smallCase.stopIdle.ms)),
        queryReadUnits: round(ratio(largeCase.query.readUnits, smallCase.query.readUnits)),
        queryMs: round(ratio(largeCase.query.ms, smallCase.query.ms)),
      },
      control: {
        stopIdleReadUnits: round(
          ratio(controlCase.stopIdle.readUnits, smallCase.stopIdle.readUnits),
        ),
        stopIdleMs: round(ratio(controlCase.stopIdle.ms, smallCase.stopIdle.ms)),
        queryReadUnits: round(ratio(controlCase.query.readUnits, smallCase.query.readUnits)),
        queryMs: round(ratio(controlCase.query.ms, smallCase.query.ms)),
      },
    };
  } finally {
    client.destroy();
    await engine.stop();
  }
}

async function stopDelay(
  count: number,
  progress: (line: string) => void,
): Promise<IdleBenchResult['stopDelay']> {
  const idleTimeout = '3s';
  const idleTimeoutMs = parseDuration(idleTimeout, 'BERTH_IDLE_TIMEOUT');
  const reaperTickMs = 1_000;
  progress(`  (b) starting the local stack with BERTH_IDLE_TIMEOUT=${idleTimeout}`);
  const stack = await startBenchStack({
    BERTH_IDLE_TIMEOUT: idleTimeout,
    BERTH_REAPER_TICK: `${reaperTickMs}ms`,
    BERTH_LOG_LEVEL: 'warn',
    BERTH_RATE_LIMIT: UNREACHABLE_RATE_LIMIT,
  });
  try {
    const headers = {
      authorization: `Bearer ${stack.adminToken}`,
      'content-type': 'application/json',
    };
    const keys = Array.from({ length: count }, (_, index) => ({
      clientId: 'bench',
      projectId: `idle${index + 1}`,
      userId: 'alice',
    }));
    progress(`  (b) discovering ${count} containers and waiting until each is stopped`);
    const seen = new Map<string, { idleSince: string | null; final?: ContainerJson }>();
    await Promise.all(
      keys.map(async (key) => {
        const containerId = containerIdOf(key);
        seen.set(containerId, { idleSince: null });
        const answer = await fetch(`${stack.url}/v1/containers/discover`, {
          method: 'POST',
          headers,
          body: JSON.stringify(key),
        });
        await answer.body?.cancel();
        await pollUntil(
          `${containerId} to stop`,
          async () => {
            const response = await fetch(`${stack.url}/v1/containers/${containerId}`, { headers });
            const { container } = (await response.json()) as { container?: ContainerJson };
            const entry = seen.get(containerId);
            if (!container || !entry) return undefined;
            // A stopped record no longer carries idleSince: keep the last one seen while running.
            if (container.idleSince) entry.idleSince = container.idleSince;
            if (container.status === 'stopped' || container.status === 'failed') {
              entry.final = container;
              return true;
            }
            return undefined;
          },
          240_000,
          200,
        );
      }),
    );

    useStackAws(stack.env);
    const store = new DynamoStateStore({
      ...DEFAULT_TABLES,
    });
    const toTerminating: number[] = [];
    const terminatingToStopped: number[] = [];
    const toStopped: number[] = [];
    const notIdleStopped: string[] = [];
    for (const [containerId, entry] of seen) {
      const record = await store.getContainer(containerId);
      const final = entry.final;
      if (
        !final ||
        final.status !== 'stopped' ||
        !final.stopReason?.startsWith('idle') ||
        !entry.idleSince ||
        !final.stoppedAt
      ) {
        notIdleStopped.push(
          `${containerId}: ${final?.status ?? 'unknown'} ${final?.stopReason ?? ''}`.trim(),
        );
        continue;
      }
      const due = Date.parse(entry.idleSince) + idleTimeoutMs;
      const stoppedAt = Date.parse(final.stoppedAt);
      toStopped.push(stoppedAt - due);
      if (record?.terminatingSince) {
        const terminatingAt = Date.parse(record.terminatingSince);
        toTerminating.push(terminatingAt - due);
        terminatingToStopped.push(stoppedAt - terminatingAt);
      }
    }
    const summary = (values: number[]): LatencySummary => {
      const s = summarize(values);
      return {
        count: s.count,
        p50: round(s.p50),
        p99: round(s.p99),
        mean: round(s.mean),
        min: round(s.min),
        max: round(s.max),
      };
    };
    return {
      containers: count,
      idleTimeoutMs,
      reaperTickMs,
      measured: toStopped.length,
      notIdleStopped,
      toTerminatingMs: summary(toTerminating),
      terminatingToStoppedMs: summary(terminatingToStopped),
      toStoppedMs: summary(toStopped),
      over5sToTerminating: toTerminating.filter((value) => value > 5_000).length,
      over5sToStopped: toStopped.filter((value) => value > 5_000).length,
    };
  } finally {
    await stopBenchStack(stack);
  }
}

export async function runIdleBenchmark(options: IdleBenchOptions = {}): Promise<IdleBenchResult> {
  const sizes = options.sizes ?? [
    Number(process.env.BENCH_IDLE_SMALL ?? '1000'),
    Number(process.env.BENCH_IDLE_LARGE ?? '20000'),
  ];
  const count = options.stopDelayContainers ?? Number(process.env.BENCH_IDLE_CONTAINERS ?? '20');
  const progress = options.progress ?? (() => {});
  const before = machine();
  progress('idle benchmark');
  const sweep = await sweepCost(sizes, progress);
  const delay = await stopDelay(count, progress);
  return {
    benchmark: 'idle',
    date: new Date().toISOString(),
    machine: before,
    sweepCost: sweep,
    stopDelay: delay,
    machineAfter: machine(),
  };
}

export function renderIdle(result: IdleBenchResult): string {
  const { sweepCost: cost, stopDelay: delay } = result;
  const base = cost.baselineGetItem;
  const [smallCase] = cost.cases;
  const small = smallCase?.containers ?? Number.NaN;
  const large = cost.cases[cost.cases.length - 1]?.containers ?? Number.NaN;
  const costRow = (name: string, figures: CostFigures, extra: string) => [
    name,
    figures.ms,
    figures.readUnits,
    figures.writeUnits,
    fmtRatio(ratio(figures.ms, base.ms)),
    fmtRatio(ratio(figures.readUnits, base.readUnits)),
    extra,
  ];
  const sweepTable = textTable(
    ['operation', 'ms', 'read units', 'write units', 'ms vs GetItem', 'RCU vs GetItem', 'note'],
    [
      costRow('GetItem (baseline, median of 50)', base, ''),
      ...cost.cases.flatMap((item) => [
        costRow(
          `idle-index query: ${item.name}`,
          item.query,
          `${item.query.items} items, median of 5`,
        ),
        costRow(
          `stopIdle drain: ${item.name}`,
          item.stopIdle,
          `${item.stopIdle.stopped} stopped in ${item.stopIdle.passes} passes`,
        ),
      ]),
      ...cost.backstopSweep.map((sweep) =>
        costRow(
          `Reaper.sweep(): ${sweep.containers} containers`,
          sweep.figures,
          `${sweep.live} live tasks, nothing left idle`,
        ),
      ),
    ],
  );
  const delayRow = (name: string, values: LatencySummary) => [
    name,
    values.count,
    values.p50,
    values.p99,
    values.max,
  ];
  const delayTable = textTable(
    ['delay after the idle timeout', 'n', 'p50 ms', 'p99 ms', 'max ms'],
    [
      delayRow('timeout -> terminating (reaper)', delay.toTerminatingMs),
      delayRow('terminating -> stopped (save, exit, event)', delay.terminatingToStoppedMs),
      delayRow('timeout -> stopped', delay.toStoppedMs),
    ],
  );
  return [
    'idle (a): the cost of one idle check, DynamoDB Local, fake runtime/queues/publisher',
    sweepTable,
    `growth ${small} -> ${large} containers (idle x${cost.growth.idleRatio}, all x${cost.growth.allRatio}): stopIdle read units x${cost.growth.stopIdleReadUnits}, time x${cost.growth.stopIdleMs}; query read units x${cost.growth.queryReadUnits}, time x${cost.growth.queryMs}`,
    `control (${smallCase?.idleDue ?? 0} due among ${large} vs among ${small}): stopIdle read units x${cost.control.stopIdleReadUnits}, time x${cost.control.stopIdleMs}; query read units x${cost.control.queryReadUnits}, time x${cost.control.queryMs}`,
    `seeding took ${Object.entries(cost.seedSeconds)
      .map(([size, seconds]) => `${size}: ${seconds} s`)
      .join(', ')}`,
    '',
    `idle (b): ${delay.containers} containers on the local stack, BERTH_IDLE_TIMEOUT=${delay.idleTimeoutMs} ms, reaper tick ${delay.reaperTickMs} ms; ${delay.measured} measured`,
    delayTable,
    `over 5 s after the timeout: ${delay.over5sToTerminating} to terminating, ${delay.over5sToStopped} to stopped${delay.notIdleStopped.length ? `; not stopped for idleness: ${delay.notIdleStopped.join('; ')}` : ''}`,
    `load average before ${result.machine.loadAverage.map((value) => fmt(value, 2)).join(' ')}, after ${result.machineAfter.loadAverage.map((value) => fmt(value, 2)).join(' ')} on ${result.machine.cpuCount} CPUs`,
  ].join('\n');
}

if (import.meta.main) {
  await runMain('bench:idle', () => runIdleBenchmark({ progress: say }), renderIdle);
}
