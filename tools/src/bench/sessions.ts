/**
 * `npm run bench:sessions`: on the local stack, commands per second and end-to-end latency
 * (command sent to `berth-lifecycle-commands` → its event received from the lifecycle
 * topic) for `session.assign` / `session.release` over many sessions and containers, next
 * to the raw fauxqs SQS send → receive round trip measured in the same run, with the same
 * client mechanics (one long-polling receiver that deletes each batch, then hands it out).
 *
 * Two shapes of load, each for berth and for the raw queue:
 * - closed loop: `workers` callers, each sending its next command as soon as the event of
 *   the previous one arrived (latency at a steady, moderate load);
 * - burst: `burst` commands sent at once in batches of 10, timed until the last event
 *   (how fast the service drains a backlog).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import {
  CreateQueueCommand,
  DeleteMessageBatchCommand,
  DeleteQueueCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import {
  CreateTopicCommand,
  DeleteTopicCommand,
  PublishCommand,
  SubscribeCommand,
  type SNSClient,
} from '@aws-sdk/client-sns';
import { loadConfig, type BerthEvent, type CommandType, type EventType } from '@berth/domain';
import {
  EventSubscription,
  createSnsClient,
  createSqsClient,
  localLifecycleTopicArn,
  resolveMessaging,
} from '@berth/messaging';
import type { RunningStack } from '../stack/harness.ts';
import { cpuPerOperation, cpuSnapshot, describeCpu, type CpuPerOperation } from './cpu.ts';
import {
  callLogEnv,
  callMark,
  callsSince,
  describeCalls,
  type CallsPerOperation,
} from './calls.ts';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  fmt,
  fmtRatio,
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

export interface LoadPhase {
  /** Commands (or messages) whose answer arrived. */
  completed: number;
  failed: number;
  seconds: number;
  perSecond: number;
  latencyMs: LatencySummary;
}

export interface SessionsBenchResult {
  benchmark: 'sessions';
  date: string;
  machine: MachineInfo;
  settings: {
    containers: number;
    workers: number;
    cyclesPerWorker: number;
    burst: number;
    sessionServiceConcurrency: number;
  };
  /** The raw fauxqs round trip, run before and after berth; figures below use their mean. */
  rawRuns: { closedLoop: LoadPhase; burst: LoadPhase }[];
  raw: { closedLoop: LoadPhase; burst: LoadPhase };
  /**
   * The path a command's answer really takes, without berth: one SQS hop (the command) and one
   * SNS → SQS hop (the event), relayed by a receiver that publishes each message it gets. Run
   * before and after berth like `rawRuns`; issue 13's goals are ratios to its mean.
   */
  twoHopRuns?: { closedLoop: LoadPhase; burst: LoadPhase }[];
  twoHop?: { closedLoop: LoadPhase; burst: LoadPhase };
  berth: {
    closedLoop: LoadPhase;
    assign: LatencySummary;
    release: LatencySummary;
    burstAssign: LoadPhase;
    burstRelease: LoadPhase;
    /** The session service's AWS SDK calls per command, from the bursts (call recorder). */
    calls?: { assign: CallsPerOperation; release: CallsPerOperation };
    /** CPU milliseconds per command of the closed loop, by process of the stack (Linux). */
    cpu?: CpuPerOperation;
  };
  ratios: {
    closedLoopThroughput: number;
    closedLoopP50: number;
    closedLoopP99: number;
    burstThroughput: number;
  };
  /** The same ratios to the two-hop baseline (`twoHop`). */
  ratiosTwoHop?: {
    closedLoopThroughput: number;
    closedLoopP50: number;
    closedLoopP99: number;
    burstThroughput: number;
  };
  machineAfter: MachineInfo;
}

export interface SessionsBenchOptions {
  containers?: number;
  workers?: number;
  cyclesPerWorker?: number;
  burst?: number;
  progress?: (line: string) => void;
}

