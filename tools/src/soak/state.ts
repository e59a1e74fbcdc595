/** The state one soak run shares between its load, faults, checks and report. */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { type SQSClient } from '@aws-sdk/client-sqs';
import type { SNSClient } from '@aws-sdk/client-sns';
import {
  DEFAULT_AGENT_CONTAINER_NAME,
  loadConfig,
  type BerthEvent,
  type ContainerKey,
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
import { type RunningStack } from '../stack/harness.ts';
import type { MarkerRecord, SentCommand, Violation } from './checks.ts';
import type { SoakOptions } from './options.ts';
import { Random } from './random.ts';
import type { DeadLetter, SoakFigures } from './report.ts';

export const execFileAsync = promisify(execFile);

export interface User {
  index: number;
  clientId: string;
  userId: string;
  random: Random;
}

export type SessionState = 'pending' | 'active' | 'ended' | 'rejected';

export interface SessionModel {
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

export interface Poller {
  url: string;
  containerId: string;
  generation: number;
  /** Its generation reached stopped/failed: the poller ends at its first empty receive. */
  final: boolean;
}

export const increment = (counts: Record<string, number>, key: string, by = 1): void => {
  counts[key] = (counts[key] ?? 0) + by;
};

export function errorName(error: unknown): string {
  return error instanceof Error ? error.name : 'Error';
}

export function isMissingQueue(error: unknown): boolean {
  return /NonExistentQueue|QueueDoesNotExist/.test(
    `${errorName(error)} ${(error as { Code?: string } | undefined)?.Code ?? ''}`,
  );
}

/** Runs `tasks` with at most `limit` at once. */
export async function inBatches<T, R>(
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

/**
 * What one soak run knows and shares between its parts: its settings, the clients it reaches
 * the stack with, the model of every session and command it sent, the events it saw, its
 * figures and the violations found.
 */
export class SoakState {
  readonly options: SoakOptions;
  readonly say: (line: string) => void;
  readonly random: Random;
  readonly tag: string;
  readonly violations: Violation[] = [];
  readonly figures: SoakFigures = {
    loadMs: 0,
    settleMs: 0,
    commandsSent: {},
    duplicatesSent: 0,
    duplicatesAtOnce: 0,
    stepFaultsByKind: {},
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
  readonly history: BerthEvent[] = [];
  readonly eventIds = new Set<string>();
  readonly commands = new Map<string, SentCommand & { body: string }>();
  readonly sessions = new Map<string, SessionModel>();
  readonly markers = new Map<string, MarkerRecord>();
  readonly pollers = new Map<string, Poller>();
  readonly pollerRuns = new Set<Promise<void>>();
  readonly containerIds = new Set<string>();
  readonly actionErrorSamples: string[] = [];
  counter = 0;
  loadStartedAt = 0;
  lastEventAt = Date.now();
  eventsClosed = false;
  pollersStopped = false;
  stackStopping = false;
  stackExited = false;
  // Set up in run().
  stack!: RunningStack;
  sqs!: SQSClient;
  pollSqs!: SQSClient;
  sns!: SNSClient;
  dynamodb!: DynamoDBClient;
  store!: DynamoStateStore;
  messaging!: MessagingResources;
  sender!: CommandSender;
  events!: EventSubscription;
  runtime!: EcsRuntime;
  deadLetterList: DeadLetter[] = [];
  readonly onFallbackRefs = new Set<string>();
  unexpectedExits: string[] = [];

  constructor(options: SoakOptions, say: (line: string) => void) {
    this.options = options;
    this.say = say;
    this.random = new Random(options.seed);
    this.tag = `r${options.seed.toString(36)}`;
  }

  violation(kind: Violation['kind'], subject: string, detail: string): void {
    this.violations.push({ kind, subject, detail });
  }

  async connect(): Promise<void> {
    const env = this.stack.env;
    // This process's SDK clients talk to the engines directly, past the proxies: the faults
    // are between berth and AWS, not between its users and berth.
    for (const [name, value] of Object.entries(env))
      if (name.startsWith('AWS_')) process.env[name] = value;
    this.sqs = createSqsClient();
    this.pollSqs = createSqsClient();
    this.sns = createSnsClient();
    this.dynamodb = new DynamoDBClient({});
    const tables = loadConfig(process.env);
    this.store = new DynamoStateStore({
      client: this.dynamodb,
      containerTable: tables.containerTable,
      sessionTable: tables.sessionTable,
    });
    this.messaging = await resolveMessaging({
      sqs: this.sqs,
      sns: this.sns,
      topicArn: await localLifecycleTopicArn(this.sns, tables.lifecycleTopicArn),
    });
    this.sender = new CommandSender({
      sqs: this.sqs,
      queueUrl: this.messaging.lifecycleCommandsUrl,
    });
    this.events = await EventSubscription.open({
      sqs: this.sqs,
      sns: this.sns,
      topicArn: this.messaging.topicArn,
    });
    this.runtime = new EcsRuntime({
      client: createEcsClient({ endpoint: `http://127.0.0.1:${env.BERTH_RUNTIME_PORT}` }),
      cluster: 'berth-local',
      taskDefinition: 'berth-workspace',
      containerName: DEFAULT_AGENT_CONTAINER_NAME,
      subnets: [],
      securityGroups: [],
      workspaceRoot: join(this.stack.dataDir, 'workspaces'),
      launchType: undefined,
    });
  }

  closeClients(): void {
    // Any of them may be missing when the run failed while connecting.
    for (const client of [this.sqs, this.pollSqs, this.sns, this.dynamodb] as (
      { destroy(): void } | undefined
    )[]) {
      client?.destroy();
    }
  }

  async http(method: string, path: string, body?: unknown): Promise<number> {
    try {
      const response = await fetch(`${this.stack.url}${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.stack.adminToken}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(30_000),
      });
      await response.arrayBuffer();
      return response.status;
    } catch {
      // Discovery was just killed, or is restarting.
      this.figures.httpErrors += 1;
      return 0;
    }
  }

  async httpJson(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: unknown }> {
    const response = await fetch(`${this.stack.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${this.stack.adminToken}`,
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
}
