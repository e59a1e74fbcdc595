/**
 * Draining the warm pool after a deploy: the services name the task definition revision they
 * were deployed with (infra: BERTH_ECS_TASK_DEFINITION is the revision ARN), and the reaper's
 * tick retires free members of an older revision, but keeps those of a newer one (started by a
 * service already redeployed while this one is not yet).
 */
import { describe, expect, it } from '@jest/globals';
import {
  StaleWriteError,
  isSupersededTaskDefinition,
  newPoolMember,
  type PoolControlQueues,
  type PoolMemberRecord,
  type PoolRuntime,
  type PoolSlotRecord,
  type PoolStore,
  type PoolTaskSpec,
} from '@berth/domain';
import { makeCoreDeps } from '@berth/testing';
import { UseCases } from '../src/index.ts';

const revision = (n: number): string =>
  `arn:aws:ecs:us-east-1:123456789012:task-definition/berth-workspace:${n}`;

/** The pool's items in memory, with the store's version guards. */
class MemoryPoolStore implements PoolStore {
  readonly slots = new Map<number, PoolSlotRecord>();
  readonly members = new Map<string, PoolMemberRecord>();

  readPool(size: number) {
    return Promise.resolve(
      Array.from({ length: size }, (_, index) => {
        const slot = this.slots.get(index);
        return {
          slot,
          member: slot ? this.members.get(`${index}.${slot.generation}`) : undefined,
        };
      }),
    );
  }

  getPoolMember(slot: number, generation: number) {
    return Promise.resolve(this.members.get(`${slot}.${generation}`));
  }

  writePool(change: Parameters<PoolStore['writePool']>[0]): Promise<void> {
    if (change.containers?.length) throw new Error('not used by these tests');
    for (const { record, expectVersion } of change.slots ?? [])
      if ((this.slots.get(record.slot)?.version ?? null) !== expectVersion)
        return Promise.reject(new StaleWriteError(`slot ${record.slot}`));
    for (const { record, expectVersion } of change.members ?? [])
      if (
        (this.members.get(`${record.slot}.${record.generation}`)?.version ?? null) !== expectVersion
      )
        return Promise.reject(new StaleWriteError(`member ${record.slot}.${record.generation}`));
    for (const { record } of change.slots ?? []) this.slots.set(record.slot, record);
    for (const { record } of change.members ?? [])
      this.members.set(`${record.slot}.${record.generation}`, record);
    return Promise.resolve();
  }
}

class RecordingControlQueues implements PoolControlQueues {
  readonly deleted: string[] = [];
  createControl(slot: number, generation: number) {
    return Promise.resolve(`http://queues/berth-pool-s${slot}-g${generation}-ctl`);
  }
  deleteControl(queueUrl: string) {
    this.deleted.push(queueUrl);
    return Promise.resolve();
  }
  send() {
    return Promise.resolve();
  }
}

class DeployedRuntime implements PoolRuntime {
  readonly started: PoolTaskSpec[] = [];
  readonly taskDefinition: string;
  constructor(taskDefinition: string) {
    this.taskDefinition = taskDefinition;
  }
  startPoolMember(spec: PoolTaskSpec) {
    this.started.push(spec);
    return Promise.resolve({ taskArn: `task-s${spec.slot}-g${spec.generation}` });
  }
}

function freeMember(slot: number, taskDefinition: string, now: string): PoolMemberRecord {
  return {
    ...newPoolMember(slot, 1, now),
    state: 'free',
    taskArn: `task-s${slot}-g1`,
    controlQueueUrl: `http://queues/berth-pool-s${slot}-g1-ctl`,
    taskDefinition,
    readyAt: now,
  };
}

describe('the warm pool after a deploy', () => {
  it('retires and replaces a free member of an older revision, and keeps one of a newer revision', async () => {
    // Prepare: deployed with revision 8; slot 0 holds a member of revision 7 (before the
    // deploy), slot 1 one of revision 9 (started by a service redeployed before this one).
    const deps = makeCoreDeps();
    const now = deps.clock.now().toISOString();
    const store = new MemoryPoolStore();
    const queues = new RecordingControlQueues();
    const runtime = new DeployedRuntime(revision(8));
    for (const [slot, taskDefinition] of [revision(7), revision(9)].entries()) {
      store.slots.set(slot, { slot, generation: 1, version: 1 });
      store.members.set(`${slot}.1`, freeMember(slot, taskDefinition, now));
    }
    const { pool } = new UseCases({
      ...deps,
      pool: { size: 2, maxAgeMs: 3_600_000, store, queues, runtime },
    });

    // Act
    const drained = await pool?.tick();
    const refilled = await pool?.tick();

    // Assess
    expect(drained).toMatchObject({ retired: 1, free: 1 });
    expect(store.members.get('0.1')).toMatchObject({
      state: 'retired',
      retiredReason: 'task_definition',
    });
    expect(deps.runtime.stopCalls.map((call) => call.taskArn)).toEqual(['task-s0-g1']);
    expect(queues.deleted).toEqual(['http://queues/berth-pool-s0-g1-ctl']);
    expect(store.members.get('1.1')).toMatchObject({ state: 'free', taskDefinition: revision(9) });
    expect(refilled).toMatchObject({ started: 1 });
    expect(runtime.started.map((spec) => [spec.slot, spec.generation])).toEqual([[0, 2]]);
    expect(store.members.get('0.2')).toMatchObject({
      state: 'starting',
      taskArn: 'task-s0-g2',
      taskDefinition: revision(8),
    });
  });
});

describe('isSupersededTaskDefinition', () => {
  it.each([
    [revision(7), revision(8), true],
    [revision(8), revision(8), false],
    [revision(9), revision(8), false],
    ['berth-workspace:2', 'berth-workspace:10', true],
    ['berth-workspace:0', 'berth-workspace', true],
    ['other-family:9', revision(8), true],
    [null, revision(8), false],
  ])('a member of %p, new tasks from %p: %p', (member, current, superseded) => {
    expect(isSupersededTaskDefinition(member, current)).toBe(superseded);
  });
});
