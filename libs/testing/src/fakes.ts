/**
 * In-memory implementations of the ports in @berth/domain, for unit tests of logic. They keep
 * the semantics the real adapters promise (conditional all-or-nothing writes, idempotent task
 * starts, idempotent queue creation), so a test that passes here exercises the same races
 * as production. Every read and write first yields to the event loop, so concurrent callers
 * interleave between their reads and their writes the way they do against a remote store.
 */
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import {
  containerDueAt,
  InvalidArgumentError,
  MANAGED_BY,
  NotFoundError,
  StaleWriteError,
  TASK_TAGS,
  UnavailableError,
  containerIdOf,
  parseDuration,
  type BerthEvent,
  type CheckpointRecord,
  type Clock,
  type CommandOutcomeRecord,
  type ContainerExpectation,
  type ContainerFilter,
  type ContainerGauges,
  type ContainerKey,
  type ContainerQueueUrls,
  type ContainerQueues,
  type ContainerRecord,
  type ContainerStatus,
  type ContainerWrite,
  type EventPublisher,
  type EventType,
  type Page,
  type Runtime,
  type SessionExpectation,
  type SessionGuardField,
  type SessionRecord,
  type SessionWrite,
  type StateStore,
  type StoreChange,
  type TaskInfo,
  type TaskSpec,
  type TaskStateChange,
  type TaskStatus,
} from '@berth/domain';

/** Queued failures per method: the next calls of that method throw, oldest first. */
class FaultPlan<Method extends string> {
  readonly #planned = new Map<Method, Error[]>();

  add(method: Method, error: Error, times: number): void {
    const queue = this.#planned.get(method) ?? [];
    for (let i = 0; i < times; i += 1) queue.push(error);
    this.#planned.set(method, queue);
  }

  /** Throws the next planned failure of `method`, if any. */
  take(method: Method): void {
    const error = this.#planned.get(method)?.shift();
    if (error) throw error;
  }
}

const copy = <T>(value: T): T => structuredClone(value);

function assertLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1) {
    throw new InvalidArgumentError(`limit must be a positive integer; got ${limit}`, 'limit');
  }
}

function encodeCursor(filter: ContainerFilter, lastContainerId: string): string {
  return Buffer.from(JSON.stringify({ f: filter, k: lastContainerId }), 'utf8').toString(
    'base64url',
  );
}

function decodeCursor(filter: ContainerFilter, cursor: string): string {
  const bad = (why: string) =>
    new InvalidArgumentError(`cursor is not valid for this query: ${why}`, 'cursor');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad('not a cursor');
  }
  if (typeof decoded !== 'object' || decoded === null) throw bad('not a cursor');
  const { f, k } = decoded as { f?: unknown; k?: unknown };
  if (typeof k !== 'string') throw bad('no key');
  if (JSON.stringify(f) !== JSON.stringify(filter)) throw bad('it belongs to another query');
  return k;
}

export type StoreMethod = keyof StateStore;

/**
 * The StateStore port with the DynamoDB adapter's condition semantics:
 * - `write` checks every expectation first and applies all writes or none;
 * - container `new-generation` with `previousGeneration: null` needs no item; with a number
 *   it needs an item of that generation whose status is stopped or failed, and the record
 *   written must be the next generation;
 * - container `version` needs the stored version to equal the expected one;
 * - session `absent` needs no item, `status` needs the stored status to equal the given one;
 * - a condition that does not hold throws StaleWriteError.
 */
export class InMemoryStateStore implements StateStore {
  readonly #containers = new Map<string, ContainerRecord>();
  readonly #sessions = new Map<string, SessionRecord>();
  readonly #outcomes = new Map<string, CommandOutcomeRecord>();
  readonly #checkpoints = new Map<string, CheckpointRecord>();
  readonly #faults = new FaultPlan<StoreMethod>();
  /** Successful writes so far, for tests that assert that nothing changed. */
  writes = 0;

