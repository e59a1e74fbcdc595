/**
 * The soak run: the local stack behind fault proxies, many users doing random session work,
 * service crashes and fault windows for a set time; then the load stops, the system settles,
 * and the checker compares what the store, the event history, the task log and the git
 * repositories say against what was asked of berth.
 */
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { SNSClient } from '@aws-sdk/client-sns';
import {
  LIVE_STATUSES,
  containerIdOf,
  isLive,
  loadConfig,
  parseStopReason,
  threadBranch,
  type BerthEvent,
  type ContainerJson,
  type ContainerKey,
  type ContainerRecord,
  type SessionRecord,
} from '@berth/domain';
import { DynamoStateStore } from '@berth/dynamodb';
import { EcsRuntime, createEcsClient } from '@berth/ecs';
import {
  CommandSender,
  EventSubscription,
  createSnsClient,
  createSqsClient,
  localLifecycleTopicArn,
  resolveMessaging,
  type MessagingResources,
} from '@berth/messaging';
import { freePort } from '@berth/testing';
import { startStack, type RunningStack } from '../stack/harness.ts';
import { AgentChaos, planAgentChaos } from './agent-chaos.ts';
import { Chaos, describeFault, planChaos } from './chaos.ts';
import { fallbackRefsFor, reportedFallbacks } from './fallback-refs.ts';
import {
  checkCommands,
  checkEventsOfStore,
  checkGenerations,
  checkMarkers,
  checkTaskOverlap,
  commandOutcomes,
  generationSpans,
  isKnownGap,
  markerFileKey,
  sessionCountProblem,
  taskSpansFromLog,
  type CommandKind,
  type CommandOutcome,
  type GenerationSpan,
  type MarkerRecord,
  type SentCommand,
  type Violation,
} from './checks.ts';
import { FaultProxy } from './fault-proxy.ts';
import type { FaultTarget, SoakOptions } from './options.ts';
import { Random } from './random.ts';

const execFileAsync = promisify(execFile);

export interface DeadLetter {
  queue: string;
  commandId: string | undefined;
  type: string | undefined;
  receiveCount: number;
  reason: string;
}

export interface SoakFigures {
  loadMs: number;
  settleMs: number;
  commandsSent: Record<string, number>;
  duplicatesSent: number;
  commandOutcomes: Record<CommandOutcome, number>;
  httpDiscovers: Record<string, number>;
  httpStops: Record<string, number>;
  httpErrors: number;
  sessions: number;
  messagesSent: number;
  messagesUndeliverable: number;
  answersOk: number;
  answersFailed: number;
  markersVerified: number;
  /** Lines found on their branch only after their container was started again (see docs/soak.md). */
  markersRecovered: number;
  recoveryRestarts: number;
  eventsSeen: number;
  eventDuplicates: number;
  eventsByType: Record<string, number>;
  containersStarted: number;
  generationsSeen: number;
  stopReasons: Record<string, number>;
  tasksRun: number;
  crashesInjected: number;
  crashesByService: Record<string, number>;
  unexpectedServiceExits: number;
  faultWindows: number;
  faultWindowsByKind: Record<string, number>;
  /** Agent kills, runtime kills and git faults (agent-chaos.ts), by kind. */
  agentFaultsByKind: Record<string, number>;
  /** Lines found only on a reported fallback ref (the remote moved and the work did not merge). */
  markersOnFallbackRefs: number;
  deadLettered: number;
  actionErrors: number;
  violations: number;
  knownGaps: number;
}

export interface SoakReport {
  ok: boolean;
  seed: number;
  settings: {
    durationMs: number;
    users: number;
    projects: number;
    clients: number;
    crashesPerMinute: number;
    faultsPerMinute: number;
    faultLengthMs: number;
    stack: Record<string, string>;
  };
  figures: SoakFigures;
  /** Broken promises: any of these fails the run. */
  violations: Violation[];
  /** Known gaps of berth (KNOWN_GAP_KINDS): reported; they fail the run only with --strict. */
  gaps: Violation[];
  deadLetters: DeadLetter[];
  crashes: { service: string; atMs: number; restartedAfterMs: number | undefined }[];
  faultWindows: { target: string; fault: string; atMs: number; lengthMs: number | undefined }[];
  agentFaults: { kind: string; target: string; atMs: number }[];
  unexpectedExits: string[];
  /** Planned crashes and fault windows that could not be carried out safely. */
  skippedChaos: { what: string; why: string }[];
  /** A few of the errors the load met (sending, HTTP), for diagnosis; they are not violations. */
  actionErrors: string[];
  dataDir: string;
  dataKept: boolean;
}

interface User {
  index: number;
  clientId: string;
  userId: string;
  random: Random;
}

type SessionState = 'pending' | 'active' | 'ended' | 'rejected';

interface SessionModel {
  sessionId: string;
  user: User;
  key: ContainerKey;
  containerId: string;
  threadId: string;
  state: SessionState;
  inputQueueUrl: string | undefined;
  /** The soak asked for its release (it may not have happened yet). */
  releaseSent: boolean;
  /** When its last assign or release was sent. */
  lastCommandAt: number;
}

/** Session commands a user may have unanswered at once. */
const MAX_OUTSTANDING = 3;
/** After this long an unanswered command no longer holds its user back (its event may be lost). */
const OUTSTANDING_FOR_MS = 90_000;

interface Poller {
  url: string;
  containerId: string;
  generation: number;
  /** Its generation reached stopped/failed: the poller ends at its first empty receive. */
  final: boolean;
}

const increment = (counts: Record<string, number>, key: string, by = 1): void => {
  counts[key] = (counts[key] ?? 0) + by;
};

function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'Error';
}

function isMissingQueue(error: unknown): boolean {
  return /NonExistentQueue|QueueDoesNotExist/.test(
    `${errorName(error)} ${(error as { Code?: string } | undefined)?.Code ?? ''}`,
  );
}

/** Runs `tasks` with at most `limit` at once. */
async function inBatches<T, R>(
  items: readonly T[],
  limit: number,
  task: (item: T) => Promise<R>,
): Promise<R[]> {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) {
        const index = next;
        next += 1;
        results[index] = await task(items[index] as T);
      }
    }),
  );
  return results;
}

