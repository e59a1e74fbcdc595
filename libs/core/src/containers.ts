import {
  CLIENT_ONLY_FIELDS,
  CapacityExceededError,
  ConflictError,
  NotFoundError,
  UnavailableError,
  canTransition,
  containerIdOf,
  isLive,
  newContainerRecord,
  formatStopReason,
  parseStopReason,
  stopReason,
  type ContainerFilter,
  type ContainerKey,
  type ContainerRecord,
  type Page,
  type StopReason,
  type ContainerQueueUrls,
  type TaskInfo,
  type TaskSpec,
} from '@berth/domain';
import { reusedCommandId, type ContainerRecords } from './container-records.ts';
import { policyForNewGeneration, quotaChargeFor } from './policies.ts';
import type { PoolService } from './pool.ts';
import { noMetrics, silentLogger, type CoreDeps } from './deps.ts';
import type { SessionEndings } from './session-endings.ts';

export type DiscoverySource = 'store' | 'created' | 'pool';

export interface FoundContainer {
  container: ContainerRecord;
  source: DiscoverySource;
}

const MAX_ATTEMPTS = 8;
/** How long a caller waits for another replica to finish provisioning a container. */
const PROVISION_WAIT_MS = 10_000;
/**
 * Provisioning (two queues and one RunTask) takes seconds. A record still without queues
 * this long after its creation lost its starter (a crash between the conditional create and
 * the provisioning): it is failed so the next request can start the next generation, rather
 * than blocking the container until BERTH_START_TIMEOUT.
 */
const PROVISION_ABANDONED_MS = 60_000;

/**
 * Finding, starting and stopping containers. Every change is a conditional write on the
 * container's `version` (or, for a new generation, on the previous generation being final),
 * so any number of replicas may run this at once and at most one container per containerId
 * is ever live.
 */
export class ContainerService {
  private readonly deps: CoreDeps;
  private readonly records: ContainerRecords;
  /** Ends the sessions of a container that reached a final status. */
  private readonly endings: SessionEndings;
  /** The warm pool a miss claims from first (when BERTH_POOL_SIZE > 0). */
  private readonly pool: PoolService | undefined;

  constructor(
    deps: CoreDeps,
    records: ContainerRecords,
    endings: SessionEndings,
    pool?: PoolService,
  ) {
    this.deps = deps;
    this.records = records;
    this.endings = endings;
    this.pool = pool;
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  private get metrics() {
    return this.deps.metrics ?? noMetrics;
  }

  private now(): string {
    return this.deps.clock.now().toISOString();
  }

  json(container: ContainerRecord, messagesInFlight = 0) {
    return this.records.json(container, messagesInFlight);
  }

  /** The container as the store has it; a NotFoundError when there is none. */
  async get(containerId: string): Promise<ContainerRecord> {
    const container = await this.deps.store.getContainer(containerId);
    if (!container) throw new NotFoundError(`container ${containerId} does not exist`);
    return container;
  }

  /** One page of containers, as the store lists them. */
  list(filter: ContainerFilter, limit: number, cursor?: string): Promise<Page<ContainerRecord>> {
    return this.deps.store.listContainers(filter, limit, cursor);
  }

  /**
   * Messages on a live container's input queue not yet finished; 0 when it has none or the
   * queue does not answer (the figure is advisory: it only delays an idle stop).
   */
  async messagesInFlight(container: ContainerRecord): Promise<number> {
    return container.inputQueueUrl &&
      (container.status === 'running' || container.status === 'starting')
      ? this.deps.queues.messagesInFlight(container.inputQueueUrl).catch(() => 0)
      : 0;
  }

  /**
   * Waits up to `waitMs` for a `starting` container to leave that status (running, or failed),
   * re-reading the store every `pollMs`; the record as last read. It stops waiting early when
   * the record moved to another generation.
   */
  async awaitSettled(
    container: ContainerRecord,
    waitMs: number,
    pollMs: number,
  ): Promise<ContainerRecord> {
    const deadline = Date.now() + waitMs;
    let current = container;
    while (current.status === 'starting' && Date.now() < deadline) {
      await new Promise((resolve) =>
        setTimeout(resolve, Math.min(pollMs, Math.max(0, deadline - Date.now()))),
      );
      const fresh = await this.deps.store.getContainer(container.containerId);
      if (!fresh || fresh.generation !== container.generation) break;
      current = fresh;
    }
    return current;
  }

  /**
   * Discovery's order after the in-process cache: the store (one consistent read), then a new
   * container when the stored one is final or absent.
   */
  async findOrStart(
    key: ContainerKey,
    options: {
      commandId?: string;
      /** The record as the caller just read it (in parallel with its own reads): saves a read. */
      prefetched?: { record: ContainerRecord | undefined };
    } = {},
  ): Promise<FoundContainer> {
    const containerId = containerIdOf(key);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
      let existing =
        attempt === 0 && options.prefetched
          ? options.prefetched.record
          : await this.deps.store.getContainer(containerId);
      if (existing && existing.pendingEvents.length > 0)
        existing = await this.records.flush(existing);
      if (existing && isLive(existing.status)) {
        if (existing.status === 'starting' && existing.stopReason && this.abandoned(existing)) {
          // Stopped while its starter was gone: no task will ever end it, so it ends here.
          await this.closeAbandoned(
            existing,
            parseStopReason(existing.stopReason) ?? stopReason('manual'),
          );
          continue;
        }
        if (
          existing.status === 'terminating' ||
          (existing.status === 'starting' && existing.stopReason)
        ) {
          throw new ConflictError(
            `container ${containerId} is stopping (${existing.stopReason ?? 'no reason'}); a new one can start once it has stopped, try again shortly`,
            { retryable: true },
          );
        }
        const verified = await this.verifyLive(existing);
        if (verified) {
          this.metrics.containerStarted('reused');
          return { container: verified, source: 'store' };
        }
        continue;
      }
      if (this.pool && this.pool.size > 0) {
        // A miss: a warm-pool member if one is free (docs/design.md, "The warm pool").
        const pool = this.pool;
        const claimed = await this.countingQuotaRefusals(() =>
          pool.claim(key, existing, options.commandId),
        );
        if (claimed === 'lost') continue;
        if (claimed !== 'none') {
          this.metrics.containerStarted('created');
          return { container: claimed.container, source: 'pool' };
        }
      }
      const created = await this.countingQuotaRefusals(() =>
        this.create(key, existing, options.commandId),
      );
      if (created) {
        this.metrics.containerStarted('created');
        return { container: created, source: 'created' };
      }
    }
    throw new UnavailableError(`could not find or start container ${containerId}; try again`);
  }

