import { randomInt } from 'node:crypto';
import {
  StaleWriteError,
  canTransition,
  containerIdOf,
  isSupersededTaskDefinition,
  newContainerRecord,
  newPoolMember,
  type ContainerKey,
  type ContainerRecord,
  type PoolIdentityMessage,
  type PoolMemberRecord,
  type PoolSlotRecord,
} from '@berth/domain';
import type { ContainerRecords } from './container-records.ts';
import { policyForNewGeneration, quotaChargeFor } from './policies.ts';
import { noMetrics, silentLogger, type CoreDeps, type PoolDeps } from './deps.ts';

/** A claimed member whose hand-over is not finished this long after: its claimer is gone. */
const HAND_OVER_GRACE_MS = 10_000;
/** A member written `starting` whose task is still unknown this long after: start it again. */
const START_RETRY_MS = 15_000;
const MAX_ATTEMPTS = 8;
/** A handed member's control queue is kept this long (its agent reads the identity at once). */
const CONTROL_QUEUE_KEEP_MS = 5 * 60_000;
/** How many earlier members of a slot one sweep looks at. */
const SWEEP_GENERATIONS = 50;

/** What a claim did: a container from the pool, no free member, or another writer won. */
export type ClaimResult = { container: ContainerRecord } | 'none' | 'lost';

/** Where a pool task's event belongs: a container it became, or the pool itself. */
export type PoolTaskRoute =
  { kind: 'container'; containerId: string; generation: number } | { kind: 'pool' };

export interface PoolTickReport {
  members: number;
  free: number;
  started: number;
  retired: number;
  handedOver: number;
}

/**
 * The warm pool (docs/design.md, "The warm pool"): keeps `size` generic agents running, lets a
 * miss claim one with one transaction (the member and the user's new container generation
 * together), and hands the member its identity through its control queue.
 */
export class PoolService {
  private readonly deps: CoreDeps;
  private readonly pool: PoolDeps;
  private readonly records: ContainerRecords;
  /** Starts in flight in this process, so a slow RunTask is not asked for twice. */
  private readonly startsInFlight = new Set<string>();

  constructor(deps: CoreDeps, pool: PoolDeps, records: ContainerRecords) {
    this.deps = deps;
    this.pool = pool;
    this.records = records;
  }

  get size(): number {
    return this.pool.size;
  }

  private get log() {
    return this.deps.log ?? silentLogger;
  }

  private get metrics() {
    return this.deps.metrics ?? noMetrics;
  }

  private nowMs(): number {
    return this.deps.clock.now().getTime();
  }

  private now(): string {
    return this.deps.clock.now().toISOString();
  }