  /** Makes the next `times` calls of `method` throw `error` (by default an UnavailableError). */
  failNext(
    method: StoreMethod,
    error: Error = new UnavailableError(`store: ${method} is unavailable`),
    times = 1,
  ): void {
    this.#faults.add(method, error, times);
  }

  /** Puts records in place without conditions, to arrange a test. */
  seed(records: { containers?: ContainerRecord[]; sessions?: SessionRecord[] }): void {
    for (const record of records.containers ?? [])
      this.#containers.set(record.containerId, copy(record));
    for (const record of records.sessions ?? []) this.#sessions.set(record.sessionId, copy(record));
  }

  /** Every container item, sorted by containerId. */
  allContainers(): ContainerRecord[] {
    return [...this.#containers.values()].sort(byContainerId).map(copy);
  }

  /** Every session item, sorted by sessionId. */
  allSessions(): SessionRecord[] {
    return [...this.#sessions.values()].sort((a, b) => compare(a.sessionId, b.sessionId)).map(copy);
  }

  async getContainer(containerId: string): Promise<ContainerRecord | undefined> {
    await this.#enter('getContainer');
    const record = this.#containers.get(containerId);
    return record && copy(record);
  }

  async getSession(sessionId: string): Promise<SessionRecord | undefined> {
    await this.#enter('getSession');
    const record = this.#sessions.get(sessionId);
    return record && copy(record);
  }

  async getOutcome(commandId: string): Promise<CommandOutcomeRecord | undefined> {
    await this.#enter('getOutcome');
    const record = this.#outcomes.get(commandId);
    return record && copy(record);
  }

  async write(change: StoreChange): Promise<void> {
    await this.#enter('write');
    const containers = change.containers ?? [];
    const sessions = change.sessions ?? [];
    const outcomes = change.outcomes ?? [];
    assertDistinct(
      outcomes.map((o) => o.commandId),
      'commandId',
    );
    for (const outcome of outcomes) {
      if (this.#outcomes.has(outcome.commandId)) {
        throw new StaleWriteError(`command ${outcome.commandId}: its outcome is decided already`);
      }
    }
    // DynamoDB refuses a transaction that names one item twice.
    assertDistinct(
      containers.map((w) => w.record.containerId),
      'containerId',
    );
    assertDistinct(
      sessions.map((w) => w.record.sessionId),
      'sessionId',
    );
    for (const write of containers) this.#checkContainer(write);
    for (const write of sessions) this.#checkSession(write);
    for (const write of containers)
      this.#containers.set(write.record.containerId, copy(write.record));
    for (const write of sessions) this.#sessions.set(write.record.sessionId, copy(write.record));
    for (const outcome of outcomes) this.#outcomes.set(outcome.commandId, copy(outcome));
    if (containers.length + sessions.length + outcomes.length > 0) this.writes += 1;
  }

  async listContainers(
    filter: ContainerFilter,
    limit: number,
    cursor?: string,
  ): Promise<Page<ContainerRecord>> {
    await this.#enter('listContainers');
    assertLimit(limit);
    const after = cursor === undefined ? undefined : decodeCursor(filter, cursor);
    const matching = [...this.#containers.values()]
      .filter(
        (c) =>
          (filter.clientId === undefined || c.clientId === filter.clientId) &&
          (filter.projectId === undefined || c.projectId === filter.projectId) &&
          (filter.userId === undefined || c.userId === filter.userId) &&
          (filter.status === undefined || c.status === filter.status) &&
          (after === undefined || c.containerId > after),
      )
      .sort(byContainerId);
    const items = matching.slice(0, limit);
    const last = items[items.length - 1];
    return {
      items: items.map(copy),
      nextCursor: matching.length > limit && last ? encodeCursor(filter, last.containerId) : null,
    };
  }

  async listIdleContainers(idleSinceAtOrBefore: string, limit: number): Promise<ContainerRecord[]> {
    await this.#enter('listIdleContainers');
    assertLimit(limit);
    return [...this.#containers.values()]
      .filter(
        (c) =>
          c.status === 'running' &&
          c.sessions.length === 0 &&
          c.idleSince !== null &&
          c.idleSince <= idleSinceAtOrBefore,
      )
      .sort((a, b) => compare(a.idleSince ?? '', b.idleSince ?? ''))
      .slice(0, limit)
      .map(copy);
  }

  async listDueContainers(atOrBefore: string, limit: number): Promise<ContainerRecord[]> {
    await this.#enter('listDueContainers');
    assertLimit(limit);
    return [...this.#containers.values()]
      .map((c) => ({ c, due: containerDueAt(c) }))
      .filter(({ due }) => due !== null && due <= atOrBefore)
      .sort((a, b) => compare(a.due ?? '', b.due ?? ''))
      .slice(0, limit)
      .map(({ c }) => copy(c));
  }

  async listContainersByStatus(status: ContainerStatus, limit: number): Promise<ContainerRecord[]> {
    await this.#enter('listContainersByStatus');
    assertLimit(limit);
    return [...this.#containers.values()]
      .filter((c) => c.status === status)
      .sort(byContainerId)
      .slice(0, limit)
      .map(copy);
  }

  async containerGauges(statuses: readonly ContainerStatus[]): Promise<ContainerGauges> {
    await this.#enter('containerGauges');
    const gauges: ContainerGauges = { byStatus: {}, runningBySessionCount: new Map() };
    for (const status of statuses) {
      const containers = [...this.#containers.values()].filter((c) => c.status === status);
      gauges.byStatus[status] = containers.length;
      if (status !== 'running') continue;
      for (const { sessions } of containers) {
        gauges.runningBySessionCount.set(
          sessions.length,
          (gauges.runningBySessionCount.get(sessions.length) ?? 0) + 1,
        );
      }
    }
    return gauges;
  }

  async listSessionsByContainer(containerId: string): Promise<SessionRecord[]> {
    await this.#enter('listSessionsByContainer');
    return [...this.#sessions.values()]
      .filter((s) => s.containerId === containerId)
      .sort((a, b) => compare(a.sessionId, b.sessionId))
      .map(copy);
  }

  async listSessionsWithPendingEvents(limit: number): Promise<SessionRecord[]> {
    await this.#enter('listSessionsWithPendingEvents');
    return [...this.#sessions.values()]
      .filter((s) => s.status !== 'active' && (s.pendingEvents?.length ?? 0) > 0)
      .sort((a, b) => compare(a.lastActivityAt ?? '', b.lastActivityAt ?? ''))
      .slice(0, limit)
      .map(copy);
  }

  async listStaleSessions(lastActivityAtOrBefore: string, limit: number): Promise<SessionRecord[]> {
    await this.#enter('listStaleSessions');
    assertLimit(limit);
    return [...this.#sessions.values()]
      .filter(
        (s) =>
          s.status === 'active' &&
          s.lastActivityAt !== null &&
          s.lastActivityAt <= lastActivityAtOrBefore,
      )
      .sort((a, b) => compare(a.lastActivityAt ?? '', b.lastActivityAt ?? ''))
      .slice(0, limit)
      .map(copy);
  }

  async recordCheckpoint(record: CheckpointRecord): Promise<boolean> {
    await this.#enter('recordCheckpoint');
    const key = `${record.containerId}\u0000${record.threadId}\u0000${record.commit}`;
    if (this.#checkpoints.has(key)) return false;
    this.#checkpoints.set(key, copy(record));
    this.writes += 1;
    return true;
  }

  async getCheckpoint(
    containerId: string,
    threadId: string,
    commit: string,
  ): Promise<CheckpointRecord | undefined> {
    await this.#enter('getCheckpoint');
    const record = this.#checkpoints.get(`${containerId}\u0000${threadId}\u0000${commit}`);
    return record && copy(record);
  }

  /** Newest first; the cursor is the index of the next item. */
  async listCheckpoints(
    containerId: string,
    threadId: string,
    limit: number,
    cursor?: string,
  ): Promise<Page<CheckpointRecord>> {
    await this.#enter('listCheckpoints');
    const all = [...this.#checkpoints.values()]
      .filter((c) => c.containerId === containerId && c.threadId === threadId)
      .sort((a, b) => compare(`${b.createdAt}/${b.commit}`, `${a.createdAt}/${a.commit}`));
    const start = cursor === undefined ? 0 : Number(cursor);
    const items = all.slice(start, start + limit).map(copy);
    const next = start + limit;
    return { items, nextCursor: next < all.length ? String(next) : null };
  }

  async ping(): Promise<void> {
    await this.#enter('ping');
  }

  async #enter(method: StoreMethod): Promise<void> {
    await yieldToEventLoop();
    this.#faults.take(method);
  }

  #checkContainer(write: ContainerWrite): void {
    const { record } = write;
    const expect: ContainerExpectation = write.expect;
    const stored = this.#containers.get(record.containerId);
    const stale = (why: string) => new StaleWriteError(`container ${record.containerId}: ${why}`);
    switch (expect.kind) {
      case 'new-generation':
        if (expect.previousGeneration === null) {
          if (stored) throw stale('an item exists already');
          return;
        }
        if (record.generation !== expect.previousGeneration + 1) {
          throw new InvalidArgumentError(
            `a new generation of ${record.containerId} must be ${expect.previousGeneration + 1}; got ${record.generation}`,
            'generation',
          );
        }
        if (!stored || stored.generation !== expect.previousGeneration) {
          throw stale(`generation ${expect.previousGeneration} is not the stored one`);
        }
        if (stored.status !== 'stopped' && stored.status !== 'failed') {
          throw stale(`generation ${expect.previousGeneration} is still ${stored.status}`);
        }
        return;
      case 'version':
        if (!stored || stored.version !== expect.version) {
          throw stale(`expected version ${expect.version}, stored ${stored?.version ?? 'none'}`);
        }
        return;
    }
  }

  #checkSession(write: SessionWrite): void {
    const expect: SessionExpectation = write.expect;
    const stored = this.#sessions.get(write.record.sessionId);
    const stale = (why: string) => new StaleWriteError(`session ${write.record.sessionId}: ${why}`);
    switch (expect.kind) {
      case 'absent':
        if (stored) throw stale('an item exists already');
        return;
      case 'status':
        if (!stored || stored.status !== expect.status) {
          throw stale(`expected status ${expect.status}, stored ${stored?.status ?? 'none'}`);
        }
        for (const [field, value] of Object.entries(expect.unchanged ?? {}) as [
          SessionGuardField,
          string | null,
        ][]) {
          if (stored[field] !== value) throw stale(`${field} changed since it was read`);
        }
        return;
    }
  }
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function byContainerId(a: ContainerRecord, b: ContainerRecord): number {
  return compare(a.containerId, b.containerId);
}

function assertDistinct(keys: string[], field: string): void {
  if (new Set(keys).size !== keys.length) {
    throw new InvalidArgumentError(
      `one write may change each item only once; ${field} repeats`,
      field,
    );
  }
}

/** A task as FakeRuntime keeps it: what the port reports, plus the spec it was started with. */
export interface FakeTask extends TaskInfo {
  spec: TaskSpec;
}

export type RuntimeMethod = keyof Runtime;

export interface TaskChange {
  lastStatus: TaskStatus;
  exitCode?: number;
  stoppedReason?: string;
  stopCode?: string;
}

/**
 * The Runtime port. `startTask` is idempotent per (containerId, generation) like the real
 * runtimes; `stopTask` asks the task to stop (`STOPPING`) and a test decides when and how it
 * ends with `change(taskArn, { lastStatus: 'STOPPED', ... })`, which also returns the
 * EventBridge-shaped event the runtime would emit.
 */
export class FakeRuntime implements Runtime {
  readonly #tasks = new Map<string, FakeTask>();
  readonly #faults = new FaultPlan<RuntimeMethod>();
  /** Every startTask call, including idempotent repeats and failed ones. */
  readonly startCalls: TaskSpec[] = [];
  /** Every stopTask call, including those for tasks already stopped or unknown. */
  readonly stopCalls: { taskArn: string; reason: string }[] = [];
  #sequence = 0;
  #clock: Clock;

  constructor(clock: Clock = { now: () => new Date() }) {
    this.#clock = clock;
  }

  /** Makes the next `times` calls of `method` throw `error` (by default an UnavailableError). */
  failNext(
    method: RuntimeMethod,
    error: Error = new UnavailableError(`runtime: ${method} failed`),
    times = 1,
  ): void {
    this.#faults.add(method, error, times);
  }

  workspacePathFor(key: ContainerKey): string {
    return `/workspaces/${containerIdOf(key)}`;
  }

  async startTask(spec: TaskSpec): Promise<TaskInfo> {
    await yieldToEventLoop();
    this.startCalls.push(copy(spec));
    this.#faults.take('startTask');
    const existing = [...this.#tasks.values()].find(
      (task) =>
        task.spec.containerId === spec.containerId && task.spec.generation === spec.generation,
    );
    if (existing) return info(existing);
    this.#sequence += 1;
    const task: FakeTask = {
      taskArn: `arn:fake:ecs:task/berth/${spec.containerId}/${spec.generation}/${this.#sequence}`,
      containerId: spec.containerId,
      generation: spec.generation,
      lastStatus: 'PENDING',
      desiredStatus: 'RUNNING',
      startedAt: undefined,
      stoppedAt: undefined,
      stopCode: undefined,
      stoppedReason: undefined,
      exitCode: undefined,
      endpoint: `10.0.0.${this.#sequence % 250}`,
      spec: copy(spec),
    };
    this.#tasks.set(task.taskArn, task);
    return info(task);
  }

  async describeTask(taskArn: string): Promise<TaskInfo | undefined> {
    await yieldToEventLoop();
    this.#faults.take('describeTask');
    const task = this.#tasks.get(taskArn);
    return task && info(task);
  }

  async stopTask(taskArn: string, reason: string): Promise<void> {
    await yieldToEventLoop();
    this.stopCalls.push({ taskArn, reason });
    this.#faults.take('stopTask');
    const task = this.#tasks.get(taskArn);
    if (!task || task.lastStatus === 'STOPPED') return;
    task.desiredStatus = 'STOPPED';
    task.lastStatus = 'STOPPING';
    // ECS keeps the first reason given; later stop requests do not replace it.
    task.stoppedReason ??= reason;
  }

  async listTasks(): Promise<TaskInfo[]> {
    await yieldToEventLoop();
    this.#faults.take('listTasks');
    return [...this.#tasks.values()].filter((task) => task.lastStatus !== 'STOPPED').map(info);
  }

  /** Every task the runtime knows, stopped ones included. */
  tasks(): FakeTask[] {
    return [...this.#tasks.values()].map(copy);
  }

  /** Tasks not yet stopped. */
  liveTasks(): FakeTask[] {
    return this.tasks().filter((task) => task.lastStatus !== 'STOPPED');
  }

  task(taskArn: string): FakeTask | undefined {
    const task = this.#tasks.get(taskArn);
    return task && copy(task);
  }

  /** The task disappears without a trace, as an ECS task does some time after it stopped. */
  vanish(taskArn: string): void {
    this.#tasks.delete(taskArn);
  }

  /** A task berth did not start through this runtime (a leftover, or another replica's). */
  adopt(spec: TaskSpec, lastStatus: TaskStatus = 'RUNNING'): FakeTask {
    this.#sequence += 1;
    const task: FakeTask = {
      taskArn: `arn:fake:ecs:task/berth/${spec.containerId}/${spec.generation}/${this.#sequence}`,
      containerId: spec.containerId,
      generation: spec.generation,
      lastStatus,
      desiredStatus: 'RUNNING',
      startedAt: this.#clock.now().toISOString(),
      stoppedAt: undefined,
      stopCode: undefined,
      stoppedReason: undefined,
      exitCode: undefined,
      endpoint: undefined,
      spec: copy(spec),
    };
    this.#tasks.set(task.taskArn, task);
    return copy(task);
  }

  /**
   * Moves a task to a new status and returns the `ECS Task State Change` event the runtime
   * would send for it, tags included.
   */
  change(taskArn: string, change: TaskChange): TaskStateChange {
    const task = this.#tasks.get(taskArn);
    if (!task) throw new NotFoundError(`FakeRuntime knows no task ${taskArn}`);
    const now = this.#clock.now().toISOString();
    task.lastStatus = change.lastStatus;
    if (change.lastStatus === 'RUNNING') task.startedAt ??= now;
    if (change.lastStatus === 'STOPPED') {
      task.desiredStatus = 'STOPPED';
      task.stoppedAt ??= now;
      task.exitCode = change.exitCode ?? task.exitCode;
      task.stopCode =
        change.stopCode ??
        task.stopCode ??
        (task.stoppedReason ? 'UserInitiated' : 'EssentialContainerExited');
    }
    if (change.stoppedReason !== undefined) task.stoppedReason = change.stoppedReason;
    return taskStateChange(task, now);
  }

  /** The event for the task as it is now, e.g. to deliver it a second time. */
  eventFor(taskArn: string): TaskStateChange {
    const task = this.#tasks.get(taskArn);
    if (!task) throw new NotFoundError(`FakeRuntime knows no task ${taskArn}`);
    return taskStateChange(task, this.#clock.now().toISOString());
  }
}

function info(task: FakeTask): TaskInfo {
  const { spec: _spec, ...rest } = task;
  return copy(rest);
}

/** The tags every berth task carries (contract), plus its generation. */
export function taskTags(
  spec: Pick<TaskSpec, 'containerId' | 'clientId' | 'projectId' | 'userId' | 'generation'>,
) {
  return [
    { key: TASK_TAGS.containerId, value: spec.containerId },
    { key: TASK_TAGS.clientId, value: spec.clientId },
    { key: TASK_TAGS.projectId, value: spec.projectId },
    { key: TASK_TAGS.userId, value: spec.userId },
    { key: TASK_TAGS.managedBy, value: MANAGED_BY },
    { key: TASK_TAGS.generation, value: String(spec.generation) },
  ];
}

let eventSequence = 0;

/** An EventBridge `ECS Task State Change` event for a fake task. */
export function taskStateChange(task: FakeTask, time: string): TaskStateChange {
  eventSequence += 1;
  return {
    version: '0',
    id: `fake-event-${eventSequence}`,
    'detail-type': 'ECS Task State Change',
    source: 'aws.ecs',
    time,
    resources: [task.taskArn],
    detail: {
      taskArn: task.taskArn,
      lastStatus: task.lastStatus,
      ...(task.desiredStatus ? { desiredStatus: task.desiredStatus } : {}),
      ...(task.startedAt ? { startedAt: task.startedAt } : {}),
      ...(task.stoppedAt ? { stoppedAt: task.stoppedAt } : {}),
      ...(task.stopCode ? { stopCode: task.stopCode } : {}),
      ...(task.stoppedReason ? { stoppedReason: task.stoppedReason } : {}),
      tags: taskTags(task.spec),
      containers: [
        {
          name: 'workspace',
          lastStatus: task.lastStatus,
          ...(task.exitCode !== undefined ? { exitCode: task.exitCode } : {}),
        },
      ],
    },
  };
}

export type QueuesMethod = keyof ContainerQueues;

/**
 * The ContainerQueues port. `create` is idempotent per (containerId, generation); a deleted
 * queue no longer exists and cannot be sent to.
 */
export class FakeQueues implements ContainerQueues {
  readonly #existing = new Set<string>();
  readonly #inFlight = new Map<string, number>();
  readonly #faults = new FaultPlan<QueuesMethod>();
  readonly created: ContainerQueueUrls[] = [];
  readonly deleted: ContainerQueueUrls[] = [];
  readonly sent: { queueUrl: string; body: object }[] = [];

  failNext(
    method: QueuesMethod,
    error: Error = new UnavailableError(`queues: ${method} failed`),
    times = 1,
  ): void {
    this.#faults.add(method, error, times);
  }

  static urlsFor(containerId: string, generation: number): ContainerQueueUrls {
    const base = `https://sqs.fake.local/000000000000/berth-${containerId.replaceAll('.', '_')}-g${generation}`;
    return { inputQueueUrl: `${base}-input`, outputQueueUrl: `${base}-output` };
  }

  async create(containerId: string, generation: number): Promise<ContainerQueueUrls> {
    await yieldToEventLoop();
    this.#faults.take('create');
    const urls = FakeQueues.urlsFor(containerId, generation);
    if (!this.#existing.has(urls.inputQueueUrl) || !this.#existing.has(urls.outputQueueUrl)) {
      this.created.push(urls);
    }
    this.#existing.add(urls.inputQueueUrl);
    this.#existing.add(urls.outputQueueUrl);
    return { ...urls };
  }

  async delete(urls: ContainerQueueUrls): Promise<void> {
    await yieldToEventLoop();
    this.#faults.take('delete');
    this.deleted.push({ ...urls });
    this.remove(urls.inputQueueUrl);
    this.remove(urls.outputQueueUrl);
  }

  async exists(queueUrl: string): Promise<boolean> {
    await yieldToEventLoop();
    this.#faults.take('exists');
    return this.#existing.has(queueUrl);
  }

  async messagesInFlight(inputQueueUrl: string): Promise<number> {
    await yieldToEventLoop();
    this.#faults.take('messagesInFlight');
    return this.#existing.has(inputQueueUrl) ? (this.#inFlight.get(inputQueueUrl) ?? 0) : 0;
  }

  async send(queueUrl: string, body: object): Promise<void> {
    await yieldToEventLoop();
    this.#faults.take('send');
    if (!this.#existing.has(queueUrl)) throw new NotFoundError(`queue ${queueUrl} does not exist`);
    this.sent.push({ queueUrl, body: copy(body) });
  }

  /** A queue removed behind berth's back (or by an earlier delete): it no longer exists. */
  remove(queueUrl: string): void {
    this.#existing.delete(queueUrl);
    this.#inFlight.delete(queueUrl);
  }

  has(queueUrl: string): boolean {
    return this.#existing.has(queueUrl);
  }

  setMessagesInFlight(inputQueueUrl: string, count: number): void {
    this.#inFlight.set(inputQueueUrl, count);
  }
}

/** The EventPublisher port: keeps every event it published; can fail on demand. */
export class RecordingPublisher implements EventPublisher {
  readonly events: BerthEvent[] = [];
  /** Publish calls, failed ones included. */
  attempts = 0;
  #failures: Error[] = [];
  #pingFails = false;
  #typedFailures: EventType[] = [];

  /** The next `count` publish calls throw (by default an UnavailableError) and publish nothing. */
  failNext(count = 1, error: Error = new UnavailableError('bus: publish failed')): void {
    for (let i = 0; i < count; i += 1) this.#failures.push(error);
  }

  /** The next `count` publish calls that carry an event of this type throw and publish nothing. */
  failNextOf(type: EventType, count = 1): void {
    this.#typedFailures.push(...Array.from({ length: count }, () => type));
  }

  set pingFails(value: boolean) {
    this.#pingFails = value;
  }

  async publish(events: readonly BerthEvent[]): Promise<void> {
    await yieldToEventLoop();
    this.attempts += 1;
    const failure = this.#failures.shift();
    if (failure) throw failure;
    const typed = this.#typedFailures.findIndex((type) => events.some((e) => e.type === type));
    if (typed >= 0) {
      const [type] = this.#typedFailures.splice(typed, 1);
      throw new UnavailableError(`bus: publish of ${String(type)} failed`);
    }
    this.events.push(...events.map(copy));
  }

  async ping(): Promise<void> {
    await yieldToEventLoop();
    if (this.#pingFails) throw new UnavailableError('bus: not reachable');
  }

  ofType(type: EventType): BerthEvent[] {
    return this.events.filter((event) => event.type === type);
  }

  types(): EventType[] {
    return this.events.map((event) => event.type);
  }

  clear(): void {
    this.events.length = 0;
  }
}

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  #now: number;

  constructor(start: Date | string = '2026-01-01T00:00:00.000Z') {
    this.#now = new Date(start).getTime();
  }

  now(): Date {
    return new Date(this.#now);
  }

  iso(): string {
    return this.now().toISOString();
  }

  set(time: Date | string): void {
    this.#now = new Date(time).getTime();
  }

  /** Moves forward by milliseconds or by a duration such as `20m`. */
  advance(by: number | string): Date {
    this.#now += typeof by === 'number' ? by : parseDuration(by, 'advance');
    return this.now();
  }
}

/** Shaped like @berth/core's CoreSettings (testing may not depend on the core). */
export interface FakeCoreSettings {
  maxSessions: number;
  idleTimeoutMs: number;
  sessionTtlMs: number;
  shutdownGraceMs: number;
  startTimeoutMs: number;
  agentEnvironment: Record<string, string>;
  repoUrlFor?: (key: ContainerKey) => string | undefined;
  /** False: the service may not start tasks (the reaper, the task watcher). */
  mayStartTasks?: boolean;
}

/**
 * Shaped like @berth/core's CoreDeps, with the fakes' own types so tests can steer them. The
 * store may be a real one (an integration test of an app over DynamoDB Local, say).
 */
export interface FakeCoreDeps<Store extends StateStore = StateStore> {
  store: Store;
  runtime: FakeRuntime;
  queues: FakeQueues;
  publisher: RecordingPublisher;
  clock: ManualClock;
  settings: FakeCoreSettings;
}

export interface FakeCoreDepsOverrides<
  Store extends StateStore = InMemoryStateStore,
> extends Partial<Omit<FakeCoreDeps<Store>, 'settings'>> {
  settings?: Partial<FakeCoreSettings>;
}

/** The contract's defaults. */
export const DEFAULT_FAKE_SETTINGS: Readonly<FakeCoreSettings> = {
  maxSessions: 10,
  idleTimeoutMs: 20 * 60_000,
  sessionTtlMs: 2 * 3_600_000,
  shutdownGraceMs: 60_000,
  startTimeoutMs: 5 * 60_000,
  agentEnvironment: {},
};

/** Fresh fakes for one test, sharing one ManualClock; anything given replaces its default. */
export function makeCoreDeps(overrides?: FakeCoreDepsOverrides): FakeCoreDeps<InMemoryStateStore>;
export function makeCoreDeps<Store extends StateStore>(
  overrides: FakeCoreDepsOverrides<Store> & { store: Store },
): FakeCoreDeps<Store>;
export function makeCoreDeps(overrides: FakeCoreDepsOverrides<StateStore> = {}): FakeCoreDeps {
  const clock = overrides.clock ?? new ManualClock();
  return {
    store: overrides.store ?? new InMemoryStateStore(),
    runtime: overrides.runtime ?? new FakeRuntime(clock),
    queues: overrides.queues ?? new FakeQueues(),
    publisher: overrides.publisher ?? new RecordingPublisher(),
    clock,
    settings: { ...DEFAULT_FAKE_SETTINGS, agentEnvironment: {}, ...overrides.settings },
  };
}
