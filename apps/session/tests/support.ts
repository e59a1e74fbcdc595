import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { UseCases, type CoreDeps } from '@berth/core';
import type {
  BerthEvent,
  Clock,
  ContainerQueues,
  EventPublisher,
  StateStore,
  TaskStateChange,
} from '@berth/domain';
import { DynamoStateStore, ensureTables, type TableNames } from '@berth/dynamodb';
import { DEFAULT_FAKE_SETTINGS, FakeRuntime } from '@berth/testing';
import { randomUUID } from 'node:crypto';
import { createCommandHandler } from '../src/handler.ts';
import { createAgentReportHandler, type ReportRefusal } from '../src/reports.ts';

/** Table names of their own for each test file, so files can share one DynamoDB Local. */
export function uniqueTableNames(prefix: string): TableNames {
  const suffix = randomUUID().slice(0, 8);
  return {
    containerTable: `${prefix}-containers-${suffix}`,
    sessionTable: `${prefix}-sessions-${suffix}`,
  };
}

export async function dynamoStore(
  prefix: string,
  clock?: Clock,
): Promise<{ store: DynamoStateStore; client: DynamoDBClient; names: TableNames }> {
  const client = new DynamoDBClient({});
  const names = uniqueTableNames(prefix);
  await ensureTables(client, names);
  return {
    store: new DynamoStateStore({ client, ...names, ...(clock ? { clock } : {}) }),
    client,
    names,
  };
}

/** Log lines kept in memory: a failing test can print them, a passing one stays quiet. */
export function memoryLog() {
  const lines: { level: string; fields: object; message: string }[] = [];
  const at = (level: string) => (fields: object, message: string) =>
    void lines.push({ level, fields, message });
  return { lines, info: at('info'), warn: at('warn'), error: at('error') };
}

export interface SessionServiceUnderTest {
  useCases: UseCases;
  runtime: FakeRuntime;
  handle: ReturnType<typeof createCommandHandler>;
  /** The handler of berth-agent-reports (sender check off: fauxqs gives one SenderId to all). */
  reports: ReturnType<typeof createAgentReportHandler>;
  /** Every report the reports handler did not act on, in order, with why. */
  refusals: ReportRefusal[];
  log: ReturnType<typeof memoryLog>;
}

/** The session service's handler over the given adapters, with FakeRuntime as the compute. */
export function sessionService(options: {
  store: StateStore;
  queues: ContainerQueues;
  publisher: EventPublisher;
  clock: Clock;
  runtime?: FakeRuntime;
  maxSessions?: number;
}): SessionServiceUnderTest {
  const runtime = options.runtime ?? new FakeRuntime(options.clock);
  const log = memoryLog();
  const deps: CoreDeps = {
    store: options.store,
    runtime,
    queues: options.queues,
    publisher: options.publisher,
    clock: options.clock,
    log,
    settings: {
      ...DEFAULT_FAKE_SETTINGS,
      agentEnvironment: {},
      maxSessions: options.maxSessions ?? DEFAULT_FAKE_SETTINGS.maxSessions,
    },
  };
  const useCases = new UseCases(deps);
  const handle = createCommandHandler({
    useCases,
    publisher: options.publisher,
    clock: options.clock,
    log,
  });
  const refusals: ReportRefusal[] = [];
  const reports = createAgentReportHandler({
    useCases,
    store: options.store,
    publisher: options.publisher,
    clock: options.clock,
    log,
    senderCheck: 'off',
    refused: (reason) => void refusals.push(reason),
  });
  return { useCases, runtime, handle, reports, refusals, log };
}

/**
 * What the local runtime and the task watcher do together once a task is up or has ended:
 * the task changes state and its `ECS Task State Change` reaches the use cases.
 */
export async function taskEvent(
  service: SessionServiceUnderTest,
  taskArn: string,
  lastStatus: 'RUNNING' | 'STOPPED',
): Promise<TaskStateChange> {
  const event = service.runtime.change(
    taskArn,
    lastStatus === 'STOPPED' ? { lastStatus, exitCode: 0 } : { lastStatus },
  );
  await deliverTaskEvent(service, event);
  return event;
}

/**
 * Hands a task event to the use cases as the task watcher's queue would: a failed handling
 * is delivered again, up to the 5 receives after which SQS gives up and rethrows.
 */
export async function deliverTaskEvent(
  service: SessionServiceUnderTest,
  event: TaskStateChange,
): Promise<void> {
  for (let receive = 1; ; receive += 1) {
    try {
      await service.useCases.taskEvents.handle(event);
      return;
    } catch (error) {
      if (receive >= 5) throw error;
    }
  }
}

export const assignBody = (
  sessionId: string,
  key: { clientId: string; projectId: string; userId: string },
  commandId: string = randomUUID(),
  threadId?: string,
) => ({
  type: 'session.assign',
  commandId,
  payload: { sessionId, ...key, ...(threadId ? { threadId } : {}) },
});

export const releaseBody = (sessionId: string, commandId: string = randomUUID()) => ({
  type: 'session.release',
  commandId,
  payload: { sessionId },
});

export const touchBody = (sessionId: string, commandId: string = randomUUID()) => ({
  type: 'session.touch',
  commandId,
  payload: { sessionId },
});

export const stopBody = (
  containerId: string,
  commandId: string = randomUUID(),
  reason?: string,
  generation?: number,
) => ({
  type: 'container.stop',
  commandId,
  payload: {
    containerId,
    ...(reason ? { reason } : {}),
    ...(generation !== undefined ? { generation } : {}),
  },
});

export function describeEvents(events: readonly BerthEvent[]): string {
  return events.map((e) => `${e.type} ${e.eventId}`).join('\n');
}