  /**
   * On a miss: takes a free member for generation `previous + 1` of this container, or says
   * why not. The member and the container are written in ONE transaction, so two misses
   * never claim one member, one miss never claims two, and no member is ever claimed by
   * nobody, whenever the claimer dies.
   */
  async claim(
    key: ContainerKey,
    previous: ContainerRecord | undefined,
    commandId?: string,
  ): Promise<ClaimResult> {
    const startedAt = performance.now();
    const containerId = containerIdOf(key);
    let free: PoolMemberRecord[];
    try {
      free = (await this.pool.store.readPool(this.pool.size)).flatMap(({ member }) =>
        member && this.claimable(member) ? [member] : [],
      );
    } catch (error) {
      this.log.warn({ containerId, err: error }, 'pool unreadable; starting cold');
      return 'none';
    }
    if (free.length === 0) {
      this.metrics.poolClaim?.('miss');
      return 'none';
    }
    const generation = (previous?.generation ?? 0) + 1;
    // Counted in the claim's one transaction, like a cold start's: a full quota refuses the
    // claim (CapacityExceededError) and leaves the member free.
    const charge = await quotaChargeFor(this.deps, key);
    // Created before the claim so that the claim's one write holds everything the container
    // needs; a claim that loses leaves them to whoever starts this generation (same names).
    const queues = await this.deps.queues.create(containerId, generation);
    const now = this.now();
    const record: ContainerRecord = {
      ...newContainerRecord({ ...key, containerId }, generation, now),
      workspacePath: this.deps.runtime.workspacePathFor(key),
      inputQueueUrl: queues.inputQueueUrl,
      outputQueueUrl: queues.outputQueueUrl,
      fromPool: true,
      ...(await policyForNewGeneration(this.deps, key)),
      ...(charge ? { quotaCounted: true } : {}),
    };
    // Concurrent misses start at different members, so they rarely race for the same one.
    const offset = randomInt(free.length);
    for (let index = 0; index < free.length; index += 1) {
      const member = free[(offset + index) % free.length];
      if (!member) continue;
      // Its address comes with it: no event of its task tells it again once claimed.
      const container: ContainerRecord = {
        ...record,
        taskArn: member.taskArn,
        endpoint: member.endpoint ?? null,
      };
      const created = this.records.newGeneration(container, previous, (created) => [
        this.records.event('container.created', created, commandId ? { commandId } : {}),
      ]);
      const stored = created.record;
      const claimed: PoolMemberRecord = {
        ...member,
        state: 'claimed',
        claimedAt: now,
        claimedBy: containerId,
        claimedGeneration: generation,
        version: member.version + 1,
      };
      try {
        await this.pool.store.writePool({
          members: [{ record: claimed, expectVersion: member.version }],
          containers: [created],
          ...(charge ? { quota: { charge } } : {}),
        });
      } catch (error) {
        if (!(error instanceof StaleWriteError)) throw error;
        const current = await this.deps.store.getContainer(containerId);
        // Another writer made this generation (a cold start, another claim): theirs is it.
        if (current && current.generation !== previous?.generation) return 'lost';
        continue; // This member was taken (or retired) meanwhile: the next one.
      }
      this.metrics.poolClaim?.('claimed', (performance.now() - startedAt) / 1000);
      this.log.info(
        { containerId, generation, slot: member.slot, member: member.generation },
        'claimed a pool member',
      );
      try {
        return { container: await this.handOver(claimed, stored) };
      } catch (error) {
        // Claimed and stored: the reaper's next tick finishes the hand-over.
        this.log.warn({ containerId, err: error }, 'hand-over unfinished; the pool tick ends it');
        return { container: stored };
      }
    }
    this.metrics.poolClaim?.('miss');
    return 'none';
  }

  private claimable(member: PoolMemberRecord): boolean {
    return (
      member.state === 'free' &&
      member.taskArn !== null &&
      member.controlQueueUrl !== null &&
      this.nowMs() - Date.parse(member.createdAt) < this.pool.maxAgeMs &&
      !isSupersededTaskDefinition(member.taskDefinition, this.pool.runtime.taskDefinition)
    );
  }

  /**
   * Tells a claimed member who it is (its control queue), marks its container running and
   * the member handed. Idempotent: the agent takes the first identity only, and both writes
   * are conditional on the state they leave.
   */
  private async handOver(
    member: PoolMemberRecord,
    container: ContainerRecord,
  ): Promise<ContainerRecord> {
    const { containerId, generation } = container;
    if (!member.controlQueueUrl || !container.inputQueueUrl || !container.outputQueueUrl) {
      throw new Error(`pool member ${member.slot}.${member.generation} cannot be handed over`);
    }
    const repoUrl =
      (await this.pool.repositoryFor?.(container)) ?? this.deps.settings.repoUrlFor?.(container);
    const identity: PoolIdentityMessage = {
      type: 'pool.identity',
      containerId,
      generation,
      workspacePath: container.workspacePath ?? this.deps.runtime.workspacePathFor(container),
      repoUrl,
      inputQueueUrl: container.inputQueueUrl,
      outputQueueUrl: container.outputQueueUrl,
    };
    await this.pool.queues.send(member.controlQueueUrl, identity);
    const now = this.now();
    const result = await this.records.transition(
      containerId,
      (current) =>
        current.generation !== generation ||
        !canTransition(current.status, 'running') ||
        current.taskArn !== member.taskArn
          ? undefined
          : {
              ...current,
              status: 'running',
              startedAt: now,
              idleSince: current.sessions.length === 0 ? now : null,
            },
      (after) => [this.records.event('container.running', after)],
    );
    await this.updateMember(member.slot, member.generation, (current) =>
      current.state === 'claimed' ? { ...current, state: 'handed' } : undefined,
    );
    const after = result?.after ?? (await this.deps.store.getContainer(containerId)) ?? container;
    if (after.status === 'running' && after.stopReason === null) return after;
    if (after.generation === generation && after.stopReason && member.taskArn) {
      // Stopped while it was being claimed: now that it runs, it stops like any other.
      await this.deps.runtime.stopTask(member.taskArn, after.stopReason);
    }
    return after;
  }

