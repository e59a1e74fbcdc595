import {
  expiryNoticeDueAt,
  formatDuration,
  formatStopReason,
  idleFrom,
  idleStopAt,
  lifetimeEndsAt,
  isLive,
  parseStopReason,
  stopReason,
  type ContainerRecord,
} from '@berth/domain';
import type { ContainerRecords } from './container-records.ts';
import type { ContainerService } from './containers.ts';
import { noMetrics, silentLogger, type CoreDeps } from './deps.ts';
import type { SessionEndings } from './session-endings.ts';

export interface SweepReport {
  idleStopped: number;
  keptAliveByMessages: number;
  sessionsExpired: number;
  /** Ended sessions whose outbox (an ending's event a failure left behind) was published. */
  sessionEndingsPublished: number;
  startTimedOut: number;
  terminatingResolved: number;
  lostRecords: number;
  orphanTasksStopped: number;
  /** Quota counters whose drift the sweep corrected (a record deleted by hand, a lost release). */
  quotaCountersRepaired: number;
}

const PAGE = 100;
const DEFAULT_SWEEP_INTERVAL_MS = 10 * 60_000;

/**
 * Stops idle containers on time and repairs what events missed. `stopIdle` is cheap (one
 * query of the sparse idle index, whose size is the number of idle containers) and runs
 * every tick; `sweep` is the backstop that also looks at stuck and orphaned things.
 */
export class Reaper {
  private readonly deps: CoreDeps;
  private readonly containers: ContainerService;
  private readonly endings: SessionEndings;
  private readonly records: ContainerRecords;