  /**
   * A new generation (cold or claimed from the pool) refused by a quota is counted by the
   * quota's name: a bounded set (CLIENT_ONLY_FIELDS), unlike the client id, which only the
   * caller's log and answer name.
   */
  private async countingQuotaRefusals<T>(start: () => Promise<T>): Promise<T> {
    try {
      return await start();
    } catch (error) {
      if (error instanceof CapacityExceededError) {
        const quota = CLIENT_ONLY_FIELDS.find((name) => name === error.field);
        if (quota) this.metrics.quotaRefused?.(quota);
      }
      throw error;
    }
  }

  /**
   * A live record is handed out as the store has it: one read, no call to the runtime or the
   * queues per request. Records are kept true by others (docs/design.md, "Liveness"): the
   * task's STOPPED event fails a crashed container within seconds, the task watcher's
   * reconciliation closes one whose event was lost within a minute, and an agent whose input
   * queue is gone exits. Only a `starting` record is waited on, until it has its queues.
   */
  private async verifyLive(container: ContainerRecord): Promise<ContainerRecord | undefined> {
    if (container.status === 'starting') {
      return this.awaitProvisioned(container);
    }
    // A record that lost its queue URLs (see TaskEventHandler.onRunning) can take no message;
    // this needs no call, the record says it.
    if (container.inputQueueUrl && container.outputQueueUrl) return container;
    const problem = 'it has no queues';
    this.log.warn(
      { containerId: container.containerId, problem },
      'live record without queues; stopping it',
    );
    // Its task may still write to the workspace: the generation ends through a graceful stop
    // (terminating, then stopped once the task has ended, its work saved), never final before
    // its task is (issue 12, case 9). The caller then finds it stopping.
    await this.stopGeneration(
      container.containerId,
      container.generation,
      stopReason('lost', problem),
    );
    this.metrics.orphanRepaired('record');
    return undefined;
  }