const ANSWER_TIMEOUT_MS = 60_000;
const ASSIGN_ANSWERS = new Set<EventType>([
  'session.assigned',
  'session.rejected',
  'command.rejected',
]);
const RELEASE_ANSWERS = new Set<EventType>([
  'session.released',
  'session.expired',
  'command.rejected',
]);
const SUCCESS = new Set<EventType>(['session.assigned', 'session.released']);

interface Answer {
  event: BerthEvent;
  at: number;
}

/** Routes events from one subscription to whoever waits for a commandId. */
class AnswerRouter {
  readonly #waiters = new Map<
    string,
    { types: Set<EventType>; resolve: (answer: Answer) => void }
  >();
  readonly #early = new Map<string, Answer[]>();
  readonly #subscription: EventSubscription;
  #running = true;
  readonly #pump: Promise<void>;

  constructor(subscription: EventSubscription) {
    this.#subscription = subscription;
    this.#pump = this.#run();
  }

  async #run(): Promise<void> {
    while (this.#running) {
      const event = await this.#subscription.next(1_000);
      if (event === undefined || !event.commandId) continue;
      const answer = { event, at: performance.now() };
      const waiter = this.#waiters.get(event.commandId);
      if (waiter && waiter.types.has(event.type)) {
        this.#waiters.delete(event.commandId);
        waiter.resolve(answer);
      } else {
        const list = this.#early.get(event.commandId) ?? [];
        list.push(answer);
        this.#early.set(event.commandId, list);
      }
    }
  }

  /** Register before sending, so an answer can never arrive unseen. */
  expect(commandId: string, types: Set<EventType>): Promise<Answer> {
    const early = this.#early.get(commandId)?.find((answer) => types.has(answer.event.type));
    if (early) return Promise.resolve(early);
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(commandId);
        reject(new Error(`no answer to command ${commandId} within ${ANSWER_TIMEOUT_MS} ms`));
      }, ANSWER_TIMEOUT_MS);
      this.#waiters.set(commandId, {
        types,
        resolve: (answer) => {
          clearTimeout(timer);
          resolve(answer);
        },
      });
    });
  }

  async close(): Promise<void> {
    this.#running = false;
    await this.#pump;
  }
}

/** A private queue with one long-polling receiver, the raw baseline. */
class RawQueue {
  readonly #sqs: SQSClient;
  readonly url: string;
  readonly #waiters = new Map<string, (at: number) => void>();
  readonly #abort = new AbortController();
  readonly #loop: Promise<void>;
  /** Set on a relay: each message is handed on (published) instead of awaited here. */
  readonly #relay: ((body: string) => Promise<void>) | undefined;

  private constructor(sqs: SQSClient, url: string, relay?: (body: string) => Promise<void>) {
    this.#sqs = sqs;
    this.url = url;
    this.#relay = relay;
    this.#loop = this.#receive();
  }

  static async open(sqs: SQSClient, relay?: (body: string) => Promise<void>): Promise<RawQueue> {
    const name = `berth-bench-raw-${randomBytes(6).toString('hex')}`;
    const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name }));
    if (!QueueUrl) throw new Error(`creating ${name} returned no URL`);
    return new RawQueue(sqs, QueueUrl, relay);
  }

  async #receive(): Promise<void> {
    while (!this.#abort.signal.aborted) {
      let messages;
      try {
        const output = await this.#sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: this.url,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 20,
          }),
          { abortSignal: this.#abort.signal },
        );
        messages = output.Messages ?? [];
      } catch (error) {
        if (this.#abort.signal.aborted) return;
        throw error;
      }
      if (messages.length === 0) continue;
      // The same order as EventSubscription: delete the batch, then hand the messages out.
      await this.#sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: this.url,
          Entries: messages.map((message, index) => ({
            Id: String(index),
            ReceiptHandle: message.ReceiptHandle ?? '',
          })),
        }),
      );
      if (this.#relay) {
        // As the session service does with a command: its answer is published, in parallel.
        const relay = this.#relay;
        await Promise.all(messages.map((message) => relay(message.Body ?? '')));
        continue;
      }
      const at = performance.now();
      for (const message of messages) {
        const id = message.Body ?? '';
        this.#waiters.get(id)?.(at);
        this.#waiters.delete(id);
      }
    }
  }

  expect(id: string): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(id);
        reject(new Error(`message ${id} not received within ${ANSWER_TIMEOUT_MS} ms`));
      }, ANSWER_TIMEOUT_MS);
      this.#waiters.set(id, (at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
  }

  async close(): Promise<void> {
    this.#abort.abort();
    await this.#loop.catch(() => undefined);
    await this.#sqs.send(new DeleteQueueCommand({ QueueUrl: this.url })).catch(() => undefined);
  }
}

