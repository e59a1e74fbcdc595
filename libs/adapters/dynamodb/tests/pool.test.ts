import {
  CapacityExceededError,
  StaleWriteError,
  containerIdOf,
  newPoolMember,
  type PoolMemberRecord,
} from '@berth/domain';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DynamoStateStore } from '../src/index.ts';
import { T0, containerFixture, destroyClients, storeWithTables } from './helpers.ts';

afterAll(destroyClients);

let store: DynamoStateStore;

beforeAll(async () => {
  ({ store } = await storeWithTables('pool'));
});

function freeMember(slot: number, generation = 1): PoolMemberRecord {
  return {
    ...newPoolMember(slot, generation, T0),
    state: 'free',
    taskArn: `task-${slot}-${generation}`,
    controlQueueUrl: `http://sqs/ctl-${slot}`,
    taskDefinition: 'berth-workspace',
  };
}

describe('the warm pool in the containers table', () => {
  it('reads back a slot and its member, and nothing else finds them', async () => {
    // Prepare
    const member = freeMember(0);
    await store.writePool({
      slots: [{ record: { slot: 0, generation: 1, version: 1 }, expectVersion: null }],
      members: [{ record: member, expectVersion: null }],
    });

    // Act
    const [read] = await store.readPool(1);
    const scan = await store.listContainers({}, 100);
    const running = await store.listContainersByStatus('running', 100);
    const gauges = await store.containerGauges(['starting', 'running', 'terminating']);

    // Assess
    expect(read).toEqual({ slot: { slot: 0, generation: 1, version: 1 }, member });
    expect(scan.items).toEqual([]);
    expect(running).toEqual([]);
    expect(gauges.byStatus).toEqual({ starting: 0, running: 0, terminating: 0 });
  });

  it('lets exactly one of 10 concurrent claims take a member, each with its own container', async () => {
    // Prepare
    const member = freeMember(1);
    await store.writePool({ members: [{ record: member, expectVersion: null }] });
    const claims = Array.from({ length: 10 }, (_, n) => {
      const key = { clientId: 'pool', projectId: 'race', userId: `u${n}` };
      return {
        key,
        member: {
          ...member,
          state: 'claimed' as const,
          claimedBy: containerIdOf(key),
          claimedGeneration: 1,
          version: member.version + 1,
        },
        container: containerFixture(key, 1, { taskArn: member.taskArn, fromPool: true }),
      };
    });

    // Act
    const results = await Promise.allSettled(
      claims.map((claim) =>
        store.writePool({
          members: [{ record: claim.member, expectVersion: member.version }],
          containers: [
            {
              record: claim.container,
              expect: { kind: 'new-generation', previousGeneration: null },
            },
          ],
        }),
      ),
    );

    // Assess: one claim, and only the winner's container exists (member and container together)
    const won = results.flatMap((result, n) => (result.status === 'fulfilled' ? [n] : []));
    expect(won).toHaveLength(1);
    for (const result of results) {
      if (result.status === 'rejected') expect(result.reason).toBeInstanceOf(StaleWriteError);
    }
    const winner = claims[won[0] ?? -1];
    const stored = await store.getPoolMember(1, 1);
    expect(stored).toEqual(winner?.member);
    const containers = await Promise.all(
      claims.map((claim) => store.getContainer(containerIdOf(claim.key))),
    );
    expect(containers.filter((container) => container !== undefined)).toEqual([winner?.container]);
  });

  it('claims nothing when the container was created meanwhile', async () => {
    // Prepare
    const member = freeMember(2);
    await store.writePool({ members: [{ record: member, expectVersion: null }] });
    const key = { clientId: 'pool', projectId: 'race', userId: 'cold' };
    const cold = containerFixture(key, 1);
    await store.write({
      containers: [{ record: cold, expect: { kind: 'new-generation', previousGeneration: null } }],
    });

    // Act
    const claim = store.writePool({
      members: [
        {
          record: { ...member, state: 'claimed', claimedBy: containerIdOf(key), version: 2 },
          expectVersion: member.version,
        },
      ],
      containers: [
        {
          record: containerFixture(key, 1, { taskArn: member.taskArn, fromPool: true }),
          expect: { kind: 'new-generation', previousGeneration: null },
        },
      ],
    });

    // Assess
    await expect(claim).rejects.toBeInstanceOf(StaleWriteError);
    expect(await store.getPoolMember(2, 1)).toEqual(member);
    expect(await store.getContainer(containerIdOf(key))).toEqual(cold);
  });

  it("counts a claim in its client's quota, and refuses one over it without taking the member", async () => {
    // Prepare: a per-user quota of 1, already used by a cold start.
    const member = freeMember(3);
    await store.writePool({ members: [{ record: member, expectVersion: null }] });
    const charge = (projectId: string) => ({
      clientId: 'pool-quota',
      userId: 'ann',
      projectId,
      maxLiveContainersPerUser: 1,
      maxLiveContainersPerClient: null,
      newProjectLimit: null,
      newProject: false,
    });
    const coldKey = { clientId: 'pool-quota', projectId: 'cold', userId: 'ann' };
    const cold = containerFixture(coldKey, 1, { quotaCounted: true });
    await store.write({
      containers: [{ record: cold, expect: { kind: 'new-generation', previousGeneration: null } }],
      quota: { charge: charge('cold') },
    });
    const key = { clientId: 'pool-quota', projectId: 'warm', userId: 'ann' };
    const claim = () =>
      store.writePool({
        members: [
          {
            record: { ...member, state: 'claimed', claimedBy: containerIdOf(key), version: 2 },
            expectVersion: member.version,
          },
        ],
        containers: [
          {
            record: containerFixture(key, 1, {
              taskArn: member.taskArn,
              fromPool: true,
              quotaCounted: true,
            }),
            expect: { kind: 'new-generation', previousGeneration: null },
          },
        ],
        quota: { charge: charge('warm') },
      });

    // Act
    const refused = await claim().then(
      () => undefined,
      (error: unknown) => error,
    );
    await store.write({
      containers: [
        {
          record: { ...cold, status: 'failed', quotaCounted: false, version: cold.version + 1 },
          expect: { kind: 'version', version: cold.version },
        },
      ],
      quota: { release: { clientId: 'pool-quota', userId: 'ann' } },
    });
    const freeAfterRefusal = await store.getPoolMember(3, 1);
    await claim();

    // Assess
    expect(refused).toBeInstanceOf(CapacityExceededError);
    expect((refused as Error).message).toMatch(/maxLiveContainersPerUser \(1\)/);
    expect(freeAfterRefusal).toEqual(member);
    expect(await store.getPoolMember(3, 1)).toMatchObject({ state: 'claimed', version: 2 });
    expect(await store.getContainer(containerIdOf(key))).toMatchObject({
      fromPool: true,
      quotaCounted: true,
    });
  });
});