  /**
   * Another replica is provisioning this container (queues, task). Waits briefly for its
   * queue URLs so callers never hand out a container without them. Undefined when the
   * record changed generation meanwhile (the caller reads it again).
   */
  private async awaitProvisioned(container: ContainerRecord): Promise<ContainerRecord | undefined> {
    if (this.abandoned(container)) {
      await this.closeAbandoned(
        container,
        stopReason('start_failed', 'its starter vanished before provisioning'),
      );
      return undefined;
    }
    let current = container;
    let pause = 20;
    for (
      let waited = 0;
      !current.inputQueueUrl;
      waited += pause, pause = Math.min(pause * 2, 200)
    ) {
      if (waited >= PROVISION_WAIT_MS) {
        throw new UnavailableError(
          `container ${container.containerId} is still being provisioned; try again`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, pause));
      const fresh = await this.deps.store.getContainer(container.containerId);
      if (!fresh || fresh.generation !== container.generation) return undefined;
      if (!isLive(fresh.status)) {
        // Its starter failed (or it was stopped) before it had queues: that answer is final
        // for this generation, and starting the next one is the next request's decision.
        throw new UnavailableError(
          `container ${container.containerId} failed to start (${fresh.stopReason ?? fresh.status}); try again`,
        );
      }
      current = fresh;
    }
    return current;
  }

  /** A `starting` record still without a task long after its creation: its starter is gone. */
  abandoned(container: ContainerRecord): boolean {
    const age = this.deps.clock.now().getTime() - Date.parse(container.createdAt);
    return container.status === 'starting' && !container.taskArn && age >= PROVISION_ABANDONED_MS;
  }

  /**
   * Closes a `starting` record whose starter is gone before it recorded a task. That starter
   * may have died right after RunTask, and its task may already be stopping (no longer listed
   * as running), so the runtime is asked again with the generation's idempotent start token
   * and the same spec: it answers with that task, or starts it now. Either way the task is
   * recorded (adopted) and asked to stop, and its end fails the record — the generation is
   * final only once its task is known to have ended, and no next generation starts on the
   * workspace while it may still write there. A task already stopped fails the record now.
   */
  async closeAbandoned(
    container: ContainerRecord,
    reason: StopReason,
  ): Promise<ContainerRecord | undefined> {
    const { containerId, generation } = container;
    const found = await this.abandonedTask(container);
    if (!found) {
      this.log.warn({ containerId, generation }, 'start abandoned before RunTask; failing it');
      return this.fail(containerId, generation, parseStopReason(container.stopReason) ?? reason);
    }
    const { task, queues } = found;
    if (task.lastStatus === 'STOPPED') {
      this.log.warn(
        { containerId, generation, taskArn: task.taskArn },
        'start abandoned; its task has ended: failing it',
      );
      const failed = await this.fail(
        containerId,
        generation,
        parseStopReason(container.stopReason) ?? reason,
        task.taskArn,
      );
      if (queues) await this.deps.queues.delete(queues).catch(() => undefined);
      return failed;
    }
    this.log.warn(
      { containerId, generation, taskArn: task.taskArn },
      'start abandoned; adopting its task through the start token to stop it',
    );
    const now = this.now();
    const adopted = await this.records.update(containerId, (current) =>
      current.generation !== generation || current.status !== 'starting' || current.taskArn
        ? undefined
        : {
            ...current,
            taskArn: task.taskArn,
            stopReason: current.stopReason ?? formatStopReason(reason),
            terminatingSince: current.terminatingSince ?? now,
          },
    );
    await this.deps.runtime.stopTask(
      task.taskArn,
      adopted?.after.stopReason ?? formatStopReason(reason),
    );
    // Not recorded (a record never gets its queues but from its starter, so no RUNNING makes
    // this one running); nobody reaches them, and the stopping task needs none to save.
    if (queues) await this.deps.queues.delete(queues).catch(() => undefined);
    return adopted?.after;
  }

  /**
   * The task an abandoned start may have left: asked for with the generation's start token
   * (the same spec and queues: the runtime answers with that task, or starts it now), or,
   * where this service may not start tasks, looked for in the runtime's list of live tasks
   * (which on ECS no longer shows a task already stopping).
   */
  private async abandonedTask(
    container: ContainerRecord,
  ): Promise<{ task: TaskInfo; queues: ContainerQueueUrls | undefined } | undefined> {
    const { containerId, generation } = container;
    if (this.deps.settings.mayStartTasks === false) {
      const task = (await this.deps.runtime.listTasks()).find(
        (candidate) =>
          candidate.containerId === containerId &&
          candidate.generation === generation &&
          candidate.lastStatus !== 'STOPPED',
      );
      return task && { task, queues: undefined };
    }
    const queues = await this.deps.queues.create(containerId, generation);
    return { task: await this.deps.runtime.startTask(this.taskSpecFor(container, queues)), queues };
  }