function phase(latencies: number[], failed: number, seconds: number): LoadPhase {
  const latencyMs = summarize(latencies);
  return {
    completed: latencies.length,
    failed,
    seconds: round(seconds, 2),
    perSecond: round(latencies.length / seconds, 1),
    latencyMs: {
      count: latencyMs.count,
      p50: round(latencyMs.p50),
      p99: round(latencyMs.p99),
      mean: round(latencyMs.mean),
      min: round(latencyMs.min),
      max: round(latencyMs.max),
    },
  };
}

async function sendBatches(sqs: SQSClient, queueUrl: string, bodies: string[]): Promise<void> {
  const batches: string[][] = [];
  for (let start = 0; start < bodies.length; start += 10)
    batches.push(bodies.slice(start, start + 10));
  await Promise.all(
    batches.map(async (batch) => {
      const output = await sqs.send(
        new SendMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: batch.map((body, index) => ({ Id: String(index), MessageBody: body })),
        }),
      );
      if ((output.Failed ?? []).length > 0)
        throw new Error(`SendMessageBatch failed for ${output.Failed?.length} messages`);
    }),
  );
}

/** Where a raw round trip sends its messages and where it awaits them. */
interface RawPath {
  sendUrl: string;
  arrivals: RawQueue;
  close(): Promise<void>;
}

/** One SQS hop: sent to a queue, awaited on that queue. */
async function oneHop(sqs: SQSClient): Promise<RawPath> {
  const queue = await RawQueue.open(sqs);
  return { sendUrl: queue.url, arrivals: queue, close: () => queue.close() };
}

/**
 * One SQS hop, then one SNS → SQS hop: sent to a queue whose receiver publishes each message to
 * a private topic, awaited on a queue subscribed to that topic (raw delivery), as a command and
 * its event travel.
 */
async function twoHops(sqs: SQSClient, sns: SNSClient): Promise<RawPath> {
  const name = `berth-bench-raw-${randomBytes(6).toString('hex')}`;
  const { TopicArn } = await sns.send(new CreateTopicCommand({ Name: name }));
  if (!TopicArn) throw new Error(`creating topic ${name} returned no ARN`);
  const arrivals = await RawQueue.open(sqs);
  const { Attributes } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: arrivals.url, AttributeNames: ['QueueArn'] }),
  );
  await sns.send(
    new SubscribeCommand({
      TopicArn,
      Protocol: 'sqs',
      Endpoint: Attributes?.QueueArn ?? '',
      Attributes: { RawMessageDelivery: 'true' },
    }),
  );
  const relay = await RawQueue.open(sqs, async (body) => {
    await sns.send(new PublishCommand({ TopicArn, Message: body }));
  });
  return {
    sendUrl: relay.url,
    arrivals,
    close: async () => {
      await relay.close();
      await arrivals.close();
      await sns.send(new DeleteTopicCommand({ TopicArn })).catch(() => undefined);
    },
  };
}