  /**
   * The reaper's tick: fills empty slots, replaces members that were handed over, are too
   * old, of an old task definition or never started, and finishes hand-overs a claimer left.
   */
  async tick(): Promise<PoolTickReport> {
    const report: PoolTickReport = { members: 0, free: 0, started: 0, retired: 0, handedOver: 0 };
    const pool = await this.pool.store.readPool(this.pool.size);
    const now = this.nowMs();
    await Promise.all(
      pool.map(async ({ slot, member }, index) => {
        if (!slot || !member) {
          if (await this.refill(index, slot)) report.started += 1;
          return;
        }
        switch (member.state) {
          case 'starting': {
            report.members += 1;
            const age = now - Date.parse(member.createdAt);
            if (member.taskArn && age >= this.deps.settings.startTimeoutMs) {
              if (await this.retire(member, 'start_timeout')) report.retired += 1;
            } else if (!member.taskArn && age >= START_RETRY_MS) {
              // Its starter died between the write and RunTask: the start is idempotent.
              await this.start(member);
            }
            return;
          }
          case 'free': {
            report.members += 1;
            if (now - Date.parse(member.createdAt) >= this.pool.maxAgeMs) {
              if (await this.retire(member, 'max_age')) report.retired += 1;
            } else if (
              isSupersededTaskDefinition(member.taskDefinition, this.pool.runtime.taskDefinition)
            ) {
              if (await this.retire(member, 'task_definition')) report.retired += 1;
            } else {
              report.free += 1;
            }
            return;
          }
          case 'claimed': {
            if (member.claimedAt && now - Date.parse(member.claimedAt) >= HAND_OVER_GRACE_MS) {
              if (await this.finishHandOver(member)) report.handedOver += 1;
            }
            return;
          }
          case 'handed':
          case 'retired':
            if (await this.refill(index, slot)) report.started += 1;
            return;
        }
      }),
    );
    return report;
  }

  /**
   * Deletes the control queues of members handed over more than 5 minutes ago. The agent
   * deletes its own where it may (the local stack); on AWS its role may not delete queues (it
   * could delete any container's), so this, on the reaper's sweep, does. Returns how many.
   */
  async retireControlQueues(): Promise<number> {
    const cutoff = this.nowMs() - CONTROL_QUEUE_KEEP_MS;
    let deleted = 0;
    for (const { slot } of await this.pool.store.readPool(this.pool.size)) {
      if (!slot) continue;
      const oldest = Math.max(1, slot.generation - SWEEP_GENERATIONS);
      for (let generation = slot.generation - 1; generation >= oldest; generation -= 1) {
        const member = await this.pool.store.getPoolMember(slot.slot, generation);
        // Members before one already swept were swept too.
        if (!member || member.controlQueueUrl === null) break;
        if (member.state !== 'handed' || !member.claimedAt) continue;
        if (Date.parse(member.claimedAt) > cutoff) continue;
        await this.pool.queues.deleteControl(member.controlQueueUrl);
        await this.updateMember(slot.slot, generation, (current) =>
          current.controlQueueUrl === null ? undefined : { ...current, controlQueueUrl: null },
        );
        deleted += 1;
      }
    }
    return deleted;
  }

