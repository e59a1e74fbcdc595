/**
 * The local stand-in for the ECS control plane: it owns every workspace agent process, so a
 * start, a stop and a crash are all seen in one place and reported as ECS reports them
 * (task states, stop codes, exit codes, `ECS Task State Change` events).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { constants } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import {
  CONTAINER_ID_PATTERN,
  POOL_SLOT_TAG,
  DEFAULT_AGENT_CONTAINER_NAME,
  TASK_TAGS,
  formatDuration,
  isIdPart,
  tagValue,
  type TaskStateChange,
} from '@berth/domain';
import type { Logger } from 'pino';
import {
  LOCAL_MOUNTS_VARIABLE,
  translateEnvironment,
  type AgentTaskDefinition,
} from './agent-task.ts';
import { taskStateChange } from './events.ts';
import {
  EcsApiError,
  invalidParameter,
  type ListTasksRequest,
  type RunTaskRequest,
  type Tag,
} from './protocol.ts';
import { BareRepositories } from './repos.ts';
import type { TaskState } from './task.ts';

export interface EventSink {
  send(event: TaskStateChange): Promise<void>;
}

export interface SupervisorOptions {
  /** `<data>`: repositories go to `<data>/repos`, agent logs to `<data>/logs`. */
  dataDir: string;
  /** The workspace agent's entry file, run with this process's Node.js. */
  agentEntry: string;
  /** How long an agent has to save and exit after SIGTERM before it is killed. */
  shutdownGraceMs: number;
  events: EventSink;
  logger: Logger;
  /** The environment every agent starts from; this process's own by default. */
  baseEnv?: NodeJS.ProcessEnv;
  /**
   * Plays ECS with this task definition (a deploy rehearsal): the agent runs its command with
   * its environment and the RunTask override only, instead of `agentEntry` with `baseEnv`.
   */
  agentTask?: AgentTaskDefinition;
  region?: string;
  account?: string;
  /** Attempts to deliver one event before it is given up (and logged). */
  eventAttempts?: number;
  eventRetryDelayMs?: number;
  /** How long a stopped task stays visible to DescribeTasks (ECS keeps them about an hour). */
  stoppedRetentionMs?: number;
}

export const SHUTDOWN_REASON = 'runtime shutting down';
const STOPPED_BY_USER = 'Task stopped by user';
const CONTAINER_EXITED = 'Essential container in task exited';
/** ECS's limit on a stop reason. */
const REASON_LIMIT = 255;
const PAGE_LIMIT = 100;
const CONTAINER_ID = new RegExp(CONTAINER_ID_PATTERN);

/** A task and the process behind it. */
interface Supervised {
  state: TaskState;
  child: ChildProcess;
  /** Set by StopTask: the reason given, and whether the grace period ran out. */
  stopRequest: { reason: string; forced: boolean } | undefined;
  /** The reason the agent gave (`{ type: 'stopping' }`) before it exited. */
  agentReason: string | undefined;
  /**
   * Process groups the agent started its workloads in (`{ type: 'workload', pgid }`): they
   * are not in the agent's own group, and must not outlive it.
   */
  workloadGroups: Set<number>;
  graceTimer: NodeJS.Timeout | undefined;
  exited: Promise<void>;
  markExited: () => void;
  /** Events of one task go out one after another, in the order the task changed. */
  eventChain: Promise<void>;
}

interface AgentMessage {
  type?: unknown;
  reason?: unknown;
  pgid?: unknown;
}

function signalNumber(signal: NodeJS.Signals): number {
  return constants.signals[signal] ?? 0;
}

/** The agent leads its own process group: signalling the group reaches what it started. */
function signalGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // The group is gone already.
  }
}

function isGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * What the runtime keeps on disk about each task while it runs (`<data>/run/tasks/`), so that
 * a runtime started after one that died (SIGKILL) knows the agents it left behind.
 */
interface TaskRegistryEntry {
  taskArn: string;
  containerId: string;
  generation: number;
  pid: number;
  workloadGroups: number[];
}