export class SoakRun {
  readonly #options: SoakOptions;
  readonly #say: (line: string) => void;
  readonly #random: Random;
  readonly #tag: string;
  readonly #violations: Violation[] = [];
  readonly #figures: SoakFigures = {
    loadMs: 0,
    settleMs: 0,
    commandsSent: {},
    duplicatesSent: 0,
    commandOutcomes: {
      effect: 0,
      rejected: 0,
      'dead-lettered': 0,
      'no-event-expected': 0,
      lost: 0,
    },
    httpDiscovers: {},
    httpStops: {},
    httpErrors: 0,
    sessions: 0,
    messagesSent: 0,
    messagesUndeliverable: 0,
    answersOk: 0,
    answersFailed: 0,
    markersVerified: 0,
    markersRecovered: 0,
    recoveryRestarts: 0,
    eventsSeen: 0,
    eventDuplicates: 0,
    eventsByType: {},
    containersStarted: 0,
    generationsSeen: 0,
    stopReasons: {},
    tasksRun: 0,
    crashesInjected: 0,
    crashesByService: {},
    unexpectedServiceExits: 0,
    agentFaultsByKind: {},
    markersOnFallbackRefs: 0,
    faultWindows: 0,
    faultWindowsByKind: {},
    deadLettered: 0,
    actionErrors: 0,
    violations: 0,
    knownGaps: 0,
  };
  readonly #history: BerthEvent[] = [];
  readonly #eventIds = new Set<string>();
  readonly #commands = new Map<string, SentCommand & { body: string }>();
  readonly #sessions = new Map<string, SessionModel>();
  readonly #markers = new Map<string, MarkerRecord>();
  readonly #pollers = new Map<string, Poller>();
  readonly #pollerRuns = new Set<Promise<void>>();
  readonly #containerIds = new Set<string>();
  readonly #actionErrorSamples: string[] = [];
  #counter = 0;
  #loadStartedAt = 0;
  #lastEventAt = Date.now();
  #eventsClosed = false;
  #pollersStopped = false;
  #stackStopping = false;
  #stackExited = false;

  // Set up in run().
  #stack!: RunningStack;
  #sqs!: SQSClient;
  #pollSqs!: SQSClient;
  #sns!: SNSClient;
  #dynamodb!: DynamoDBClient;
  #store!: DynamoStateStore;
  #messaging!: MessagingResources;
  #sender!: CommandSender;
  #events!: EventSubscription;
  #runtime!: EcsRuntime;

  constructor(options: SoakOptions, say: (line: string) => void) {
    this.#options = options;
    this.#say = say;
    this.#random = new Random(options.seed);
    this.#tag = `r${options.seed.toString(36)}`;
  }

  async run(): Promise<SoakReport> {
    const options = this.#options;
    const [dynamodbPort, sqsPort] = await Promise.all([freePort(), freePort()]);
    // Latency jitter draws from a stream of its own: how often it is drawn depends on traffic.
    const jitter = this.#random.fork();
    const proxies: Record<FaultTarget, FaultProxy> = {
      dynamodb: await FaultProxy.start({
        name: 'dynamodb',
        targetPort: dynamodbPort,
        random: () => jitter.next(),
      }),
      sqs: await FaultProxy.start({
        name: 'sqs',
        targetPort: sqsPort,
        random: () => jitter.next(),
      }),
    };
    this.#say(
      `soak: seed ${options.seed}; starting the local stack (services reach DynamoDB via :${proxies.dynamodb.port}, SQS/SNS via :${proxies.sqs.port})`,
    );
    let stack: RunningStack;
    try {
      stack = await startStack(
        {
          ...options.stackEnv,
          BERTH_DYNAMODB_PORT: String(dynamodbPort),
          BERTH_SQS_PORT: String(sqsPort),
          BERTH_SERVICES_ENDPOINT_DYNAMODB: proxies.dynamodb.endpoint,
          BERTH_SERVICES_ENDPOINT_SQS: proxies.sqs.endpoint,
        },
        240_000,
      );
    } catch (error) {
      await Promise.all(Object.values(proxies).map((proxy) => proxy.close()));
      throw error;
    }
    this.#stack = stack;
    stack.process?.once('exit', () => {
      if (!this.#stackStopping) this.#stackExited = true;
    });
    this.#say(`soak: stack up at ${stack.url}, data in ${stack.dataDir}`);
    let chaos: Chaos | undefined;
    let agentChaos: AgentChaos | undefined;
    try {
      await this.#connect();
      const eventPump = this.#pumpEvents();

      // The load and the chaos.
      chaos = new Chaos({
        dataDir: stack.dataDir,
        proxies,
        services: options.services,
        random: this.#random.fork(),
        log: (line) => this.#say(`soak: ${line}`),
      });
      const plan = planChaos(options, this.#random.fork());
      agentChaos = new AgentChaos({
        dataDir: stack.dataDir,
        random: this.#random.fork(),
        refuseMs: options.faultLengthMs,
        log: (line) => this.#say(`soak: ${line}`),
      });
      const agentPlan = planAgentChaos(
        {
          durationMs: options.durationMs,
          faultsPerMinute: options.agentFaultsPerMinute,
          kinds: options.agentFaultKinds,
          refuseMs: options.faultLengthMs,
        },
        this.#random.fork(),
      );
      const users = this.#users();
      const startedAt = Date.now();
      this.#loadStartedAt = startedAt;
      const until = startedAt + options.durationMs;
      this.#say(
        `soak: load for ${Math.round(options.durationMs / 1000)} s: ${users.length} users, ${options.projects} projects per client, ${plan.filter((p) => p.action.kind === 'crash').length} crashes and ${plan.filter((p) => p.action.kind === 'fault').length} fault windows planned`,
      );
      const chaosRun = chaos.run(plan, startedAt);
      const agentChaosRun = agentChaos.run(agentPlan, startedAt);
      const progress = setInterval(() => this.#progress(startedAt), 15_000);
      await Promise.all(users.map((user) => this.#userLoop(user, until)));
      clearInterval(progress);
      this.#figures.loadMs = Date.now() - startedAt;
      await chaos.stop();
      await chaosRun;
      await agentChaos.stop();
      await agentChaosRun;

      // Settle and check.
      const settleStart = Date.now();
      await this.#settleAndCheck(chaos);
      this.#figures.settleMs = Date.now() - settleStart;

      this.#pollersStopped = true;
      await Promise.all(this.#pollerRuns);
      this.#eventsClosed = true;
      await this.#events.close().catch(() => undefined);
      await eventPump;
    } catch (error) {
      this.#violation(
        'stack',
        'soak',
        `the run could not finish: ${error instanceof Error ? error.message : String(error)}`,
      );
    } finally {
      this.#stackStopping = true;
      await stack.stop().catch(() => undefined);
      this.#pollersStopped = true;
      this.#eventsClosed = true;
      await Promise.all(Object.values(proxies).map((proxy) => proxy.close()));
    }

    // What only the files can tell, once the stack is gone.
    this.#checkTasks();
    this.#countExits(chaos, agentChaos);
    this.#closeClients();
    return this.#report(chaos, agentChaos);
  }

  async #connect(): Promise<void> {
    const env = this.#stack.env;
    // This process's SDK clients talk to the engines directly, past the proxies: the faults
    // are between berth and AWS, not between its users and berth.
    for (const [name, value] of Object.entries(env))
      if (name.startsWith('AWS_')) process.env[name] = value;
    this.#sqs = createSqsClient();
    this.#pollSqs = createSqsClient();
    this.#sns = createSnsClient();
    this.#dynamodb = new DynamoDBClient({});
    const tables = loadConfig(process.env);
    this.#store = new DynamoStateStore({
      client: this.#dynamodb,
      containerTable: tables.containerTable,
      sessionTable: tables.sessionTable,
    });
    this.#messaging = await resolveMessaging({
      sqs: this.#sqs,
      sns: this.#sns,
      topicArn: await localLifecycleTopicArn(this.#sns),
    });
    this.#sender = new CommandSender({
      sqs: this.#sqs,
      queueUrl: this.#messaging.lifecycleCommandsUrl,
    });
    this.#events = await EventSubscription.open({
      sqs: this.#sqs,
      sns: this.#sns,
      topicArn: this.#messaging.topicArn,
    });
    this.#runtime = new EcsRuntime({
      client: createEcsClient({ endpoint: `http://127.0.0.1:${env.BERTH_RUNTIME_PORT}` }),
      cluster: 'berth-local',
      taskDefinition: 'berth-workspace',
      containerName: 'workspace',
      subnets: [],
      securityGroups: [],
      workspaceRoot: join(this.#stack.dataDir, 'workspaces'),
      launchType: undefined,
    });
  }

  #closeClients(): void {
    // Any of them may be missing when the run failed while connecting.
    for (const client of [this.#sqs, this.#pollSqs, this.#sns, this.#dynamodb] as (
      { destroy(): void } | undefined
    )[]) {
      client?.destroy();
    }
  }

  #users(): User[] {
    const options = this.#options;
    return Array.from({ length: options.users }, (_, index) => ({
      index,
      clientId: `c${index % options.clients}`,
      userId: `u${index}`,
      random: this.#random.fork(),
    }));
  }

  #projectsOf(user: User): ContainerKey[] {
    return Array.from({ length: this.#options.projects }, (_, p) => ({
      clientId: user.clientId,
      projectId: `p${p}`,
      userId: user.userId,
    }));
  }

  #violation(kind: Violation['kind'], subject: string, detail: string): void {
    this.#violations.push({ kind, subject, detail });
  }

  #progress(startedAt: number): void {
    const live = new Set<string>();
    for (const poller of this.#pollers.values()) if (!poller.final) live.add(poller.containerId);
    const sent = Object.values(this.#figures.commandsSent).reduce((a, b) => a + b, 0);
    this.#say(
      `soak: t=${Math.round((Date.now() - startedAt) / 1000)}s commands ${sent}, events ${this.#history.length}, messages ${this.#figures.messagesSent} (answered ${this.#figures.answersOk}), containers with open queues ${live.size}, action errors ${this.#figures.actionErrors}`,
    );
  }

  // ---- events and answers ----

  async #pumpEvents(): Promise<void> {
    while (!this.#eventsClosed) {
      let event: BerthEvent | undefined;
      try {
        event = await this.#events.next(2_000);
      } catch {
        if (this.#eventsClosed) return;
        await delay(500);
        continue;
      }
      if (!event) continue;
      this.#lastEventAt = Date.now();
      if (this.#eventIds.has(event.eventId)) {
        this.#figures.eventDuplicates += 1;
        continue;
      }
      this.#eventIds.add(event.eventId);
      this.#history.push(event);
      this.#apply(event);
    }
  }

  #apply(event: BerthEvent): void {
    const session = event.sessionId ? this.#sessions.get(event.sessionId) : undefined;
    switch (event.type) {
      case 'session.assigned': {
        const payload = event.payload as {
          inputQueueUrl?: string | null;
          outputQueueUrl?: string | null;
        };
        if (session && session.state !== 'ended') session.state = 'active';
        if (session) session.inputQueueUrl = payload.inputQueueUrl ?? undefined;
        return;
      }
      case 'session.released':
      case 'session.expired':
        if (session) session.state = 'ended';
        return;
      case 'session.rejected':
        if (session?.state === 'pending') session.state = 'rejected';
        return;
      case 'command.rejected':
      case 'session.ready':
      case 'session.checkpointed':
      case 'session.reverted':
        return;
      case 'container.created':
      case 'container.running':
      case 'container.idle':
      case 'container.terminating':
      case 'container.stopped':
      case 'container.failed': {
        const container = (event.payload as { container?: ContainerJson }).container;
        if (!container) return;
        this.#containerIds.add(container.containerId);
        if (container.outputQueueUrl) this.#poll(container);
        return;
      }
    }
  }

  /** Reads a container generation's answers until its queue is gone or it is final and empty. */
  #poll(container: ContainerJson): void {
    const url = container.outputQueueUrl;
    if (!url) return;
    const existing = this.#pollers.get(url);
    if (existing) {
      if (!isLive(container.status)) existing.final = true;
      return;
    }
    const poller: Poller = {
      url,
      containerId: container.containerId,
      generation: container.generation,
      final: !isLive(container.status),
    };
    this.#pollers.set(url, poller);
    const run = this.#pollLoop(poller).finally(() => this.#pollerRuns.delete(run));
    this.#pollerRuns.add(run);
  }

  async #pollLoop(poller: Poller): Promise<void> {
    while (!this.#pollersStopped) {
      try {
        const { Messages = [] } = await this.#pollSqs.send(
          new ReceiveMessageCommand({
            QueueUrl: poller.url,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
          }),
        );
        for (const message of Messages) {
          this.#answer(message.Body, poller.generation);
          if (message.ReceiptHandle) {
            await this.#pollSqs
              .send(
                new DeleteMessageCommand({
                  QueueUrl: poller.url,
                  ReceiptHandle: message.ReceiptHandle,
                }),
              )
              .catch(() => undefined);
          }
        }
        if (Messages.length === 0 && poller.final) return;
      } catch (error) {
        if (isMissingQueue(error)) return;
        await delay(500);
      }
    }
  }

  #answer(body: string | undefined, generation: number): void {
    let answer: { text?: unknown; exitCode?: unknown };
    try {
      answer = JSON.parse(body ?? '') as typeof answer;
    } catch {
      return;
    }
    if (typeof answer.text !== 'string') return;
    const marker = this.#markers.get(answer.text.trim());
    if (!marker) return;
    const exitCode = typeof answer.exitCode === 'number' ? answer.exitCode : -1;
    if (marker.exitCode === 0) return;
    marker.exitCode = exitCode;
    marker.answeredAt = Date.now();
    marker.generation = generation;
    if (exitCode === 0) this.#figures.answersOk += 1;
    else this.#figures.answersFailed += 1;
  }

  // ---- the load ----

  async #userLoop(user: User, until: number): Promise<void> {
    const [min, max] = this.#options.thinkMs;
    while (Date.now() < until && !this.#stackExited) {
      await delay(user.random.int(min, max));
      if (Date.now() >= until) break;
      try {
        await this.#act(user);
      } catch (error) {
        this.#figures.actionErrors += 1;
        if (this.#actionErrorSamples.length < 10) {
          this.#actionErrorSamples.push(
            error instanceof Error ? `${error.name}: ${error.message}` : String(error),
          );
        }
      }
    }
  }

  async #act(user: User): Promise<void> {
    const random = user.random;
    const mine = [...this.#sessions.values()].filter((s) => s.user === user);
    const open = mine.filter(
      (s) => (s.state === 'active' || s.state === 'pending') && !s.releaseSent,
    );
    const active = mine.filter((s) => s.state === 'active' && !s.releaseSent);
    const reachable = active.filter((s) => s.inputQueueUrl !== undefined);
    // A user waits for its sessions as a person would: with a few answers outstanding it
    // sends no more session commands, so the load follows what berth can handle on this
    // machine instead of piling up a queue that would never drain.
    const now = Date.now();
    const waiting = mine.filter(
      (s) =>
        (s.state === 'pending' || (s.releaseSent && s.state !== 'ended')) &&
        now - s.lastCommandAt < OUTSTANDING_FOR_MS,
    ).length;
    const busy = waiting >= MAX_OUTSTANDING;
    const action = random.weighted({
      assign: busy ? 0 : open.length >= 6 ? 3 : 24,
      release: busy || open.length === 0 ? 0 : open.length >= 4 ? 30 : 12,
      touch: active.length === 0 ? 0 : 10,
      message: reachable.length === 0 ? 0 : 30,
      discover: 8,
      stop: busy ? 0 : 3,
      duplicate: busy || this.#commands.size === 0 ? 0 : 5,
      invalid: busy ? 0 : 1,
    });
    switch (action) {
      case 'assign': {
        const key = random.pick(this.#projectsOf(user));
        if (!key) return;
        const session = this.#newSession(user, key);
        await this.#sendCommand(
          'session.assign',
          {
            sessionId: session.sessionId,
            ...key,
            ...(session.threadId !== session.sessionId ? { threadId: session.threadId } : {}),
          },
          { sessionId: session.sessionId },
        );
        // Now and then the release goes out right behind its assign, so that SQS may deliver
        // them in either order.
        if (random.chance(0.08)) await this.#release(session);
        return;
      }
      case 'release': {
        const session = random.pick(open);
        if (session) await this.#release(session);
        return;
      }
      case 'touch': {
        const session = random.pick(active);
        if (session)
          await this.#sendCommand(
            'session.touch',
            { sessionId: session.sessionId },
            { sessionId: session.sessionId },
          );
        return;
      }
      case 'message': {
        const session = random.pick(reachable);
        if (session) await this.#message(session);
        return;
      }
      case 'discover': {
        const key = random.pick(this.#projectsOf(user));
        if (key) await this.#discover(key);
        return;
      }
      case 'stop': {
        const key = random.pick(this.#projectsOf(user));
        if (!key) return;
        const containerId = containerIdOf(key);
        if (random.chance(0.5)) {
          await this.#sendCommand(
            'container.stop',
            { containerId, reason: 'soak' },
            { containerId },
          );
        } else {
          await this.#httpStop(containerId);
        }
        return;
      }
      case 'duplicate': {
        const sent = [...this.#commands.values()].filter((c) => c.type !== 'invalid');
        const original = random.pick(sent.slice(-50));
        if (!original) return;
        await this.#sender.send(original.body);
        original.copies += 1;
        this.#figures.duplicatesSent += 1;
        return;
      }
      case 'invalid': {
        const commandId = this.#nextId('bad');
        // A well-formed envelope with a bad field: rejected once, naming the field.
        const body = JSON.stringify({
          type: 'session.assign',
          commandId,
          payload: {
            sessionId: this.#nextId('s'),
            clientId: 'Not_Valid',
            projectId: 'p0',
            userId: user.userId,
          },
        });
        await this.#sender.send(body);
        this.#record({ commandId, type: 'invalid', sentAt: Date.now(), copies: 1, body });
        return;
      }
    }
  }

  #nextId(prefix: string): string {
    this.#counter += 1;
    return `${prefix}-${this.#tag}-${this.#counter}`;
  }

  #newSession(user: User, key: ContainerKey): SessionModel {
    const sessionId = this.#nextId('s');
    // A few threads per user and project, so that threads outlive containers and are
    // restored from their branch; now and then no threadId (it is then the sessionId).
    const threadId = user.random.chance(0.15)
      ? sessionId
      : `${user.userId}.t${user.random.int(1, 3)}`;
    const session: SessionModel = {
      sessionId,
      user,
      key,
      containerId: containerIdOf(key),
      threadId,
      state: 'pending',
      inputQueueUrl: undefined,
      releaseSent: false,
      lastCommandAt: Date.now(),
    };
    this.#sessions.set(sessionId, session);
    this.#containerIds.add(session.containerId);
    this.#figures.sessions += 1;
    return session;
  }

  #record(command: SentCommand & { body: string }): void {
    this.#commands.set(command.commandId, command);
    increment(this.#figures.commandsSent, command.type);
  }

  async #sendCommand(
    type: Exclude<CommandKind, 'invalid'>,
    payload: Record<string, unknown>,
    about: { sessionId?: string; containerId?: string },
  ): Promise<void> {
    const commandId = this.#nextId('cmd');
    const body = JSON.stringify({ type, commandId, payload });
    const sentAt = Date.now();
    await this.#sender.send(body);
    this.#record({ commandId, type, sentAt, copies: 1, body, ...about });
  }

  async #release(session: SessionModel): Promise<void> {
    session.releaseSent = true;
    session.lastCommandAt = Date.now();
    await this.#sendCommand(
      'session.release',
      { sessionId: session.sessionId },
      { sessionId: session.sessionId },
    );
  }

  async #message(session: SessionModel): Promise<void> {
    const url = session.inputQueueUrl;
    if (!url) return;
    this.#counter += 1;
    const marker = `soak ${this.#tag} m${this.#counter} ${session.sessionId}`;
    const record: MarkerRecord = {
      marker,
      sessionId: session.sessionId,
      threadId: session.threadId,
      clientId: session.key.clientId,
      projectId: session.key.projectId,
      containerId: session.containerId,
      sentAt: Date.now(),
      answeredAt: undefined,
      exitCode: undefined,
    };
    this.#markers.set(marker, record);
    try {
      await this.#sqs.send(
        new SendMessageCommand({
          QueueUrl: url,
          MessageBody: JSON.stringify({
            sessionId: session.sessionId,
            threadId: session.threadId,
            text: marker,
          }),
        }),
      );
      this.#figures.messagesSent += 1;
    } catch (error) {
      // The container stopped since the session was assigned: its queue is gone.
      this.#markers.delete(marker);
      if (isMissingQueue(error)) this.#figures.messagesUndeliverable += 1;
      else throw error;
    }
  }

  async #http(method: string, path: string, body?: unknown): Promise<number> {
    try {
      const response = await fetch(`${this.#stack.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.#stack.adminToken}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(30_000),
      });
      await response.arrayBuffer();
      return response.status;
    } catch {
      // Discovery was just killed, or is restarting.
      this.#figures.httpErrors += 1;
      return 0;
    }
  }

  async #httpJson(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${this.#stack.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.#stack.adminToken}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(90_000),
    });
    const text = await response.text();
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // Not JSON: only the status counts.
    }
    return { status: response.status, body: parsed ?? {} };
  }

  async #discover(key: ContainerKey): Promise<void> {
    this.#containerIds.add(containerIdOf(key));
    const status = await this.#http('POST', '/v1/containers/discover', key);
    increment(this.#figures.httpDiscovers, String(status));
  }

  async #httpStop(containerId: string): Promise<void> {
    const status = await this.#http('POST', `/v1/containers/${containerId}/stop`, {
      reason: 'soak',
    });
    increment(this.#figures.httpStops, String(status));
  }

  // ---- settling ----

  async #waitFor(
    what: string,
    check: () => Promise<boolean>,
    timeoutMs: number,
    everyMs = 1_000,
  ): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.#stackExited) {
        this.#violation('stack', 'stack', `the stack exited by itself while waiting for ${what}`);
        return false;
      }
      if (await check().catch(() => false)) return true;
      await delay(everyMs);
    }
    return false;
  }

  async #queueDepth(url: string): Promise<number> {
    const { Attributes = {} } = await this.#sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: url,
        AttributeNames: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
        ],
      }),
    );
    return (
      Number(Attributes.ApproximateNumberOfMessages ?? 0) +
      Number(Attributes.ApproximateNumberOfMessagesNotVisible ?? 0) +
      Number(Attributes.ApproximateNumberOfMessagesDelayed ?? 0)
    );
  }

  /** Both queues berth consumes are empty three polls in a row. */
  async #waitDrained(what: string): Promise<void> {
    let emptyPolls = 0;
    const drained = await this.#waitFor(
      what,
      async () => {
        const depths = await Promise.all([
          this.#queueDepth(this.#messaging.lifecycleCommandsUrl),
          this.#queueDepth(this.#messaging.taskEventsUrl),
        ]);
        emptyPolls = depths.every((depth) => depth === 0) ? emptyPolls + 1 : 0;
        return emptyPolls >= 3;
      },
      this.#options.settleTimeoutMs,
    );
    if (!drained) {
      const depths = await Promise.all([
        this.#queueDepth(this.#messaging.lifecycleCommandsUrl).catch(() => -1),
        this.#queueDepth(this.#messaging.taskEventsUrl).catch(() => -1),
      ]);
      this.#violation(
        'queue-not-drained',
        what,
        `after ${Math.round(this.#options.settleTimeoutMs / 1000)} s: ${depths[0]} on berth-lifecycle-commands, ${depths[1]} on berth-task-events`,
      );
    }
  }

  async #servicesUp(chaos: Chaos): Promise<void> {
    const up = await this.#waitFor(
      'every service to run again',
      async () => chaos.allServicesReady() && (await this.#http('GET', '/readyz')) === 200,
      this.#options.settleTimeoutMs,
    );
    if (!up)
      this.#violation(
        'stack',
        'services',
        'not every service was running and ready after the load',
      );
  }

  async #settleAndCheck(chaos: Chaos): Promise<void> {
    const settle = this.#options.settleTimeoutMs;
    this.#say('soak: load stopped; fault windows closed; waiting for the queues to drain');
    await this.#servicesUp(chaos);
    await this.#waitDrained('commands sent during the load');

    // While sessions are still active: every container's list must match its sessions.
    this.#say('soak: checking session counts while sessions are active');
    await this.#checkSessionCounts('with sessions active');

    this.#say('soak: releasing every session');
    for (const session of this.#sessions.values()) {
      if (session.state !== 'ended') await this.#release(session);
    }
    await this.#waitDrained('the final releases');

    this.#say('soak: waiting for every container to stop');
    let stopped = await this.#waitAllStopped();

    this.#say('soak: checking the thread branches');
    const recovered = await this.#checkRepositories();
    if (recovered) stopped = await this.#waitAllStopped();

    const live = await this.#liveContainers();
    for (const container of live) {
      this.#violation(
        'container-not-stopped',
        `${container.containerId}#${container.generation}`,
        `${container.status} with ${container.sessions.length} sessions, idle since ${container.idleSince ?? 'never'}${stopped ? '' : ` (waited ${Math.round(settle / 1000)} s)`}`,
      );
    }
    for (const task of await this.#runtime.listTasks()) {
      this.#violation(
        'task-left',
        task.taskArn,
        `task of ${task.containerId ?? '?'} generation ${task.generation ?? '?'} is ${task.lastStatus}`,
      );
    }
    await this.#checkSessionCounts('at the end');
    await this.#checkStoreAndHistory();
  }

  /** No live container and no task, then a few quiet seconds for the last events. */
  async #waitAllStopped(): Promise<boolean> {
    const stopped = await this.#waitFor(
      'every container to stop',
      async () =>
        (await this.#liveContainers()).length === 0 &&
        (await this.#runtime.listTasks()).length === 0,
      this.#options.settleTimeoutMs,
      2_000,
    );
    await this.#waitFor(
      'the events to stop arriving',
      () => Promise.resolve(Date.now() - this.#lastEventAt > 4_000),
      60_000,
      500,
    );
    await this.#waitDrained('the last task events');
    return stopped;
  }

  /** Every container generation the store holds as live. */
  async #liveContainers(): Promise<ContainerRecord[]> {
    const found = new Map<string, ContainerRecord>();
    for (const status of LIVE_STATUSES) {
      for (const container of await this.#store.listContainersByStatus(status, 1000)) {
        found.set(container.containerId, container);
      }
    }
    // The status index is eventually consistent on AWS: read the known ones directly too.
    const known = await inBatches([...this.#containerIds], 8, (id) => this.#store.getContainer(id));
    for (const container of known)
      if (container && isLive(container.status)) found.set(container.containerId, container);
    return [...found.values()];
  }

  /**
   * A container's list against its session records, read so that the container did not change
   * in between (same version before and after); a disagreement must hold over a few reads.
   */
  async #checkSessionCounts(when: string): Promise<void> {
    const maxSessions = Number(this.#options.stackEnv.BERTH_MAX_SESSIONS ?? '10');
    await inBatches([...this.#containerIds], 4, async (containerId) => {
      let problem: string | undefined;
      for (let attempt = 0; attempt < 5; attempt += 1) {
        const before = await this.#store.getContainer(containerId);
        if (!before) return;
        const sessions = await this.#store.listSessionsByContainer(containerId);
        const after = await this.#store.getContainer(containerId);
        if (after?.version !== before.version) {
          await delay(300);
          continue;
        }
        problem = sessionCountProblem(before, sessions, maxSessions);
        if (problem === undefined) return;
        await delay(1_000);
      }
      if (problem !== undefined)
        this.#violation('session-count', containerId, `${when}: ${problem}`);
    });
  }

  async #checkStoreAndHistory(): Promise<void> {
    const sessions = (
      await inBatches([...this.#sessions.keys()], 8, (sessionId) =>
        this.#store.getSession(sessionId),
      )
    ).filter((s): s is SessionRecord => s !== undefined);
    for (const model of this.#sessions.values()) {
      const stored = sessions.find((s) => s.sessionId === model.sessionId);
      if (stored?.status === 'active') {
        this.#violation(
          'session-not-released',
          model.sessionId,
          `still active on ${stored.containerId ?? '?'} after its release`,
        );
      }
    }
    const containers = (
      await inBatches([...this.#containerIds], 8, (containerId) =>
        this.#store.getContainer(containerId),
      )
    ).filter((c): c is ContainerRecord => c !== undefined);

    const deadLetters = await this.#deadLetters();
    this.#deadLetterList = deadLetters;
    const deadLettered = new Set(deadLetters.flatMap((d) => (d.commandId ? [d.commandId] : [])));
    const commands = [...this.#commands.values()];
    const outcomes = commandOutcomes(commands, this.#history, deadLettered);
    for (const outcome of outcomes.values()) this.#figures.commandOutcomes[outcome] += 1;

    this.#violations.push(
      ...checkGenerations(this.#history),
      ...checkCommands(commands, outcomes),
      ...checkEventsOfStore(containers, sessions, this.#history),
    );
  }

  #deadLetterList: DeadLetter[] = [];

  /** Everything in both dead-letter queues, with the reason the consumer logged. */
  async #deadLetters(): Promise<DeadLetter[]> {
    const letters: DeadLetter[] = [];
    for (const [queue, url, log] of [
      ['berth-lifecycle-commands-dlq', this.#messaging.lifecycleCommandsDlqUrl, 'session.log'],
      ['berth-task-events-dlq', this.#messaging.taskEventsDlqUrl, 'task-watcher.log'],
    ] as const) {
      const seen = new Set<string>();
      for (;;) {
        const { Messages = [] } = await this.#sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: url,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 0,
            VisibilityTimeout: 300,
            MessageSystemAttributeNames: ['ApproximateReceiveCount'],
          }),
        );
        const fresh = Messages.filter((m) => m.MessageId && !seen.has(m.MessageId));
        if (fresh.length === 0) break;
        for (const message of fresh) {
          seen.add(message.MessageId ?? '');
          let body: { commandId?: unknown; type?: unknown; id?: unknown; 'detail-type'?: unknown } =
            {};
          try {
            body = JSON.parse(message.Body ?? '') as typeof body;
          } catch {
            // Not JSON: reported as it is.
          }
          const commandId = typeof body.commandId === 'string' ? body.commandId : undefined;
          letters.push({
            queue,
            commandId,
            type:
              typeof body.type === 'string'
                ? body.type
                : typeof body['detail-type'] === 'string'
                  ? body['detail-type']
                  : undefined,
            receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? 0),
            reason: this.#reasonFromLog(
              log,
              commandId ?? (typeof body.id === 'string' ? body.id : undefined),
            ),
          });
        }
      }
    }
    this.#figures.deadLettered = letters.length;
    return letters;
  }

  /** The last error the consumer logged about this command (pino JSON lines). */
  #reasonFromLog(logName: string, needle: string | undefined): string {
    if (!needle) return 'unknown (no id in the message)';
    let log = '';
    try {
      log = readFileSync(join(this.#stack.dataDir, 'logs', logName), 'utf8');
    } catch {
      return 'unknown (no log)';
    }
    let reason = 'unknown (nothing logged about it)';
    for (const line of log.split('\n')) {
      if (!line.includes(needle)) continue;
      try {
        const entry = JSON.parse(line) as {
          msg?: string;
          err?: { type?: string; message?: string };
        };
        if (entry.err)
          reason = `${entry.msg ?? ''}: ${entry.err.type ?? 'Error'}: ${entry.err.message ?? ''}`;
      } catch {
        // Not a log entry.
      }
    }
    return reason;
  }

  // ---- after the stack has stopped ----

  /** CHAT.md of every thread branch a marker was answered in. */
  async #threadFiles(markers: readonly MarkerRecord[]): Promise<Map<string, string | undefined>> {
    const files = new Map<string, string | undefined>();
    const fallbacks = reportedFallbacks(this.#history);
    const show = async (repo: string, ref: string): Promise<string | undefined> => {
      try {
        const { stdout } = await execFileAsync(
          'git',
          ['--git-dir', repo, 'show', `${ref}:CHAT.md`],
          {
            maxBuffer: 64 * 1024 * 1024,
          },
        );
        return stdout;
      } catch {
        return undefined;
      }
    };
    const fallbackChecked = new Set<string>();
    const branchFiles = new Map<string, string | undefined>();
    for (const marker of markers) {
      const key = markerFileKey(marker);
      const repo = join(this.#stack.dataDir, 'repos', marker.clientId, `${marker.projectId}.git`);
      const branch = threadBranch(marker.containerId.split('.')[2] ?? '', marker.threadId);
      if (!files.has(key)) {
        const onBranch = await show(repo, branch);
        files.set(key, onBranch);
        branchFiles.set(key, onBranch);
      }
      // Or on a fallback ref reported for the container (the remote moved; it did not merge).
      const containerKey = `${key}@${marker.containerId}`;
      if (fallbackChecked.has(containerKey)) continue;
      fallbackChecked.add(containerKey);
      for (const ref of fallbackRefsFor(fallbacks, marker.containerId, branch)) {
        const saved = await show(repo, ref);
        if (saved !== undefined) files.set(key, `${files.get(key) ?? ''}\n${saved}`);
      }
    }
    const lines = (text: string | undefined): Set<string> => new Set((text ?? '').split('\n'));
    for (const marker of markers) {
      const key = markerFileKey(marker);
      if (
        !lines(branchFiles.get(key)).has(marker.marker) &&
        lines(files.get(key)).has(marker.marker)
      )
        this.#onFallbackRefs.add(marker.marker);
    }
    this.#figures.markersOnFallbackRefs = this.#onFallbackRefs.size;
    return files;
  }

  readonly #onFallbackRefs = new Set<string>();

  /**
   * Every marker answered with exit code 0 must be on its thread's branch. A generation that
   * did not stop cleanly (forced after the grace period, save_failed, crashed, ...) may have
   * left its work in the workspace instead; the contract has the next start of that container
   * push it first. So such containers are started once more and stopped, and only what is
   * still missing then is a violation. Returns whether containers were restarted.
   */
  async #checkRepositories(): Promise<boolean> {
    const markers = [...this.#markers.values()].filter((m) => m.exitCode === 0);
    const endOf = (marker: MarkerRecord): GenerationSpan | undefined =>
      generationSpans(this.#history)
        .get(marker.containerId)
        ?.find((g) => g.generation === marker.generation);
    const describeEnd = (marker: MarkerRecord): string | undefined => {
      const span = endOf(marker);
      return span?.finalStatus
        ? `${span.finalStatus} (${span.stopReason ?? 'no reason'})`
        : undefined;
    };
    let missing = checkMarkers(markers, await this.#threadFiles(markers), describeEnd);
    const cleanKinds = ['idle', 'manual'];
    const toRecover = new Set(
      missing.flatMap((violation) => {
        const marker = this.#markers.get(violation.subject);
        const kind = parseStopReason(marker ? endOf(marker)?.stopReason : undefined)?.kind;
        return marker && !cleanKinds.includes(kind ?? '') ? [marker.containerId] : [];
      }),
    );
    if (toRecover.size > 0) {
      this.#say(
        `soak: ${missing.length} lines not on their branch; starting ${[...toRecover].join(', ')} again to push what an unclean stop left`,
      );
      for (const containerId of toRecover) await this.#restartToRecover(containerId);
      await this.#waitAllStopped();
      const before = missing.length;
      missing = checkMarkers(markers, await this.#threadFiles(markers), describeEnd);
      this.#figures.markersRecovered = before - missing.length;
    }
    this.#figures.markersVerified = markers.length - missing.length;
    this.#violations.push(...missing);
    return toRecover.size > 0;
  }

  /** Discover (start) a container, wait until it runs, then stop it over HTTP. */
  async #restartToRecover(containerId: string): Promise<void> {
    const [clientId, projectId, userId] = containerId.split('.');
    this.#figures.recoveryRestarts += 1;
    const running = await this.#waitFor(
      `${containerId} to run again`,
      async () => {
        const answer = await this.#httpJson('POST', '/v1/containers/discover?wait=30', {
          clientId,
          projectId,
          userId,
        });
        return (answer.body as { container?: { status?: string } }).container?.status === 'running';
      },
      this.#options.settleTimeoutMs,
      2_000,
    );
    if (!running) {
      this.#violation('stack', containerId, 'could not be started again to recover its workspace');
      return;
    }
    await this.#http('POST', `/v1/containers/${containerId}/stop`, { reason: 'soak recovery' });
  }

  #checkTasks(): void {
    let log = '';
    try {
      log = readFileSync(join(this.#stack.dataDir, 'logs', 'local-runtime.log'), 'utf8');
    } catch {
      return;
    }
    const tasks = taskSpansFromLog(log);
    this.#figures.tasksRun = tasks.length;
    this.#violations.push(...checkTaskOverlap(tasks));
  }

  #unexpectedExits: string[] = [];

  /** Service exits the stack reported that were not our SIGKILLs. */
  #countExits(chaos: Chaos | undefined, agentChaos: AgentChaos | undefined): void {
    const exits = [
      ...this.#stack.output().matchAll(/berth: (\S+) exited \(code (\S+), signal (\S+)\)/g),
    ];
    const kills = new Map<string, number>();
    for (const crash of chaos?.crashes ?? [])
      kills.set(crash.service, (kills.get(crash.service) ?? 0) + 1);
    const runtimeKills = (agentChaos?.faults ?? []).filter((f) => f.kind === 'kill-runtime');
    if (runtimeKills.length > 0) kills.set('local-runtime', runtimeKills.length);
    for (const [line, service = '', , signal] of exits) {
      const ours = kills.get(service) ?? 0;
      if (signal === 'SIGKILL' && ours > 0) kills.set(service, ours - 1);
      else this.#unexpectedExits.push(line);
    }
    this.#figures.unexpectedServiceExits = this.#unexpectedExits.length;
  }

  #report(chaos: Chaos | undefined, agentChaos: AgentChaos | undefined): SoakReport {
    const figures = this.#figures;
    figures.eventsSeen = this.#history.length;
    for (const event of this.#history) increment(figures.eventsByType, event.type);
    figures.containersStarted = figures.eventsByType['container.created'] ?? 0;
    figures.generationsSeen = new Set(
      this.#history.flatMap((e) => {
        const c = (e.payload as { container?: ContainerJson }).container;
        return c ? [`${c.containerId}#${c.generation}`] : [];
      }),
    ).size;
    for (const event of this.#history) {
      if (event.type !== 'container.stopped' && event.type !== 'container.failed') continue;
      const reason = (event.payload as { container?: ContainerJson }).container?.stopReason;
      increment(figures.stopReasons, parseStopReason(reason)?.kind ?? reason ?? 'none');
    }
    const crashes = chaos?.crashes ?? [];
    figures.crashesInjected = crashes.length;
    for (const crash of crashes) increment(figures.crashesByService, crash.service);
    const windows = chaos?.windows ?? [];
    figures.faultWindows = windows.length;
    for (const window of windows)
      increment(figures.faultWindowsByKind, `${window.target}:${window.fault.kind}`);
    const agentFaults = agentChaos?.faults ?? [];
    for (const fault of agentFaults) increment(figures.agentFaultsByKind, fault.kind);
    const gaps = this.#violations.filter((v) => isKnownGap(v) && !this.#options.strict);
    const violations = this.#violations.filter((v) => !gaps.includes(v));
    figures.violations = violations.length;
    figures.knownGaps = gaps.length;
    const ok = violations.length === 0;
    const dataDir = this.#stack.dataDir;
    const dataKept = !ok || this.#options.keep;
    const origin = this.#loadStartedAt;
    const report: SoakReport = {
      ok,
      seed: this.#options.seed,
      settings: {
        durationMs: this.#options.durationMs,
        users: this.#options.users,
        projects: this.#options.projects,
        clients: this.#options.clients,
        crashesPerMinute: this.#options.crashesPerMinute,
        faultsPerMinute: this.#options.faultsPerMinute,
        faultLengthMs: this.#options.faultLengthMs,
        stack: this.#options.stackEnv,
      },
      figures,
      violations,
      gaps,
      deadLetters: this.#deadLetterList,
      crashes: crashes.map((c) => ({
        service: c.service,
        atMs: c.at - origin,
        restartedAfterMs: c.restartedAfterMs,
      })),
      faultWindows: windows.map((w) => ({
        target: w.target,
        fault: describeFault(w.fault),
        atMs: w.from - origin,
        lengthMs: w.to === undefined ? undefined : w.to - w.from,
      })),
      agentFaults: agentFaults.map((f) => ({
        kind: f.kind,
        target: f.target,
        atMs: f.at - origin,
      })),
      unexpectedExits: this.#unexpectedExits,
      skippedChaos: [...(chaos?.skipped ?? []), ...(agentChaos?.skipped ?? [])],
      actionErrors: [...this.#actionErrorSamples],
      dataDir,
      dataKept,
    };
    if (dataKept) {
      // For diagnosis: the whole history as it arrived, and the report.
      writeFileSync(
        join(dataDir, 'soak-events.jsonl'),
        this.#history.map((e) => JSON.stringify(e)).join('\n') + '\n',
      );
      writeFileSync(join(dataDir, 'soak-report.json'), `${JSON.stringify(report, null, 2)}\n`);
    } else {
      rmSync(dataDir, { recursive: true, force: true });
    }
    return report;
  }
}

export async function runSoak(
  options: SoakOptions,
  say: (line: string) => void,
): Promise<SoakReport> {
  return new SoakRun(options, say).run();
}