  /** Where a pool task's event goes: to the container it became, or to the pool. */
  async route(
    slot: number,
    generation: number,
    taskArn: string,
    lastStatus: string,
    stoppedReason: string | undefined,
    /** The task's address, when the event names it. */
    endpoint?: string,
  ): Promise<PoolTaskRoute> {
    const member = await this.pool.store.getPoolMember(slot, generation);
    if (!member) {
      if (lastStatus !== 'STOPPED') {
        this.log.warn({ taskArn, slot, generation }, 'stopping a pool task without a member');
        await this.deps.runtime.stopTask(taskArn, 'berth: orphaned pool task');
      }
      return { kind: 'pool' };
    }
    if (
      (member.state === 'claimed' || member.state === 'handed') &&
      member.claimedBy &&
      member.claimedGeneration !== null
    ) {
      return {
        kind: 'container',
        containerId: member.claimedBy,
        generation: member.claimedGeneration,
      };
    }
    if (lastStatus === 'RUNNING') {
      if (member.state === 'retired') {
        await this.deps.runtime.stopTask(
          taskArn,
          `berth: pool member retired (${member.retiredReason ?? 'retired'})`,
        );
        return { kind: 'pool' };
      }
      const now = this.now();
      const freed = await this.updateMember(slot, generation, (current) =>
        current.state === 'starting'
          ? {
              ...current,
              state: 'free',
              readyAt: now,
              taskArn: current.taskArn ?? taskArn,
              endpoint: endpoint ?? current.endpoint ?? null,
            }
          : undefined,
      );
      // Claimed in between (a RUNNING overtaken by a claim): the container takes the event.
      if (freed && !freed.changed && freed.after.state !== 'free' && freed.after.claimedBy) {
        return this.route(slot, generation, taskArn, lastStatus, stoppedReason, endpoint);
      }
      return { kind: 'pool' };
    }
    if (lastStatus === 'STOPPED') {
      const ended = await this.retire(member, `ended:${stoppedReason ?? 'task stopped'}`, false);
      if (!ended) {
        const fresh = await this.pool.store.getPoolMember(slot, generation);
        if (fresh?.claimedBy && fresh.claimedGeneration !== null) {
          return {
            kind: 'container',
            containerId: fresh.claimedBy,
            generation: fresh.claimedGeneration,
          };
        }
      }
    }
    return { kind: 'pool' };
  }

  /** True when the task is a live pool member's (reconciliation leaves those to the pool). */
  static isPoolTask(task: { poolSlot?: number | undefined }): boolean {
    return task.poolSlot !== undefined;
  }

  private async finishHandOver(member: PoolMemberRecord): Promise<boolean> {
    if (!member.claimedBy || member.claimedGeneration === null) return false;
    const container = await this.deps.store.getContainer(member.claimedBy);
    if (
      container &&
      container.generation === member.claimedGeneration &&
      container.status === 'starting' &&
      container.taskArn === member.taskArn
    ) {
      this.log.warn(
        { containerId: container.containerId, slot: member.slot },
        'finishing a hand-over its claimer left',
      );
      await this.handOver(member, container);
      return true;
    }
    // The container moved on (running already, or ended): the member's part is done.
    await this.updateMember(member.slot, member.generation, (current) =>
      current.state === 'claimed' ? { ...current, state: 'handed' } : undefined,
    );
    return false;
  }

  /** Writes the slot's next member generation (conditional on the slot) and starts it. */
  private async refill(index: number, slot: PoolSlotRecord | undefined): Promise<boolean> {
    const generation = (slot?.generation ?? 0) + 1;
    const member = newPoolMember(index, generation, this.now());
    try {
      await this.pool.store.writePool({
        slots: [
          {
            record: { slot: index, generation, version: (slot?.version ?? 0) + 1 },
            expectVersion: slot?.version ?? null,
          },
        ],
        members: [{ record: member, expectVersion: null }],
      });
    } catch (error) {
      if (error instanceof StaleWriteError) return false; // another reaper refilled it
      throw error;
    }
    await this.start(member);
    return true;
  }

