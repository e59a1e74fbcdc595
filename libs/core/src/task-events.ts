import {
  MANAGED_BY,
  POOL_SLOT_TAG,
  SAVE_FAILED_EXIT_CODE,
  SIGKILL_EXIT_CODE,
  UnavailableError,
  TASK_TAGS,
  canTransition,
  isLive,
  stopReason,
  parseSavedElsewhere,
  parseStopReason,
  tagValue,
  taskEndpointOf,
  type ContainerRecord,
  type TaskStateChange,
} from '@berth/domain';
import type { ContainerRecords } from './container-records.ts';
import type { SessionReadiness } from './session-readiness.ts';
import type { PoolService } from './pool.ts';
import type { ContainerService } from './containers.ts';
import { silentLogger, type CoreDeps } from './deps.ts';

export type TaskEventOutcome =
  | 'running'
  | 'stopped'
  | 'failed'
  | 'ignored:not-berth'
  | 'ignored:unknown-container'
  | 'ignored:other-generation'
  | 'ignored:stale'
  | 'ignored:intermediate'
  | 'orphan-stopped'
  | 'unprovisioned-stopped'
  | 'pool';

/** How long a RUNNING event waits for its starter to record the task and queues. */
const PROVISION_RACE_MS = 1_500;

/**
 * Keeps container records true to their tasks. Events come at least once, possibly out of
 * order and late: status only ever moves forward along the transition table, and events of another
 * generation's task never touch the current record, so duplicates and stale events change
 * nothing.
 */
export class TaskEventHandler {
  private readonly deps: CoreDeps;
  private readonly containers: ContainerService;
  private readonly records: ContainerRecords;
  /** The warm pool, whose members' tasks carry a PoolSlot tag instead of a ContainerId. */
  private readonly pool: PoolService | undefined;

  private readonly readiness: SessionReadiness;