async function rawRun(
  sqs: SQSClient,
  open: () => Promise<RawPath>,
  workers: number,
  roundTrips: number,
  burst: number,
) {
  const path = await open();
  const queue = path.arrivals;
  try {
    const latencies: number[] = [];
    let failed = 0;
    const started = performance.now();
    await Promise.all(
      Array.from({ length: workers }, async () => {
        for (let i = 0; i < roundTrips; i += 1) {
          const id = randomUUID();
          const received = queue.expect(id);
          const sent = performance.now();
          try {
            await sqs.send(new SendMessageCommand({ QueueUrl: path.sendUrl, MessageBody: id }));
            latencies.push((await received) - sent);
          } catch {
            failed += 1;
          }
        }
      }),
    );
    const closedLoop = phase(latencies, failed, (performance.now() - started) / 1000);

    const ids = Array.from({ length: burst }, () => randomUUID());
    const arrivals = ids.map((id) => queue.expect(id));
    const burstStart = performance.now();
    await sendBatches(sqs, path.sendUrl, ids);
    const settled = await Promise.allSettled(arrivals);
    const times = settled.flatMap((result) =>
      result.status === 'fulfilled' ? [result.value - burstStart] : [],
    );
    const burstPhase = phase(times, settled.length - times.length, Math.max(...times, 0) / 1000);
    return { closedLoop, burst: burstPhase };
  } finally {
    await path.close();
  }
}

function meanPhase(runs: LoadPhase[]): LoadPhase {
  const mean = (pick: (run: LoadPhase) => number) =>
    round(runs.reduce((total, run) => total + pick(run), 0) / runs.length);
  return {
    completed: runs.reduce((total, run) => total + run.completed, 0),
    failed: runs.reduce((total, run) => total + run.failed, 0),
    seconds: mean((run) => run.seconds),
    perSecond: mean((run) => run.perSecond),
    latencyMs: {
      count: runs.reduce((total, run) => total + run.latencyMs.count, 0),
      p50: mean((run) => run.latencyMs.p50),
      p99: mean((run) => run.latencyMs.p99),
      mean: mean((run) => run.latencyMs.mean),
      min: Math.min(...runs.map((run) => run.latencyMs.min)),
      max: Math.max(...runs.map((run) => run.latencyMs.max)),
    },
  };
}

async function startContainers(
  stack: RunningStack,
  count: number,
): Promise<{ clientId: string; projectId: string; userId: string }[]> {
  const keys = Array.from({ length: count }, (_, index) => ({
    clientId: 'bench',
    projectId: `p${index + 1}`,
    userId: 'alice',
  }));
  const headers = {
    authorization: `Bearer ${stack.adminToken}`,
    'content-type': 'application/json',
  };
  await Promise.all(
    keys.map(async (key) => {
      const containerId = `${key.clientId}.${key.projectId}.${key.userId}`;
      await fetch(`${stack.url}/v1/containers/discover?wait=60`, {
        method: 'POST',
        headers,
        body: JSON.stringify(key),
      }).then((r) => r.body?.cancel());
      await pollUntil(
        `${containerId} to run`,
        async () => {
          const response = await fetch(`${stack.url}/v1/containers/${containerId}`, { headers });
          const body = (await response.json()) as { container?: { status: string } };
          if (body.container?.status === 'failed')
            throw new Error(`${containerId} failed to start`);
          return body.container?.status === 'running' ? true : undefined;
        },
        180_000,
        250,
      );
    }),
  );
  return keys;
}