  /** Its control queue and its task, then both on the member. Idempotent per member. */
  private async start(member: PoolMemberRecord): Promise<void> {
    const id = `${member.slot}.${member.generation}`;
    if (this.startsInFlight.has(id)) return;
    this.startsInFlight.add(id);
    try {
      const controlQueueUrl = await this.pool.queues.createControl(member.slot, member.generation);
      const { taskArn } = await this.pool.runtime.startPoolMember({
        slot: member.slot,
        generation: member.generation,
        environment: {
          ...this.deps.settings.agentEnvironment,
          BERTH_POOL_CONTROL_QUEUE_URL: controlQueueUrl,
          BERTH_POOL_SLOT: String(member.slot),
          BERTH_GENERATION: String(member.generation),
        },
      });
      const taskDefinition = this.pool.runtime.taskDefinition;
      const written = await this.updateMember(member.slot, member.generation, (current) =>
        current.state === 'retired' || (current.taskArn !== null && current.taskArn !== taskArn)
          ? undefined
          : current.controlQueueUrl === controlQueueUrl && current.taskArn === taskArn
            ? undefined
            : { ...current, taskArn, controlQueueUrl, taskDefinition },
      );
      if (written?.after.state === 'retired') {
        await this.deps.runtime.stopTask(taskArn, 'berth: pool member retired while starting');
      }
      this.log.info(
        { slot: member.slot, generation: member.generation, taskArn },
        'pool member started',
      );
    } catch (error) {
      this.log.error(
        { slot: member.slot, generation: member.generation, err: error },
        'pool member failed to start; the next tick tries again',
      );
    } finally {
      this.startsInFlight.delete(id);
    }
  }

  /**
   * Takes an unclaimed member out of the pool (a conditional write, so no claim can take it
   * meanwhile), stops its task and deletes its control queue. False when it was claimed first.
   */
  private async retire(
    member: PoolMemberRecord,
    reason: string,
    stopTask = true,
  ): Promise<boolean> {
    const retired = await this.updateMember(member.slot, member.generation, (current) =>
      current.state === 'starting' || current.state === 'free'
        ? { ...current, state: 'retired', retiredReason: reason }
        : undefined,
    );
    if (!retired?.changed) return false;
    this.log.info(
      { slot: member.slot, generation: member.generation, reason },
      'pool member retired',
    );
    const { taskArn, controlQueueUrl } = retired.after;
    if (stopTask && taskArn) {
      await this.deps.runtime
        .stopTask(taskArn, `berth: pool member retired (${reason})`)
        .catch((error: unknown) =>
          this.log.warn({ taskArn, err: error }, 'could not stop pool task'),
        );
    }
    if (controlQueueUrl) {
      await this.pool.queues
        .deleteControl(controlQueueUrl)
        .catch((error: unknown) =>
          this.log.warn({ controlQueueUrl, err: error }, 'could not delete control queue'),
        );
    }
    return true;
  }

  private async updateMember(
    slot: number,
    generation: number,
    decide: (current: PoolMemberRecord) => PoolMemberRecord | undefined,
  ): Promise<{ after: PoolMemberRecord; changed: boolean } | undefined> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt += 1) {
      const current = await this.pool.store.getPoolMember(slot, generation);
      if (!current) return undefined;
      const next = decide(current);
      if (!next) return { after: current, changed: false };
      const written = { ...next, version: current.version + 1 };
      try {
        await this.pool.store.writePool({
          members: [{ record: written, expectVersion: current.version }],
        });
        return { after: written, changed: true };
      } catch (error) {
        if (!(error instanceof StaleWriteError)) throw error;
      }
    }
    return undefined;
  }
}