  private async create(
    key: ContainerKey,
    previous: ContainerRecord | undefined,
    commandId: string | undefined,
  ): Promise<ContainerRecord | undefined> {
    const containerId = containerIdOf(key);
    const generation = (previous?.generation ?? 0) + 1;
    const lingering = previous ? await this.lingeringTask(previous) : undefined;
    if (previous && lingering) {
      // Closed while its task may still write to the workspace (its queues lost, a failed
      // start): the generation is over only once that task has ended. Whoever may stop tasks
      // does (the reaper's and the watcher's reconciliation stop the task of a final record);
      // the next generation starts after that.
      throw new ConflictError(
        `container ${containerId} generation ${previous.generation} still has a task (${lingering.taskArn}, ${lingering.lastStatus}); the next generation starts once it has ended, try again shortly`,
        { retryable: true },
      );
    }
    const now = this.now();
    const record: ContainerRecord = {
      ...newContainerRecord({ ...key, containerId }, generation, now),
      workspacePath: this.deps.runtime.workspacePathFor(key),
      ...(await policyForNewGeneration(this.deps, key)),
    };
    const charge = await quotaChargeFor(this.deps, key);
    if (!(await this.records.createGeneration(record, previous, charge))) return undefined;
    this.log.info({ containerId, generation }, 'container record created; provisioning');
    return this.provision(record, commandId);
  }

  /**
   * The task of a final generation that has not ended yet, if any: its recorded task (one
   * DescribeTasks, once per new generation, never per request) or, for a record closed without
   * one (a start that failed around RunTask), a task of that generation the runtime still lists.
   */
  private async lingeringTask(previous: ContainerRecord): Promise<TaskInfo | undefined> {
    if (previous.taskArn) {
      const task = await this.deps.runtime.describeTask(previous.taskArn);
      return task && task.lastStatus !== 'STOPPED' ? task : undefined;
    }
    return (await this.deps.runtime.listTasks()).find(
      (task) =>
        task.containerId === previous.containerId &&
        task.generation === previous.generation &&
        task.lastStatus !== 'STOPPED',
    );
  }

  /**
   * What RunTask is asked for a generation: always the same for one record and its queues, so
   * that asking again with the generation's start token (clientTokenFor) answers with the task
   * a starter that died may have started, instead of a second one.
   */
  private taskSpecFor(record: ContainerRecord, queues: ContainerQueueUrls): TaskSpec {
    const { containerId, generation } = record;
    const workspacePath = record.workspacePath ?? this.deps.runtime.workspacePathFor(record);
    const repoUrl = this.deps.settings.repoUrlFor?.(record);
    return {
      containerId,
      clientId: record.clientId,
      projectId: record.projectId,
      userId: record.userId,
      generation,
      workspacePath,
      environment: {
        ...this.deps.settings.agentEnvironment,
        // The contract promises these to every agent, whichever runtime starts it.
        CONTAINER_ID: containerId,
        WORKSPACE_PATH: workspacePath,
        BERTH_INPUT_QUEUE_URL: queues.inputQueueUrl,
        BERTH_OUTPUT_QUEUE_URL: queues.outputQueueUrl,
        ...(repoUrl ? { BERTH_REPO_URL: repoUrl } : {}),
      },
    };
  }