export async function runSessionsBenchmark(
  options: SessionsBenchOptions = {},
): Promise<SessionsBenchResult> {
  const containers = options.containers ?? Number(process.env.BENCH_CONTAINERS ?? '8');
  const workers = options.workers ?? Number(process.env.BENCH_WORKERS ?? '16');
  const cyclesPerWorker = options.cyclesPerWorker ?? Number(process.env.BENCH_CYCLES ?? '10');
  const burst = options.burst ?? Number(process.env.BENCH_BURST ?? '100');
  const progress = options.progress ?? (() => {});
  const before = machine();
  // The deployment's default unless a sweep asks for another (docs/design.md, "The command path").
  const sessionServiceConcurrency = process.env.BENCH_SESSION_CONCURRENCY
    ? Number(process.env.BENCH_SESSION_CONCURRENCY)
    : loadConfig({}).sessionConcurrency;
  const callLogFile = join(tmpdir(), `berth-bench-sessions-calls-${process.pid}.jsonl`);

  progress('sessions benchmark: starting the local stack');
  const stack = await startBenchStack({
    BERTH_IDLE_TIMEOUT: '1h',
    BERTH_SESSION_TTL: '1h',
    BERTH_MAX_SESSIONS: '100',
    BERTH_LOG_LEVEL: 'warn',
    BERTH_RATE_LIMIT: UNREACHABLE_RATE_LIMIT,
    BERTH_SESSION_CONCURRENCY: String(sessionServiceConcurrency),
    // Every service records its AWS calls here: the session service's give calls per command.
    ...callLogEnv(callLogFile),
  });
  useStackAws(stack.env);
  const sqs = createSqsClient();
  const sns = createSnsClient();
  try {
    const messaging = await resolveMessaging({
      sqs,
      sns,
      topicArn: await localLifecycleTopicArn(sns, loadConfig(process.env).lifecycleTopicArn),
    });
    progress(`  starting ${containers} containers`);
    const keys = await startContainers(stack, containers);

    const roundTrips = cyclesPerWorker * 2;
    progress(
      `  raw fauxqs round trips: ${workers} workers x ${roundTrips}, then a burst of ${burst}`,
    );
    const rawRuns = [await rawRun(sqs, () => oneHop(sqs), workers, roundTrips, burst)];
    progress('  raw fauxqs SQS hop + SNS -> SQS hop, the same loads');
    const twoHopRuns = [await rawRun(sqs, () => twoHops(sqs, sns), workers, roundTrips, burst)];

    const subscription = await EventSubscription.open({ sqs, sns, topicArn: messaging.topicArn });
    const router = new AnswerRouter(subscription);
    const command = async (
      type: CommandType,
      payload: Record<string, unknown>,
    ): Promise<{ ok: boolean; latency: number }> => {
      const commandId = randomUUID();
      const answer = router.expect(
        commandId,
        type === 'session.assign' ? ASSIGN_ANSWERS : RELEASE_ANSWERS,
      );
      const sent = performance.now();
      await sqs.send(
        new SendMessageCommand({
          QueueUrl: messaging.lifecycleCommandsUrl,
          MessageBody: JSON.stringify({ type, commandId, payload }),
        }),
      );
      const { event, at } = await answer;
      return { ok: SUCCESS.has(event.type), latency: at - sent };
    };

    let berthResult: SessionsBenchResult['berth'];
    try {
      const assignLatencies: number[] = [];
      const releaseLatencies: number[] = [];
      let failed = 0;
      const cycle = async (worker: number, round: number, record: boolean) => {
        const key = keys[worker % keys.length];
        const sessionId = `bench-w${worker}-r${round}-${randomBytes(3).toString('hex')}`;
        try {
          const assigned = await command('session.assign', {
            sessionId,
            ...key,
            threadId: `bench-t${worker}`,
          });
          const released = await command('session.release', { sessionId });
          if (!record) return;
          if (assigned.ok) assignLatencies.push(assigned.latency);
          else failed += 1;
          if (released.ok) releaseLatencies.push(released.latency);
          else failed += 1;
        } catch {
          if (record) failed += 2;
        }
      };
      progress(
        `  berth closed loop: ${workers} workers x ${cyclesPerWorker} assign+release over ${containers} containers (after one warm-up cycle each)`,
      );
      await Promise.all(Array.from({ length: workers }, (_, worker) => cycle(worker, 0, false)));
      const cpuBefore = cpuSnapshot(stack.process?.pid);
      const started = performance.now();
      await Promise.all(
        Array.from({ length: workers }, async (_, worker) => {
          for (let round = 1; round <= cyclesPerWorker; round += 1)
            await cycle(worker, round, true);
        }),
      );
      const closedLoop = phase(
        [...assignLatencies, ...releaseLatencies],
        failed,
        (performance.now() - started) / 1000,
      );
      const cpu = cpuPerOperation(cpuBefore, cpuSnapshot(stack.process?.pid), closedLoop.completed);

      progress(`  berth burst: ${burst} session.assign at once, then ${burst} session.release`);
      const burstSessions = Array.from({ length: burst }, (_, index) => ({
        sessionId: `bench-burst-${index}-${randomBytes(3).toString('hex')}`,
        key: keys[index % keys.length],
        threadId: `bench-burst-t${index % 4}`,
      }));
      const burstOf = async (
        type: CommandType,
        payloadOf: (session: (typeof burstSessions)[number]) => Record<string, unknown>,
      ) => {
        const bodies: string[] = [];
        const answers: Promise<Answer>[] = [];
        for (const session of burstSessions) {
          const commandId = randomUUID();
          answers.push(
            router.expect(commandId, type === 'session.assign' ? ASSIGN_ANSWERS : RELEASE_ANSWERS),
          );
          bodies.push(JSON.stringify({ type, commandId, payload: payloadOf(session) }));
        }
        const start = performance.now();
        await sendBatches(sqs, messaging.lifecycleCommandsUrl, bodies);
        const settled = await Promise.allSettled(answers);
        const times = settled.flatMap((result) =>
          result.status === 'fulfilled' && SUCCESS.has(result.value.event.type)
            ? [result.value.at - start]
            : [],
        );
        return phase(times, settled.length - times.length, Math.max(...times, 0) / 1000);
      };
      const bySessionService = (call: { service: string }) => call.service === 'session';
      const beforeAssigns = callMark(callLogFile);
      const burstAssign = await burstOf('session.assign', (session) => ({
        sessionId: session.sessionId,
        ...session.key,
        threadId: session.threadId,
      }));
      const assignCalls = callsSince(
        callLogFile,
        beforeAssigns,
        burstAssign.completed,
        bySessionService,
      );
      const beforeReleases = callMark(callLogFile);
      const burstRelease = await burstOf('session.release', (session) => ({
        sessionId: session.sessionId,
      }));
      const releaseCalls = callsSince(
        callLogFile,
        beforeReleases,
        burstRelease.completed,
        bySessionService,
      );
      berthResult = {
        closedLoop,
        assign: phase(assignLatencies, 0, 1).latencyMs,
        release: phase(releaseLatencies, 0, 1).latencyMs,
        burstAssign,
        burstRelease,
        calls: { assign: assignCalls, release: releaseCalls },
        cpu,
      };
    } finally {
      await router.close();
      await subscription.close();
    }

    progress('  raw fauxqs again');
    rawRuns.push(await rawRun(sqs, () => oneHop(sqs), workers, roundTrips, burst));
    twoHopRuns.push(await rawRun(sqs, () => twoHops(sqs, sns), workers, roundTrips, burst));
    const meanOf = (runs: { closedLoop: LoadPhase; burst: LoadPhase }[]) => ({
      closedLoop: meanPhase(runs.map((run) => run.closedLoop)),
      burst: meanPhase(runs.map((run) => run.burst)),
    });
    const raw = meanOf(rawRuns);
    const twoHop = meanOf(twoHopRuns);
    const burstPerSecond =
      (berthResult.burstAssign.perSecond + berthResult.burstRelease.perSecond) / 2;
    const ratiosTo = (baseline: { closedLoop: LoadPhase; burst: LoadPhase }) => ({
      closedLoopThroughput: round(
        ratio(berthResult.closedLoop.perSecond, baseline.closedLoop.perSecond),
        3,
      ),
      closedLoopP50: round(
        ratio(berthResult.closedLoop.latencyMs.p50, baseline.closedLoop.latencyMs.p50),
        2,
      ),
      closedLoopP99: round(
        ratio(berthResult.closedLoop.latencyMs.p99, baseline.closedLoop.latencyMs.p99),
        2,
      ),
      burstThroughput: round(ratio(burstPerSecond, baseline.burst.perSecond), 3),
    });
    return {
      benchmark: 'sessions',
      date: new Date().toISOString(),
      machine: before,
      settings: { containers, workers, cyclesPerWorker, burst, sessionServiceConcurrency },
      rawRuns,
      raw,
      twoHopRuns,
      twoHop,
      berth: berthResult,
      ratios: ratiosTo(raw),
      ratiosTwoHop: ratiosTo(twoHop),
      machineAfter: machine(),
    };
  } finally {
    sqs.destroy();
    sns.destroy();
    await stopBenchStack(stack);
    rmSync(callLogFile, { force: true });
  }
}