/** Whether `pid` is a live process started for `containerId` (its environment names it). */
function runsFor(pid: number, containerId: string): boolean {
  if (!isGroupAlive(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8')
      .split('\0')
      .includes(`CONTAINER_ID=${containerId}`);
  } catch {
    // No /proc (macOS): the group is alive, and pids are not reused that fast.
    return !existsSync('/proc/self');
  }
}

/** Every process of the task: the agent's group and the groups of its workloads. */
function killTaskProcesses(task: Supervised): void {
  signalGroup(task.child.pid, 'SIGKILL');
  for (const pgid of task.workloadGroups) signalGroup(pgid, 'SIGKILL');
  task.workloadGroups.clear();
}

function clusterName(cluster: string | undefined): string {
  if (!cluster) return 'berth';
  return cluster.includes('cluster/') ? (cluster.split('cluster/').at(-1) ?? cluster) : cluster;
}

function trimReason(reason: string): string {
  return reason
    .replace(/[\r\n]+/g, ' ')
    .trim()
    .slice(0, REASON_LIMIT);
}

/** The contract's tags of a container's task; they become paths, so they are checked exactly. */
function parseContainerTags(tags: Tag[]): {
  containerId: string;
  clientId: string;
  projectId: string;
  generation: number;
  pool: false;
} {
  const containerId = tagValue(tags, TASK_TAGS.containerId) ?? '';
  const clientId = tagValue(tags, TASK_TAGS.clientId) ?? '';
  const projectId = tagValue(tags, TASK_TAGS.projectId) ?? '';
  const generationTag = tagValue(tags, TASK_TAGS.generation) ?? '';
  if (!CONTAINER_ID.test(containerId)) {
    throw invalidParameter(
      `tag ${TASK_TAGS.containerId} must be a containerId (client.project.user)`,
    );
  }
  if (!isIdPart(clientId))
    throw invalidParameter(`tag ${TASK_TAGS.clientId} is missing or not a valid id`);
  if (!isIdPart(projectId))
    throw invalidParameter(`tag ${TASK_TAGS.projectId} is missing or not a valid id`);
  if (!/^[1-9]\d{0,9}$/.test(generationTag)) {
    throw invalidParameter(`tag ${TASK_TAGS.generation} must be a positive whole number`);
  }
  return { containerId, clientId, projectId, generation: Number(generationTag), pool: false };
}

/** A warm-pool member's tags: its slot and generation, no container yet. */
function parsePoolTags(
  tags: Tag[],
  slot: string,
): { containerId: string; clientId: string; projectId: string; generation: number; pool: true } {
  const generationTag = tagValue(tags, TASK_TAGS.generation) ?? '';
  if (!/^\d{1,4}$/.test(slot)) throw invalidParameter(`tag ${POOL_SLOT_TAG} must be a slot number`);
  if (!/^[1-9]\d{0,9}$/.test(generationTag)) {
    throw invalidParameter(`tag ${TASK_TAGS.generation} must be a positive whole number`);
  }
  return {
    containerId: `~pool#${slot}.${generationTag}`,
    clientId: '',
    projectId: '',
    generation: Number(generationTag),
    pool: true,
  };
}

export class Supervisor {
  readonly #options: Required<Omit<SupervisorOptions, 'baseEnv' | 'agentTask'>> & {
    baseEnv: NodeJS.ProcessEnv;
    agentTask: AgentTaskDefinition | undefined;
  };
  readonly #dataDir: string;
  readonly #repos: BareRepositories;
  readonly #tasks = new Map<string, Supervised>();
  readonly #byToken = new Map<string, Promise<Supervised>>();
  readonly #pendingEvents = new Set<Promise<void>>();
  /** The dev server ports of tasks not yet stopped: no two tasks get the same one. */
  readonly #devServerPorts = new Set<number>();
  /** Starts still preparing (repository, log file): shutdown waits for them to stop them too. */
  readonly #launching = new Set<Promise<unknown>>();
  #closing = false;

  constructor(options: SupervisorOptions) {
    this.#options = {
      region: 'local',
      account: '000000000000',
      eventAttempts: 6,
      eventRetryDelayMs: 250,
      stoppedRetentionMs: 60 * 60 * 1000,
      ...options,
      // eslint-disable-next-line no-restricted-properties -- an agent inherits the runtime's environment, as a task would its definition's
      baseEnv: options.baseEnv ?? process.env,
      agentTask: options.agentTask,
    };
    this.#dataDir = resolve(options.dataDir);
    this.#repos = new BareRepositories(join(this.#dataDir, 'repos'));
  }

  get #registryDir(): string {
    return join(this.#dataDir, 'run', 'tasks');
  }

  #register(task: Supervised): void {
    const pid = task.child.pid;
    if (pid === undefined) return;
    const entry: TaskRegistryEntry = {
      taskArn: task.state.taskArn,
      containerId: task.state.containerId,
      generation: task.state.generation,
      pid,
      workloadGroups: [...task.workloadGroups],
    };
    try {
      mkdirSync(this.#registryDir, { recursive: true });
      writeFileSync(join(this.#registryDir, `${task.state.taskId}.json`), JSON.stringify(entry));
    } catch (error) {
      this.logger.warn({ taskArn: task.state.taskArn, err: error }, 'could not register the task');
    }
  }

  #unregister(task: Supervised): void {
    rmSync(join(this.#registryDir, `${task.state.taskId}.json`), { force: true });
  }

  /**
   * The agents a runtime that died left behind (issue 12): on disconnect they save and exit
   * on their own, but until they have, a new generation of their container must not start
   * on the same workspace, and nothing else would ever tell that they ended. So before this
   * runtime answers any request, it waits up to the grace period for each to exit, kills
   * whatever of it is left, and logs each as `task stopped` like the tasks it ran itself.
   * Returns how many there were.
   */
  async settleOrphans(): Promise<number> {
    let names: string[];
    try {
      names = (await readdir(this.#registryDir)).filter((name) => name.endsWith('.json'));
    } catch {
      return 0;
    }
    const orphans: { file: string; entry: TaskRegistryEntry }[] = [];
    for (const name of names) {
      const file = join(this.#registryDir, name);
      try {
        orphans.push({
          file,
          entry: JSON.parse(await readFile(file, 'utf8')) as TaskRegistryEntry,
        });
      } catch {
        await rm(file, { force: true });
      }
    }
    if (orphans.length === 0) return 0;
    // Only groups whose leader is still this task's process: a pid reused since by an
    // unrelated process (a registry left from an earlier run) is never signalled.
    const groupsOf = (entry: TaskRegistryEntry): number[] =>
      [entry.pid, ...entry.workloadGroups].filter((pgid) => runsFor(pgid, entry.containerId));
    const anyAlive = (entry: TaskRegistryEntry): boolean => groupsOf(entry).some(isGroupAlive);
    this.logger.warn(
      { tasks: orphans.map((o) => o.entry.taskArn) },
      'agents of a runtime that died are still registered; waiting for them to end',
    );
    const deadline = Date.now() + this.#options.shutdownGraceMs;
    while (Date.now() < deadline && orphans.some((o) => anyAlive(o.entry))) {
      await delay(100);
    }
    for (const { file, entry } of orphans) {
      const forced = anyAlive(entry);
      for (const pgid of groupsOf(entry)) signalGroup(pgid, 'SIGKILL');
      // A SIGKILLed group takes a moment to be reaped by init.
      const killedBy = Date.now() + 5_000;
      while (Date.now() < killedBy && anyAlive(entry)) await delay(50);
      this.logger.info(
        {
          taskArn: entry.taskArn,
          containerId: entry.containerId,
          generation: entry.generation,
          orphaned: true,
          stoppedReason: forced
            ? `forced:killed by SIGKILL after the ${formatDuration(this.#options.shutdownGraceMs)} grace period (its runtime died)`
            : 'its runtime died; the agent exited',
        },
        'task stopped',
      );
      await rm(file, { force: true });
    }
    return orphans.length;
  }

  get logger(): Logger {
    return this.#options.logger;
  }

  /** Idempotent by clientToken: the same token answers with the task it started. */
  runTask(request: RunTaskRequest): Promise<TaskState> {
    if (this.#closing)
      throw new EcsApiError('ServerException', 'the local runtime is shutting down', 503);
    const token = request.clientToken;
    if (token !== undefined) {
      const existing = this.#byToken.get(token);
      if (existing) return existing.then((task) => task.state);
    }
    this.pruneStopped();
    const launching = this.launch(request);
    this.#launching.add(launching);
    void launching.then(
      () => this.#launching.delete(launching),
      () => this.#launching.delete(launching),
    );
    if (token !== undefined) {
      this.#byToken.set(token, launching);
      // A start that failed may be tried again with the same token.
      launching.catch(() => this.#byToken.delete(token));
    }
    return launching.then((task) => task.state);
  }

  describeTasks(refs: readonly string[]): {
    tasks: TaskState[];
    failures: { arn: string; reason: string }[];
  } {
    const tasks: TaskState[] = [];
    const failures: { arn: string; reason: string }[] = [];
    for (const ref of refs) {
      const task = this.find(ref);
      if (task) tasks.push(task.state);
      else failures.push({ arn: ref, reason: 'MISSING' });
    }
    return { tasks, failures };
  }

  listTasks(request: ListTasksRequest): { taskArns: string[]; nextToken: string | undefined } {
    const desired = request.desiredStatus ?? 'RUNNING';
    const matching = [...this.#tasks.values()]
      .map((task) => task.state)
      .filter(
        (state) =>
          state.desiredStatus === desired &&
          (request.startedBy === undefined || state.startedBy === request.startedBy),
      )
      .map((state) => state.taskArn);
    const start = request.nextToken
      ? Number.parseInt(Buffer.from(request.nextToken, 'base64url').toString(), 10)
      : 0;
    if (!Number.isInteger(start) || start < 0) throw invalidParameter('nextToken is not valid');
    const size = Math.min(Math.max(request.maxResults ?? PAGE_LIMIT, 1), PAGE_LIMIT);
    const end = start + size;
    return {
      taskArns: matching.slice(start, end),
      nextToken: end < matching.length ? Buffer.from(String(end)).toString('base64url') : undefined,
    };
  }

  /**
   * SIGTERM now, SIGKILL (to the whole process group) once the grace period is over. Stopping
   * a task that is stopping or stopped already changes nothing.
   */
  stopTask(ref: string, reason: string | undefined): TaskState {
    const task = this.find(ref);
    if (!task) throw invalidParameter('The referenced task was not found.');
    if (task.state.lastStatus === 'STOPPED' || task.stopRequest) return task.state;
    const state = task.state;
    task.stopRequest = { reason: trimReason(reason ?? '') || STOPPED_BY_USER, forced: false };
    state.desiredStatus = 'STOPPED';
    state.stoppingAt = new Date();
    this.logger.info(
      { taskArn: state.taskArn, containerId: state.containerId, reason: task.stopRequest.reason },
      'stopping task',
    );
    task.child.kill('SIGTERM');
    task.graceTimer = setTimeout(() => {
      if (state.lastStatus === 'STOPPED' || !task.stopRequest) return;
      task.stopRequest.forced = true;
      this.logger.warn(
        {
          taskArn: state.taskArn,
          containerId: state.containerId,
          graceMs: this.#options.shutdownGraceMs,
        },
        'task did not stop within the grace period: killing it',
      );
      killTaskProcesses(task);
    }, this.#options.shutdownGraceMs);
    return state;
  }

  /** The agent's process id, for operators and tests; undefined once it has stopped. */
  pidOf(ref: string): number | undefined {
    const task = this.find(ref);
    return task && task.state.lastStatus !== 'STOPPED' ? task.child.pid : undefined;
  }

  /** Resolves once the task's process has exited and its STOPPED state is recorded. */
  async waitForStop(ref: string): Promise<void> {
    await this.find(ref)?.exited;
  }

  /** Waits until every event emitted so far has been delivered (or given up). */
  async flushEvents(): Promise<void> {
    while (this.#pendingEvents.size > 0) await Promise.all([...this.#pendingEvents]);
  }

  /**
   * Stops every task as StopTask would, waits for them (the grace period bounds it) and for
   * their STOPPED events (unless `waitForEvents` is false: when the queue they go to is known
   * to be gone with the stack, retrying to deliver them only delays the exit). New tasks are
   * refused from the first moment.
   */
  async shutdown({ waitForEvents = true }: { waitForEvents?: boolean } = {}): Promise<void> {
    this.#closing = true;
    await Promise.allSettled([...this.#launching]);
    const live = [...this.#tasks.values()].filter((task) => task.state.lastStatus !== 'STOPPED');
    this.logger.info({ tasks: live.length }, 'stopping every task');
    for (const task of live) this.stopTask(task.state.taskArn, SHUTDOWN_REASON);
    const exitedInTime = await Promise.race([
      Promise.all(live.map((task) => task.exited)).then(() => true),
      delay(this.#options.shutdownGraceMs + 5000, false, { ref: false }),
    ]);
    if (!exitedInTime) this.logger.error('some tasks did not exit even after SIGKILL');
    if (waitForEvents) await this.flushEvents();
  }

  private find(ref: string): Supervised | undefined {
    const direct = this.#tasks.get(ref);
    if (direct) return direct;
    // ECS accepts a bare task id as well as the ARN.
    for (const task of this.#tasks.values()) if (task.state.taskId === ref) return task;
    return undefined;
  }

  private pruneStopped(): void {
    const horizon = Date.now() - this.#options.stoppedRetentionMs;
    for (const [arn, task] of this.#tasks) {
      const stoppedAt = task.state.stoppedAt;
      if (stoppedAt && stoppedAt.getTime() < horizon) {
        this.#tasks.delete(arn);
        if (task.state.clientToken !== undefined) this.#byToken.delete(task.state.clientToken);
      }
    }
  }

  private async launch(request: RunTaskRequest): Promise<Supervised> {
    if (!request.taskDefinition) throw invalidParameter('taskDefinition is required');
    if (request.count !== undefined && request.count !== 1) {
      throw invalidParameter('the local runtime starts one task per RunTask (count must be 1)');
    }
    const tags: Tag[] = (Array.isArray(request.tags) ? request.tags : []).flatMap((tag) =>
      typeof tag.key === 'string' ? [{ key: tag.key, value: String(tag.value ?? '') }] : [],
    );
    const poolSlot = tagValue(tags, POOL_SLOT_TAG);
    const identity =
      poolSlot === undefined ? parseContainerTags(tags) : parsePoolTags(tags, poolSlot);
    const { containerId, clientId, projectId, generation } = identity;
    const override = request.overrides?.containerOverrides?.[0];
    const environment: Record<string, string> = {};
    for (const entry of override?.environment ?? []) {
      if (typeof entry.name === 'string') environment[entry.name] = String(entry.value ?? '');
    }

    // A warm-pool member belongs to no project yet: its claim names the repository.
    const repo = identity.pool ? undefined : await this.#repos.ensure(clientId, projectId);
    if (repo?.created) this.logger.info({ repository: repo.path }, 'created project repository');
    const logsDir = join(this.#dataDir, 'logs');
    await mkdir(logsDir, { recursive: true });

    const { region, account } = this.#options;
    const cluster = clusterName(request.cluster);
    const taskId = randomUUID();
    const taskArn = `arn:aws:ecs:${region}:${account}:task/${cluster}/${taskId}`;
    const containerName = override?.name ?? DEFAULT_AGENT_CONTAINER_NAME;
    const state: TaskState = {
      taskArn,
      taskId,
      clusterArn: `arn:aws:ecs:${region}:${account}:cluster/${cluster}`,
      taskDefinitionArn: request.taskDefinition.startsWith('arn:')
        ? request.taskDefinition
        : `arn:aws:ecs:${region}:${account}:task-definition/${request.taskDefinition}`,
      containerName,
      containerArn: `arn:aws:ecs:${region}:${account}:container/${cluster}/${taskId}/${randomUUID()}`,
      startedBy: request.startedBy,
      group: request.group,
      launchType: request.launchType,
      clientToken: request.clientToken,
      tags,
      environment,
      containerId,
      generation,
      clientId,
      projectId,
      lastStatus: 'PENDING',
      desiredStatus: 'RUNNING',
      createdAt: new Date(),
      startedAt: undefined,
      stoppingAt: undefined,
      stoppedAt: undefined,
      stopCode: undefined,
      stoppedReason: undefined,
      exitCode: undefined,
      version: 1,
      logPath: join(
        logsDir,
        identity.pool
          ? `pool.s${poolSlot}.g${generation}.log`
          : `${containerId}.g${generation}.log`,
      ),
    };

    state.devServerPort = await this.reserveDevServerPort();
    const child = this.spawnAgent(state, repo?.path);
    let markExited = (): void => {};
    const exited = new Promise<void>((resolveExit) => {
      markExited = resolveExit;
    });
    const task: Supervised = {
      state,
      child,
      stopRequest: undefined,
      agentReason: undefined,
      workloadGroups: new Set(),
      graceTimer: undefined,
      exited,
      markExited,
      eventChain: Promise.resolve(),
    };
    this.#tasks.set(taskArn, task);
    this.#register(task);
    child.on('message', (message: unknown) => this.onAgentMessage(task, message));
    child.on('error', (error) => {
      this.logger.error({ taskArn, containerId, err: error }, 'agent process error');
      if (child.pid === undefined) this.onExit(task, null, null);
    });
    child.once('close', (code, signal) => this.onExit(task, code, signal));
    this.logger.info(
      {
        taskArn,
        containerId,
        generation,
        pid: child.pid,
        log: state.logPath,
        clientToken: request.clientToken,
      },
      'task started',
    );
    void exited.then(() => {
      if (state.devServerPort !== undefined) this.#devServerPorts.delete(state.devServerPort);
    });
    this.emit(task);
    return task;
  }

  private spawnAgent(state: TaskState, repoPath: string | undefined): ChildProcess {
    const log = openSync(state.logPath, 'a');
    const task = this.#options.agentTask;
    try {
      if (task !== undefined) {
        // As ECS runs it: the task definition's command and environment, and the override.
        const [command = '', ...args] = task.command;
        return spawn(command, args, {
          cwd: task.workingDirectory,
          env: {
            ...translateEnvironment({ ...task.environment, ...state.environment }, task.mounts),
            // A warm-pool member learns its workspace path from its claim, after this
            // translation: it maps that path through the same volumes itself.
            ...(task.mounts.length > 0
              ? { [LOCAL_MOUNTS_VARIABLE]: JSON.stringify(task.mounts) }
              : {}),
            ...this.devServerEnv(state),
          },
          detached: true,
          stdio: ['ignore', log, log, 'ipc'],
        });
      }
      return spawn(process.execPath, [this.#options.agentEntry], {
        env: {
          ...this.#options.baseEnv,
          ...state.environment,
          ...(repoPath === undefined ? {} : { BERTH_REPO_URL: repoPath }),
          BERTH_SHUTDOWN_GRACE: formatDuration(this.#options.shutdownGraceMs),
          ...this.devServerEnv(state),
        },
        // Its own process group: a Ctrl-C in the terminal reaches only this supervisor, which
        // then stops each agent gracefully, and a forced kill reaches the agent's children.
        detached: true,
        stdio: ['ignore', log, log, 'ipc'],
      });
    } finally {
      // The child holds its own copy of the descriptor.
      closeSync(log);
    }
  }

  /**
   * A port of this machine that nothing listens on now and no other live task was given: every
   * task shares 127.0.0.1 here, where on ECS each has an address of its own, so each gets its
   * own dev server port (BERTH_DEV_SERVER_PORT), chosen by the operating system.
   */
  private async reserveDevServerPort(): Promise<number> {
    for (let attempt = 0; attempt < 20; attempt += 1) {
      const server = createServer();
      const port = await new Promise<number>((resolvePort, reject) => {
        server.once('error', reject);
        server.listen(0, '127.0.0.1', () => {
          const address = server.address();
          resolvePort(typeof address === 'object' && address !== null ? address.port : 0);
        });
      });
      await new Promise<void>((closed) => server.close(() => closed()));
      if (port > 0 && !this.#devServerPorts.has(port)) {
        this.#devServerPorts.add(port);
        return port;
      }
    }
    throw new Error('no free port for the dev server after 20 tries');
  }

  private devServerEnv(state: TaskState): Record<string, string> {
    return state.devServerPort === undefined
      ? {}
      : { BERTH_DEV_SERVER_PORT: String(state.devServerPort) };
  }

  private onAgentMessage(task: Supervised, message: unknown): void {
    if (typeof message !== 'object' || message === null) return;
    const { type, reason, pgid } = message as AgentMessage;
    const state = task.state;
    if (type === 'workload' && Number.isInteger(pgid) && (pgid as number) > 1) {
      // Forget groups already gone, so that a recycled process group id is never killed.
      for (const known of task.workloadGroups)
        if (!isGroupAlive(known)) task.workloadGroups.delete(known);
      task.workloadGroups.add(pgid as number);
      this.#register(task);
    } else if (type === 'ready') {
      if (state.lastStatus !== 'PENDING' || state.desiredStatus !== 'RUNNING') return;
      state.lastStatus = 'RUNNING';
      state.startedAt = new Date();
      state.version += 1;
      this.logger.info({ taskArn: state.taskArn, containerId: state.containerId }, 'task running');
      this.emit(task);
    } else if (type === 'stopping' && typeof reason === 'string' && reason.trim() !== '') {
      task.agentReason = trimReason(reason);
      this.logger.info(
        { taskArn: state.taskArn, containerId: state.containerId, reason: task.agentReason },
        'agent is stopping',
      );
    }
  }

  private onExit(task: Supervised, code: number | null, signal: NodeJS.Signals | null): void {
    const state = task.state;
    if (state.lastStatus === 'STOPPED') return;
    clearTimeout(task.graceTimer);
    // Whatever the agent left behind, in its group or its workloads', goes with it: no
    // process of a task outlives it to write into the workspace the next generation uses.
    killTaskProcesses(task);
    this.#unregister(task);
    state.exitCode = code ?? (signal ? 128 + signalNumber(signal) : undefined);
    state.lastStatus = 'STOPPED';
    state.desiredStatus = 'STOPPED';
    state.stoppedAt = new Date();
    const stop = task.stopRequest;
    if (stop) {
      state.stopCode = 'UserInitiated';
      const given = task.agentReason ?? stop.reason;
      state.stoppedReason = stop.forced
        ? trimReason(
            `forced:killed by SIGKILL after the ${formatDuration(this.#options.shutdownGraceMs)} grace period (${given})`,
          )
        : given;
    } else {
      state.stopCode = 'EssentialContainerExited';
      state.stoppedReason = task.agentReason ?? (signal ? `killed by ${signal}` : CONTAINER_EXITED);
    }
    state.version += 1;
    this.logger.info(
      {
        taskArn: state.taskArn,
        containerId: state.containerId,
        exitCode: state.exitCode,
        signal,
        stopCode: state.stopCode,
        stoppedReason: state.stoppedReason,
      },
      'task stopped',
    );
    this.emit(task);
    task.markExited();
  }

  /** Snapshots the task now and queues its event behind the task's earlier ones. */
  private emit(task: Supervised): void {
    const event = taskStateChange(task.state, {
      account: this.#options.account,
      region: this.#options.region,
      now: new Date(),
    });
    const delivery = task.eventChain.then(() => this.deliver(event));
    task.eventChain = delivery;
    this.#pendingEvents.add(delivery);
    void delivery.finally(() => this.#pendingEvents.delete(delivery));
  }

  /** Never rejects: an event that cannot be delivered after the retries is logged. */
  private async deliver(event: TaskStateChange): Promise<void> {
    const { eventAttempts, eventRetryDelayMs } = this.#options;
    const about = {
      taskArn: event.detail.taskArn,
      lastStatus: event.detail.lastStatus,
      version: event.detail.version,
    };
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.#options.events.send(event);
        this.logger.debug(about, 'task event sent');
        return;
      } catch (error) {
        if (attempt >= eventAttempts) {
          this.logger.error({ ...about, err: error }, 'task event could not be delivered');
          return;
        }
        this.logger.warn(
          { ...about, attempt, err: error },
          'task event not delivered yet; retrying',
        );
        await delay(eventRetryDelayMs * 2 ** (attempt - 1));
      }
    }
  }
}