  constructor(
    deps: CoreDeps,
    records: ContainerRecords,
    containers: ContainerService,
    readiness: SessionReadiness,
    pool?: PoolService,
  ) {
    this.deps = deps;
    this.containers = containers;
    this.records = records;
    this.readiness = readiness;
    this.pool = pool;
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  async handle(event: TaskStateChange): Promise<TaskEventOutcome> {
    const { detail } = event;
    const tags = detail.tags;
    if (tagValue(tags, TASK_TAGS.managedBy) !== MANAGED_BY) return 'ignored:not-berth';
    let containerId = tagValue(tags, TASK_TAGS.containerId);
    let generation = Number(tagValue(tags, TASK_TAGS.generation));
    const poolSlot = tagValue(tags, POOL_SLOT_TAG);
    if (poolSlot !== undefined && Number.isInteger(generation) && /^\d+$/.test(poolSlot)) {
      // A warm-pool member's task: the pool's own, or the container it was claimed for.
      if (!this.pool) {
        return this.orphan(
          detail.taskArn,
          detail.lastStatus,
          'a pool member while the pool is off',
        );
      }
      const route = await this.pool.route(
        Number(poolSlot),
        generation,
        detail.taskArn,
        detail.lastStatus,
        detail.stoppedReason,
        taskEndpointOf(event),
      );
      if (route.kind === 'pool') return 'pool';
      containerId = route.containerId;
      generation = route.generation;
    }
    if (!containerId || !Number.isInteger(generation)) return 'ignored:not-berth';

    const container = await this.deps.store.getContainer(containerId);
    if (!container) {
      return this.orphan(detail.taskArn, detail.lastStatus, 'no record for its container');
    }
    if (container.generation !== generation) {
      if (generation > container.generation) return 'ignored:unknown-container';
      return this.orphan(
        detail.taskArn,
        detail.lastStatus,
        `generation ${generation} was replaced by ${container.generation}`,
      );
    }
    if (container.taskArn && container.taskArn !== detail.taskArn) {
      return this.orphan(
        detail.taskArn,
        detail.lastStatus,
        'a second task for the same generation',
      );
    }

    if (detail.lastStatus === 'RUNNING' && !isLive(container.status)) {
      // Its record is final and never reused, so a task still running for it is an orphan
      // (or this is a late duplicate, and stopping a stopped task changes nothing).
      return this.orphan(
        detail.taskArn,
        detail.lastStatus,
        `its container is already ${container.status}`,
      );
    }
    if (detail.lastStatus === 'RUNNING') return this.onRunning(container, event);
    if (detail.lastStatus === 'STOPPED') return this.onStopped(container, event);
    return 'ignored:intermediate';
  }

  /**
   * A container that reached a final status with its events still in its outbox (the bus
   * failed): no later write will flush a final record, so the task event is retried, and its
   * redelivery publishes them (same ids) before it is let go.
   */
  private async announced(
    ending: Promise<ContainerRecord | undefined>,
  ): Promise<ContainerRecord | undefined> {
    const record = await ending;
    if (record && !isLive(record.status) && record.pendingEvents.length > 0) {
      throw new UnavailableError(
        `container ${record.containerId} is ${record.status} but ${record.pendingEvents.length} of its events are not published yet; retry`,
      );
    }
    return record;
  }

  /** A task no live record owns costs money and answers to nobody: stop it. */
  private async orphan(
    taskArn: string,
    lastStatus: string,
    why: string,
  ): Promise<TaskEventOutcome> {
    if (lastStatus === 'STOPPED') return 'ignored:stale';
    this.log.warn({ taskArn, why }, 'stopping an orphaned task');
    await this.deps.runtime.stopTask(taskArn, `berth: orphaned task (${why})`);
    this.deps.metrics?.orphanRepaired('task');
    return 'orphan-stopped';
  }

  private async onRunning(
    recorded: ContainerRecord,
    event: TaskStateChange,
  ): Promise<TaskEventOutcome> {
    let container = recorded;
    if (!container.inputQueueUrl || !container.outputQueueUrl) {
      const provisioned = await this.awaitQueues(container);
      if (!provisioned) return this.onRunningUnprovisioned(container);
      container = provisioned;
    }
    const now = this.deps.clock.now().toISOString();
    const startedAt = event.detail.startedAt ?? event.time;
    const result = await this.records.transition(
      container.containerId,
      (current) =>
        current.generation !== container.generation ||
        !canTransition(current.status, 'running') ||
        !current.inputQueueUrl
          ? undefined
          : {
              ...current,
              status: 'running',
              startedAt,
              taskArn: current.taskArn ?? event.detail.taskArn,
              // Where the task is reached (its dev server: the preview gateway): on Fargate
              // RunTask's answer has no address yet, the RUNNING event has.
              endpoint: taskEndpointOf(event) ?? current.endpoint,
              // The idle clock starts when the container can first be used, not at its creation.
              idleSince: current.sessions.length === 0 ? now : null,
            },
      (after) => [this.records.event('container.running', after)],
    );
    if (!result?.changed) {
      // A redelivery: anything a crash left in the outbox goes out now, same ids.
      if (result?.after) await this.records.flush(result.after);
      if (result?.after.status === 'running' && result.after.generation === container.generation)
        await this.readiness.announceReady(result.after);
      return 'ignored:stale';
    }
    await this.readiness.announceReady(result.after);
    const pendingStop = result.after.stopReason;
    if (pendingStop) {
      // A stop asked for while it was starting: now that it runs, it stops gracefully.
      await this.containers.stopGeneration(
        container.containerId,
        container.generation,
        parseStopReason(pendingStop) ?? stopReason('manual'),
      );
    }
    return 'running';
  }

  /**
   * A task's RUNNING may overtake its starter's write of the task and queues by a moment:
   * waits briefly for them. Undefined if they do not come (or the record moved on).
   */
  private async awaitQueues(container: ContainerRecord): Promise<ContainerRecord | undefined> {
    for (let pause = 50, waited = 0; waited < PROVISION_RACE_MS; waited += pause, pause *= 2) {
      await new Promise((resolve) => setTimeout(resolve, pause));
      const fresh = await this.deps.store.getContainer(container.containerId);
      if (!fresh || fresh.generation !== container.generation || fresh.status !== 'starting')
        return undefined;
      if (fresh.inputQueueUrl && fresh.outputQueueUrl) return fresh;
    }
    return undefined;
  }

  /**
   * Its task runs but the record has no queues: a record without them never becomes running
   * (no session could reach it). While its starter may still be writing them, the event is
   * retried; once the starter is evidently gone (its write failed and so did its clean-up),
   * the task is adopted onto the record and stopped, and its end fails the record.
   */
  private async onRunningUnprovisioned(container: ContainerRecord): Promise<TaskEventOutcome> {
    if (!this.containers.abandoned(container)) {
      throw new UnavailableError(
        `container ${container.containerId} generation ${container.generation} runs before its starter recorded its task and queues; try again`,
      );
    }
    await this.containers.closeAbandoned(
      container,
      stopReason('start_failed', 'its starter did not record its task and queues'),
    );
    return 'unprovisioned-stopped';
  }

  private async onStopped(
    container: ContainerRecord,
    event: TaskStateChange,
  ): Promise<TaskEventOutcome> {
    const { detail } = event;
    const exitCode = detail.containers?.find((c) => c.exitCode !== undefined)?.exitCode;
    // The agent's own word on why it stopped (`save_failed:...`) wins over ours.
    const reported = parseStopReason(detail.stoppedReason);
    const agentReason = reported?.kind === 'save_failed' ? reported : undefined;
    const savedElsewhere = parseSavedElsewhere(detail.stoppedReason);
    const stoppedPayload = savedElsewhere ? { savedElsewhere } : undefined;
    // The runtime echoes our own stop reason back, and its free-text detail may say anything.
    // ECS kills a task that outlives its stopTimeout after our StopTask with SIGKILL (exit
    // 128 + 9) and reports the reason it was first given, ours: the exit code says it.
    const forced =
      container.status === 'terminating' &&
      savedElsewhere === undefined &&
      ((exitCode === SIGKILL_EXIT_CODE && detail.stopCode === 'UserInitiated') ||
        (detail.stoppedReason !== undefined &&
          detail.stoppedReason !== container.stopReason &&
          /forced|SIGKILL|grace/i.test(detail.stoppedReason)));

    if (container.status === 'terminating') {
      const recorded = container.stopReason
        ? parseStopReason(container.stopReason)
        : stopReason('manual');
      let reason = recorded ?? stopReason('manual');
      if (agentReason) reason = agentReason;
      else if (recorded?.kind === 'forced') {
        // The reaper already forced it past the grace period and said so in the record.
      } else if (forced)
        reason = stopReason(
          'forced',
          `${recorded?.kind ?? 'stop'} did not finish within the grace period`,
        );
      else if (exitCode !== undefined && exitCode !== 0)
        reason = stopReason('save_failed', `agent exited with code ${exitCode}`);
      const stopped = await this.announced(
        this.containers.markStopped(
          container.containerId,
          container.generation,
          reason,
          stoppedPayload,
        ),
      );
      return stopped ? 'stopped' : 'ignored:stale';
    }
    if (container.status === 'running' && (agentReason || exitCode === SAVE_FAILED_EXIT_CODE)) {
      // Stopped from outside berth and the agent tried to save but could not: no crash either,
      // and the reason must name the failed save (its workspace is kept for the next start).
      const reason = agentReason ?? stopReason('save_failed', `agent exited with code ${exitCode}`);
      await this.containers.stopGeneration(
        container.containerId,
        container.generation,
        stopReason('save_failed', reason.detail),
      );
      const stopped = await this.announced(
        this.containers.markStopped(container.containerId, container.generation, reason),
      );
      return stopped ? 'stopped' : 'ignored:stale';
    }
    if (container.status === 'running' && exitCode === 0) {
      // Stopped from outside berth (an operator, the runtime shutting down, a SIGTERM straight
      // to the agent, a Spot interruption) and the agent saved cleanly: it exits 0 only after a
      // successful save, so this is no crash. The legal path is through `terminating`.
      const detailText =
        detail.stopCode === 'UserInitiated'
          ? (detail.stoppedReason ?? 'stopped outside berth')
          : `the agent saved and exited (${[detail.stopCode, detail.stoppedReason].filter(Boolean).join(': ') || 'stopped outside berth'})`;
      const reason = stopReason('manual', detailText);
      await this.containers.stopGeneration(container.containerId, container.generation, reason);
      const stopped = await this.announced(
        this.containers.markStopped(
          container.containerId,
          container.generation,
          reason,
          stoppedPayload,
        ),
      );
      return stopped ? 'stopped' : 'ignored:stale';
    }
    if (container.status === 'starting' || container.status === 'running') {
      const what = `exit code ${exitCode ?? 'unknown'}${detail.stoppedReason ? `, ${detail.stoppedReason}` : ''}`;
      const reason =
        container.status === 'starting'
          ? // A stop asked for while it was starting ended it: that is its reason.
            (parseStopReason(container.stopReason) ?? stopReason('start_failed', what))
          : stopReason('crashed', what);
      const failed = await this.announced(
        this.containers.fail(container.containerId, container.generation, reason),
      );
      return failed ? 'failed' : 'ignored:stale';
    }
    // Already final: a duplicate. Still let the container finish its cleanup.
    await this.announced(
      this.containers.markStopped(
        container.containerId,
        container.generation,
        parseStopReason(container.stopReason) ?? stopReason('manual'),
      ),
    );
    return 'ignored:stale';
  }
}