  constructor(
    deps: CoreDeps,
    records: ContainerRecords,
    endings: SessionEndings,
    containers: ContainerService,
  ) {
    this.deps = deps;
    this.records = records;
    this.endings = endings;
    this.containers = containers;
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  private get metrics() {
    return this.deps.metrics ?? noMetrics;
  }

  private isoBefore(ms: number): string {
    return new Date(this.deps.clock.now().getTime() - ms).toISOString();
  }

  /** A pass of stopIdle in progress, which a concurrent caller joins. */
  private idlePass: Promise<{ stopped: number; keptAliveByMessages: number }> | undefined;

  /**
   * Stops every running container idle for at least BERTH_IDLE_TIMEOUT with nothing in flight.
   * The reaper's tick and its sweep both call this: one pass at a time per process, so that a
   * container stopped once is also counted and logged once.
   */
  stopIdle(): Promise<{ stopped: number; keptAliveByMessages: number }> {
    this.idlePass ??= this.stopIdlePass().finally(() => {
      this.idlePass = undefined;
    });
    return this.idlePass;
  }

  private async stopIdlePass(): Promise<{ stopped: number; keptAliveByMessages: number }> {
    const { idleTimeoutMs } = this.deps.settings;
    const cutoff = this.isoBefore(idleTimeoutMs);
    // Records from before policies (no `policy`): the deployment's timeout, through the idle
    // index. Those with a policy are found through the due index, each by its own timeout.
    // A preview request since (its idleSince is older) moves the idle stop too.
    const due = (await this.deps.store.listIdleContainers(cutoff, PAGE)).filter(
      (c) => !c.policy && (idleFrom(c) ?? '') <= cutoff,
    );
    const byPolicy = await this.applyPolicies();
    let stopped = byPolicy.stopped;
    let keptAliveByMessages = byPolicy.keptAliveByMessages;
    for (const container of due) {
      if (
        container.inputQueueUrl &&
        (await this.deps.queues.messagesInFlight(container.inputQueueUrl)) > 0
      ) {
        keptAliveByMessages += 1;
        continue;
      }
      const stillIdle = (current: ContainerRecord) =>
        current.status === 'running' &&
        !current.policy &&
        current.sessions.length === 0 &&
        current.idleSince !== null &&
        (idleFrom(current) ?? '') <= cutoff;
      const result = await this.containers.stopGeneration(
        container.containerId,
        container.generation,
        stopReason('idle'),
        { stillWanted: stillIdle },
      );
      if (
        result?.status === 'terminating' &&
        result.stopReason === formatStopReason(stopReason('idle')) &&
        result.terminatingSince
      ) {
        stopped += 1;
        const idleSeconds =
          (Date.parse(result.terminatingSince) -
            Date.parse(container.idleSince ?? result.terminatingSince)) /
          1000;
        this.metrics.idleStop(idleSeconds);
        this.log.info(
          { containerId: container.containerId, idleSince: container.idleSince },
          'stopping idle container',
        );
      }
    }
    return { stopped, keptAliveByMessages };
  }

  /**
   * What each running container's own policy makes due now (docs/design.md, "Lifecycle policies
   * and quotas"): one query of the sparse due index, so the cost follows what is due, not the
   * number of containers or policies. In order: the expiry notice (`container.expiring`, once,
   * through the record's outbox), the lifetime stop (graceful, even when busy), the idle stop
   * (skipped while a message is in flight). Each decision is re-checked in its conditional
   * write, so a session that joins or a policy that changes meanwhile wins.
   */
  private async applyPolicies(): Promise<{ stopped: number; keptAliveByMessages: number }> {
    const now = this.deps.clock.now().toISOString();
    let stopped = 0;
    let keptAliveByMessages = 0;
    for (const container of await this.deps.store.listDueContainers(now, PAGE)) {
      const policy = container.policy;
      if (!policy) continue;
      const sameGeneration = (current: ContainerRecord) =>
        current.generation === container.generation && current.status === 'running';
      const end = lifetimeEndsAt(container.createdAt, policy);
      if (
        end &&
        !container.expiryNoticeAt &&
        expiryNoticeDueAt(container.createdAt, end, policy) <= now
      ) {
        const noticed = await this.records.transition(
          container.containerId,
          (current) =>
            sameGeneration(current) && !current.expiryNoticeAt
              ? { ...current, expiryNoticeAt: now }
              : undefined,
          (after) => [
            this.records.event('container.expiring', after, { payload: { expiresAt: end } }),
          ],
        );
        if (noticed?.changed) {
          this.metrics.lifetimeExpiry?.('notice');
          this.log.info(
            { containerId: container.containerId, expiresAt: end },
            'container expiring',
          );
        }
      }
      if (end && end <= now) {
        const result = await this.containers.stopGeneration(
          container.containerId,
          container.generation,
          stopReason(
            'max_lifetime',
            `${formatDuration(policy.maxLifetimeMs ?? 0)} after its start`,
          ),
          {
            stillWanted: (current) =>
              sameGeneration(current) && current.policy?.maxLifetimeMs === policy.maxLifetimeMs,
          },
        );
        if (result?.status === 'terminating') {
          stopped += 1;
          this.metrics.lifetimeExpiry?.('stop');
          this.log.info(
            { containerId: container.containerId },
            'stopping container at its maxLifetime',
          );
        }
        continue;
      }
      const idleDue = idleStopAt(container, policy.idleTimeoutMs);
      if (idleDue === null || idleDue > now) continue;
      if (
        container.inputQueueUrl &&
        (await this.deps.queues.messagesInFlight(container.inputQueueUrl)) > 0
      ) {
        keptAliveByMessages += 1;
        continue;
      }
      const result = await this.containers.stopGeneration(
        container.containerId,
        container.generation,
        stopReason('idle'),
        {
          stillWanted: (current) => {
            const due = idleStopAt(current, current.policy?.idleTimeoutMs ?? 0);
            return (
              sameGeneration(current) && current.policy !== undefined && due !== null && due <= now
            );
          },
        },
      );
      if (
        result?.status === 'terminating' &&
        result.stopReason === formatStopReason(stopReason('idle'))
      ) {
        stopped += 1;
        this.metrics.idleStop(
          (Date.parse(result.terminatingSince ?? now) - Date.parse(container.idleSince ?? now)) /
            1000,
        );
        this.log.info(
          {
            containerId: container.containerId,
            idleSince: container.idleSince,
            idleTimeoutMs: policy.idleTimeoutMs,
          },
          'stopping idle container (its policy)',
        );
      }
    }
    return { stopped, keptAliveByMessages };
  }

  /**
   * Asks the runtime to stop the task of every container that is on its way out (status
   * `terminating`, or `starting` with a stop recorded) whose task is not stopping yet. Services
   * that may not stop tasks themselves (the session service on AWS) only record the stop;
   * this, run every tick, carries it out.
   */
  async carryOutStops(): Promise<number> {
    const leaving = [
      ...(await this.deps.store.listContainersByStatus('terminating', PAGE)),
      ...(await this.deps.store.listContainersByStatus('starting', PAGE)).filter(
        (c) => c.stopReason !== null,
      ),
    ];
    let asked = 0;
    for (const container of leaving) {
      if (!container.taskArn) continue;
      const task = await this.deps.runtime.describeTask(container.taskArn);
      if (!task || task.lastStatus === 'STOPPED' || task.desiredStatus === 'STOPPED') continue;
      await this.deps.runtime.stopTask(
        container.taskArn,
        container.stopReason ?? formatStopReason(stopReason('manual')),
      );
      asked += 1;
    }
    return asked;
  }

  /** The periodic backstop (BERTH_SWEEP_INTERVAL). */
  async sweep(): Promise<SweepReport> {
    const idle = await this.stopIdle();
    const report: SweepReport = {
      idleStopped: idle.stopped,
      keptAliveByMessages: idle.keptAliveByMessages,
      sessionsExpired: await this.endings.expireStale(PAGE),
      sessionEndingsPublished: await this.endings.flushPendingSessions(PAGE),
      startTimedOut: await this.failStuckStarting(),
      terminatingResolved: await this.resolveStuckTerminating(),
      lostRecords: 0,
      orphanTasksStopped: 0,
      quotaCountersRepaired: await this.repairQuotaCounters(),
    };
    const reconciled = await this.reconcile();
    report.lostRecords = reconciled.lostRecords;
    report.orphanTasksStopped = reconciled.orphanTasksStopped;
    return report;
  }

  /**
   * Quota counters drift high when a counted record goes without its release (deleted by hand,
   * a path that skips it): the store recounts the ones due (docs/design.md, "Quota counters are
   * repaired"), at most a page per sweep.
   */
  private async repairQuotaCounters(): Promise<number> {
    const repairs =
      (await this.deps.store.repairQuotaCounters?.(
        this.isoBefore(this.deps.settings.sweepIntervalMs ?? DEFAULT_SWEEP_INTERVAL_MS),
        PAGE,
      )) ?? [];
    for (const repair of repairs) this.log.warn(repair, 'quota counter corrected by a recount');
    return repairs.length;
  }

  private async failStuckStarting(): Promise<number> {
    const cutoff = this.isoBefore(this.deps.settings.startTimeoutMs);
    let failed = 0;
    for (const container of await this.deps.store.listContainersByStatus('starting', PAGE)) {
      if (container.createdAt > cutoff) continue;
      const detail = 'not running within BERTH_START_TIMEOUT';
      if (!container.taskArn) {
        // Its starter is gone (stopped meanwhile or not): no task event will ever end it.
        const closed = await this.containers.closeAbandoned(
          container,
          stopReason('start_failed', detail),
        );
        if (closed?.status === 'failed') failed += 1;
        continue;
      }
      // A stop is recorded already: the task's end (or reconcile, if that end was lost) fails it.
      if (container.stopReason !== null) continue;
      // Its task may still be cloning into the workspace: record the stop and let the task's
      // end fail the container, so no next generation starts on the same workspace meanwhile.
      const asked = await this.containers.stopGeneration(
        container.containerId,
        container.generation,
        stopReason('start_failed', detail),
        { stillWanted: (current) => current.stopReason === null },
      );
      if (asked && asked.stopReason !== null) failed += 1;
    }
    return failed;
  }

  /**
   * A container terminating for longer than the grace period: its task is forced to stop,
   * and a task that is already gone (its STOPPED event lost) closes the record.
   */
  private async resolveStuckTerminating(): Promise<number> {
    const graceCutoff = this.isoBefore(this.deps.settings.shutdownGraceMs + 5_000);
    let resolved = 0;
    for (const container of await this.deps.store.listContainersByStatus('terminating', PAGE)) {
      if (!container.terminatingSince || container.terminatingSince > graceCutoff) continue;
      const task = container.taskArn
        ? await this.deps.runtime.describeTask(container.taskArn)
        : undefined;
      if (task && task.lastStatus !== 'STOPPED') {
        // Say so in the record first: a runtime may report the stop under the reason it was
        // first given (ECS keeps the first one), and the contract wants a forced stop named.
        const forced = await this.records.update(container.containerId, (current) =>
          current.generation !== container.generation ||
          current.status !== 'terminating' ||
          parseStopReason(current.stopReason)?.kind === 'forced'
            ? undefined
            : {
                ...current,
                stopReason: formatStopReason(
                  stopReason(
                    'forced',
                    `${parseStopReason(current.stopReason)?.kind ?? 'stop'} did not finish within the grace period`,
                  ),
                ),
              },
        );
        const reason =
          forced?.after.stopReason ?? formatStopReason(stopReason('forced', 'grace period over'));
        await this.deps.runtime.stopTask(task.taskArn, reason);
        continue;
      }
      const reported = parseStopReason(task?.stoppedReason);
      const reason =
        reported?.kind === 'save_failed'
          ? reported
          : (parseStopReason(container.stopReason) ?? stopReason('forced'));
      const done = await this.containers.markStopped(
        container.containerId,
        container.generation,
        reason,
      );
      if (done?.status === 'stopped') resolved += 1;
    }
    return resolved;
  }

  /**
   * Both directions: a live record whose task is gone is closed as `lost`; a task that no
   * live record owns is stopped.
   */
  async reconcile(): Promise<{ lostRecords: number; orphanTasksStopped: number }> {
    const tasks = await this.deps.runtime.listTasks();
    const byArn = new Map(tasks.map((task) => [task.taskArn, task]));
    let lostRecords = 0;
    let orphanTasksStopped = 0;
    const owned = new Set<string>();
    for (const status of ['running', 'starting'] as const) {
      let cursor: string | undefined;
      do {
        const page = await this.deps.store.listContainers({ status }, PAGE, cursor);
        for (const container of page.items) {
          // Events a crash left in a live container's outbox go out here at the latest.
          if (container.pendingEvents.length > 0) await this.records.flush(container);
          if (!container.taskArn) continue;
          owned.add(container.taskArn);
          if (byArn.has(container.taskArn)) continue;
          // listTasks only shows live tasks; ask about this one to avoid racing its start.
          const task = await this.deps.runtime.describeTask(container.taskArn);
          if (task && task.lastStatus !== 'STOPPED') continue;
          const failed = await this.containers.fail(
            container.containerId,
            container.generation,
            stopReason('lost', 'its task is gone'),
          );
          if (failed?.status === 'failed') {
            lostRecords += 1;
            this.metrics.orphanRepaired('record');
          }
        }
        cursor = page.nextCursor ?? undefined;
      } while (cursor);
    }
    const terminating = await this.deps.store.listContainersByStatus('terminating', 1000);
    for (const container of terminating) {
      if (container.pendingEvents.length > 0) await this.records.flush(container);
      if (container.taskArn) owned.add(container.taskArn);
    }
    for (const task of tasks) {
      // Owned, or already asked to stop (a stop on its way is not an orphan to stop again).
      if (owned.has(task.taskArn) || task.desiredStatus === 'STOPPED') continue;
      // A warm-pool member: the pool's tick and its task events look after it.
      if (task.poolSlot !== undefined) continue;
      // A task started a moment ago may not be recorded yet: re-read its container first.
      const container = task.containerId
        ? await this.deps.store.getContainer(task.containerId)
        : undefined;
      if (container && isLive(container.status) && container.taskArn === task.taskArn) continue;
      if (
        container &&
        container.status === 'starting' &&
        !container.taskArn &&
        container.generation === task.generation
      )
        continue;
      this.log.warn(
        { taskArn: task.taskArn, containerId: task.containerId },
        'stopping orphaned task',
      );
      await this.deps.runtime.stopTask(task.taskArn, 'berth: orphaned task (no live record)');
      orphanTasksStopped += 1;
      this.metrics.orphanRepaired('task');
    }
    return { lostRecords, orphanTasksStopped };
  }
}