export function renderSessions(result: SessionsBenchResult): string {
  const { raw, berth, ratios, settings } = result;
  const row = (name: string, item: LoadPhase | LatencySummary, perSecond?: number) => {
    const latency = 'latencyMs' in item ? item.latencyMs : item;
    const count = 'latencyMs' in item ? item.completed : item.count;
    const failed = 'latencyMs' in item ? item.failed : 0;
    return [
      name,
      count,
      failed,
      perSecond ?? ('perSecond' in item ? item.perSecond : Number.NaN),
      latency.p50,
      latency.p99,
      latency.mean,
    ];
  };
  const table = textTable(
    ['load', 'done', 'failed', 'per s', 'p50 ms', 'p99 ms', 'mean ms'],
    [
      ...result.rawRuns.map((run, index) =>
        row(`raw SQS send->receive, closed loop (run ${index + 1})`, run.closedLoop),
      ),
      row('raw SQS send->receive, closed loop (mean, the baseline)', raw.closedLoop),
      ...(result.twoHopRuns ?? []).map((run, index) =>
        row(`raw SQS + SNS->SQS, closed loop (run ${index + 1})`, run.closedLoop),
      ),
      ...(result.twoHop
        ? [
            row(
              'raw SQS + SNS->SQS, closed loop (mean, two-hop baseline)',
              result.twoHop.closedLoop,
            ),
          ]
        : []),
      row('berth assign+release, closed loop', berth.closedLoop),
      row('  of which session.assign', berth.assign, Number.NaN),
      row('  of which session.release', berth.release, Number.NaN),
      ...result.rawRuns.map((run, index) => row(`raw SQS burst (run ${index + 1})`, run.burst)),
      row('raw SQS burst (mean, the baseline)', raw.burst),
      ...(result.twoHop
        ? [row('raw SQS + SNS->SQS burst (mean, two-hop baseline)', result.twoHop.burst)]
        : []),
      row('berth burst of session.assign', berth.burstAssign),
      row('berth burst of session.release', berth.burstRelease),
    ],
  );
  return [
    `sessions: ${settings.containers} containers, closed loop of ${settings.workers} workers x ${settings.cyclesPerWorker} assign+release, bursts of ${settings.burst}; session service concurrency ${settings.sessionServiceConcurrency}`,
    '(burst latency = time from the first send to each answer)',
    table,
    '',
    `session service AWS SDK calls per command (call recorder): session.assign ${describeCalls(berth.calls?.assign)}; session.release ${describeCalls(berth.calls?.release)}`,
    `CPU ms per command of the closed loop, by process of the stack: ${describeCpu(berth.cpu)}`,
    `ratios to the raw round trip: closed-loop throughput ${fmtRatio(ratios.closedLoopThroughput)}, p50 ${fmtRatio(ratios.closedLoopP50)}, p99 ${fmtRatio(ratios.closedLoopP99)}; burst throughput ${fmtRatio(ratios.burstThroughput)}`,
    ...(result.ratiosTwoHop
      ? [
          `ratios to the two-hop baseline (issue 13's goals: p50 <= 3x, p99 <= 4x, throughput >= 0.3x): closed-loop throughput ${fmtRatio(result.ratiosTwoHop.closedLoopThroughput)}, p50 ${fmtRatio(result.ratiosTwoHop.closedLoopP50)}, p99 ${fmtRatio(result.ratiosTwoHop.closedLoopP99)}; burst throughput ${fmtRatio(result.ratiosTwoHop.burstThroughput)}`,
        ]
      : []),
    `load average before ${result.machine.loadAverage.map((value) => fmt(value, 2)).join(' ')}, after ${result.machineAfter.loadAverage.map((value) => fmt(value, 2)).join(' ')} on ${result.machine.cpuCount} CPUs`,
  ].join('\n');
}

if (import.meta.main) {
  await runMain('bench:sessions', () => runSessionsBenchmark({ progress: say }), renderSessions);
}