  /** Only the replica that won the conditional create gets here, so this runs once. */
  private async provision(
    record: ContainerRecord,
    commandId: string | undefined,
  ): Promise<ContainerRecord> {
    const { containerId, generation } = record;
    let queues: { inputQueueUrl: string; outputQueueUrl: string } | undefined;
    let taskArn: string | undefined;
    let container: ContainerRecord | undefined;
    try {
      queues = await this.deps.queues.create(containerId, generation);
      const task = await this.deps.runtime.startTask(this.taskSpecFor(record, queues));
      taskArn = task.taskArn;
      const urls = queues;
      const provisioned = await this.records.transition(
        containerId,
        (current) =>
          current.generation !== generation || !isLive(current.status)
            ? undefined
            : {
                ...current,
                taskArn: task.taskArn,
                endpoint: task.endpoint ?? current.endpoint,
                inputQueueUrl: urls.inputQueueUrl,
                outputQueueUrl: urls.outputQueueUrl,
              },
        (after) => [this.records.event('container.created', after, commandId ? { commandId } : {})],
      );
      if (provisioned?.changed) container = provisioned.after;
      const stoppedMeanwhile =
        provisioned?.after.stopReason ??
        (provisioned?.changed ? null : 'berth: stopped while starting');
      if (stoppedMeanwhile) {
        // Stopped (or replaced) while it was starting: nothing may keep its task running.
        await this.deps.runtime.stopTask(task.taskArn, stoppedMeanwhile).catch(() => undefined);
        if (!provisioned?.changed) await this.deps.queues.delete(queues).catch(() => undefined);
        container = undefined;
      }
    } catch (error) {
      this.metrics.containerStartFailed();
      const detail = error instanceof Error ? error.message : String(error);
      this.log.error({ containerId, generation, err: error }, 'container failed to start');
      // With its task recorded, the next generation asks about that very task (DescribeTasks)
      // and waits for its end, even once it is stopping and no longer listed as running.
      await this.fail(containerId, generation, stopReason('start_failed', detail), taskArn).catch(
        () => undefined,
      );
      if (taskArn)
        await this.deps.runtime
          .stopTask(taskArn, formatStopReason(stopReason('start_failed', detail)))
          .catch(() => undefined);
      if (queues) await this.deps.queues.delete(queues).catch(() => undefined);
      throw new UnavailableError(`container ${containerId} failed to start: ${detail}`, {
        cause: error,
      });
    }
    if (!container) {
      throw new ConflictError(
        `container ${containerId} was stopped while it was starting; try again`,
        {
          retryable: true,
        },
      );
    }
    return container;
  }

  /** `starting|running → failed`, once; publishes `container.failed`. */
  async fail(
    containerId: string,
    generation: number,
    reason: StopReason,
    /** The generation's task, when its starter knows one the record does not hold yet. */
    taskArn?: string,
  ): Promise<ContainerRecord | undefined> {
    const now = this.now();
    const result = await this.records.transition(
      containerId,
      (current) =>
        current.generation !== generation || !canTransition(current.status, 'failed')
          ? undefined
          : {
              ...current,
              status: 'failed',
              taskArn: current.taskArn ?? taskArn ?? null,
              stoppedAt: now,
              stopReason: formatStopReason(reason),
              idleSince: null,
              sessions: [],
              ...endingSessionsOf(current),
            },
      (after) => [this.records.event('container.failed', after)],
    );
    if (!result?.changed) return this.repairFinal(result?.after, generation);
    await this.afterFinal(result.after);
    return result.after;
  }

  /**
   * Graceful stop: `terminating` (event), then the runtime asks the task to stop; the agent
   * saves the workspace and exits, and the task-end event makes it `stopped`. Idempotent:
   * stopping a container that is already on its way out changes nothing.
   *
   * A container still `starting` may only become `running` or `failed`, and its task may
   * still be cloning into the workspace, so the stop is recorded (stopReason) and its task
   * asked to stop; it stays `starting` — no new generation can start on the same workspace —
   * until its task has ended (then `failed` with that reason) or came up (then it terminates).
   * `stillWanted` lets the reaper re-check its reason against the record it is about to change.
   *
   * A stop that names a `generation` acts on that generation only: a late or redelivered stop
   * must never stop the next one. Another generation in the store is a non-retryable
   * ConflictError on field `generation` (409 over HTTP, `command.rejected` for a command).
   */
  async stop(
    containerId: string,
    reason: StopReason,
    options: {
      commandId?: string;
      generation?: number;
      stillWanted?: (current: ContainerRecord) => boolean;
    } = {},
  ): Promise<ContainerRecord> {
    const now = this.now();
    const text = formatStopReason(reason);
    const { generation, commandId } = options;
    const extra = commandId ? { commandId } : {};
    if (commandId) {
      // A redelivered stop command that took effect before: the same answer again, never a
      // second effect (on the next generation) nor a refusal of the generation it ended.
      const decided = await this.deps.store.getOutcome(commandId);
      if (decided && decided.type !== 'container.stop')
        throw reusedCommandId(commandId, decided.type);
      if (decided) {
        await this.deps.publisher.publish(decided.events);
        const current = await this.deps.store.getContainer(containerId);
        if (current) return current;
      }
    }
    const result = await this.records.transition(
      containerId,
      (current) => {
        if (generation !== undefined && current.generation !== generation) return undefined;
        // A starting container only records the stop (see above); a running one terminates.
        if (current.status !== 'starting' && !canTransition(current.status, 'terminating'))
          return undefined;
        if (options.stillWanted && !options.stillWanted(current)) return undefined;
        if (current.status === 'starting') {
          return current.stopReason
            ? undefined
            : { ...current, stopReason: text, terminatingSince: now };
        }
        return { ...current, status: 'terminating', terminatingSince: now, stopReason: text };
      },
      (after) =>
        after.status === 'terminating'
          ? [this.records.event('container.terminating', after, extra)]
          : [],
      commandId
        ? (after) => ({
            commandId,
            type: 'container.stop',
            decision: 'stopping',
            containerId,
            generation: after.generation,
            events: after.pendingEvents.filter((event) => event.commandId === commandId),
            decidedAt: now,
          })
        : undefined,
    );
    if (!result) throw new NotFoundError(`container ${containerId} does not exist`);
    if (generation !== undefined && result.after.generation !== generation) {
      throw new ConflictError(
        `container ${containerId} is at generation ${result.after.generation}; the stop named generation ${generation}`,
        { field: 'generation', retryable: false },
      );
    }
    if (!result.changed) return result.after;
    const container = result.after;
    if (container.taskArn) {
      await this.deps.runtime.stopTask(container.taskArn, text);
    } else if (container.status === 'terminating') {
      // No task was ever started (its starter died): nothing to save, so it is stopped now.
      return (
        (await this.markStopped(container.containerId, container.generation, reason)) ?? container
      );
    }
    return container;
  }

  /**
   * An internal stop of one generation: undefined (nothing done) when the store holds another
   * one by now, e.g. for a late or duplicated task event.
   */
  async stopGeneration(
    containerId: string,
    generation: number,
    reason: StopReason,
    options: { stillWanted?: (current: ContainerRecord) => boolean } = {},
  ): Promise<ContainerRecord | undefined> {
    try {
      return await this.stop(containerId, reason, { ...options, generation });
    } catch (error) {
      if (error instanceof ConflictError && error.field === 'generation') return undefined;
      throw error;
    }
  }

  /** `terminating → stopped`, once; releases its sessions, deletes its queues, publishes. */
  async markStopped(
    containerId: string,
    generation: number,
    reason: StopReason,
    /** Extra fields of the `container.stopped` payload (`savedElsewhere`). */
    payload?: Record<string, unknown>,
  ): Promise<ContainerRecord | undefined> {
    const now = this.now();
    const result = await this.records.transition(
      containerId,
      (current) =>
        current.generation !== generation || !canTransition(current.status, 'stopped')
          ? undefined
          : {
              ...current,
              status: 'stopped',
              stoppedAt: now,
              stopReason: formatStopReason(reason),
              idleSince: null,
              sessions: [],
              ...endingSessionsOf(current),
            },
      (after) => [this.records.event('container.stopped', after, payload ? { payload } : {})],
    );
    if (!result?.changed) return this.repairFinal(result?.after, generation);
    await this.afterFinal(result.after);
    return result.after;
  }

  /**
   * A redelivered event for a container already final: finish what a crash may have cut
   * short (its sessions, its queues, its outbox), without counting anything twice.
   */
  private async repairFinal(container: ContainerRecord | undefined, generation: number) {
    if (container && container.generation === generation && !isLive(container.status)) {
      try {
        await this.endings.endSessionsOf(container);
      } finally {
        await this.deleteQueues(container);
      }
      return this.records.flush(container);
    }
    return container;
  }

  /** Ends its sessions (the final write already took them off the record) and its queues. */
  private async afterFinal(container: ContainerRecord): Promise<void> {
    const lifetime = container.startedAt
      ? (Date.parse(container.stoppedAt ?? this.now()) - Date.parse(container.startedAt)) / 1000
      : undefined;
    this.metrics.containerStopped(container.stopReason ?? 'unknown', lifetime);
    // The queues go whatever happens to the sessions' endings: those are in their outboxes
    // or retried with the task event, and nothing else would ever delete the queues.
    try {
      await this.endings.endSessionsOf(container);
    } finally {
      await this.deleteQueues(container);
    }
  }

  private async deleteQueues(container: ContainerRecord): Promise<void> {
    if (container.inputQueueUrl && container.outputQueueUrl) {
      await this.deps.queues
        .delete({
          inputQueueUrl: container.inputQueueUrl,
          outputQueueUrl: container.outputQueueUrl,
        })
        .catch((error: unknown) =>
          this.log.warn(
            { containerId: container.containerId, err: error },
            'could not delete queues',
          ),
        );
    }
  }
}

/** The sessions a final write takes off the record, kept on it for its ending to end. */
function endingSessionsOf(current: ContainerRecord): Pick<ContainerRecord, 'endingSessions'> {
  return current.sessions.length > 0 ? { endingSessions: [...current.sessions] } : {};
}
