import { DeleteItemCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { UseCases, type PoolDeps } from '@berth/core';
import { newPoolMember, stopReason, systemClock } from '@berth/domain';
import { DynamoStateStore, ensureTables } from '@berth/dynamodb';
import { createMetrics, type ServiceMetrics } from '@berth/platform';
import { makeCoreDeps, type FakeCoreDeps } from '@berth/testing';
import type { FastifyInstance } from 'fastify';
import { createSigner } from 'fast-jwt';
import { Registry } from 'prom-client';
import { randomUUID } from 'node:crypto';
import { buildDiscoveryApp } from '../src/app.ts';

const SECRET = 'a-test-secret-that-is-long-enough-for-hs256!';
const sign = (claims: Record<string, unknown>) =>
  createSigner({ key: SECRET, algorithm: 'HS256' })(claims);
const admin = sign({ client: 'admin', sub: 'root', role: 'admin' });
const john = sign({ client: 'acme', sub: 'john', role: 'user' });
const acmeService = sign({ client: 'acme', sub: 'svc', role: 'service' });
const otherService = sign({ client: 'globex', sub: 'svc', role: 'service' });

const dynamodb = new DynamoDBClient({});
const suffix = randomUUID().slice(0, 8);
const names = {
  containerTable: `policy-containers-${suffix}`,
  sessionTable: `policy-sessions-${suffix}`,
};

let deps: FakeCoreDeps;
let app: FastifyInstance;
let metrics: ServiceMetrics;

beforeAll(async () => {
  await ensureTables(dynamodb, names);
});

beforeEach(async () => {
  const store = new DynamoStateStore({ client: dynamodb, ...names });
  deps = makeCoreDeps({ store, clock: systemClock as FakeCoreDeps['clock'] });
  metrics = createMetrics('discovery', { emf: false });
  const useCases = new UseCases({ ...deps, metrics: metrics.core, policies: store });
  app = await buildDiscoveryApp({
    useCases,
    store,
    publisher: deps.publisher,
    authSecret: SECRET,
    cacheTtlMs: 0,
    rateLimitPerMinute: 0,
    registry: metrics.registry,
  });
});

afterEach(async () => {
  await app.close();
});

afterAll(() => {
  dynamodb.destroy();
});

const call = (
  method: 'GET' | 'PUT' | 'DELETE' | 'POST',
  url: string,
  token: string,
  payload?: object,
) =>
  app.inject({
    method,
    url,
    headers: { authorization: `Bearer ${token}` },
    ...(payload ? { payload } : {}),
  });

describe('policy routes', () => {
  it('an admin sets, reads and removes a client policy; its service token reads it', async () => {
    // Arrange
    const client = `c-${randomUUID().slice(0, 8)}`;
    const serviceOf = sign({ client, sub: 'svc', role: 'service' });

    // Act
    const put = await call('PUT', `/v1/policies/${client}`, admin, {
      idleTimeout: '30m',
      maxLifetime: '8h',
      maxLiveContainersPerClient: 5,
    });
    const readByService = await call('GET', `/v1/policies/${client}`, serviceOf);
    const removed = await call('DELETE', `/v1/policies/${client}`, admin);
    const afterRemoval = await call('GET', `/v1/policies/${client}`, admin);

    // Assess
    expect(put.statusCode).toBe(200);
    expect(readByService.statusCode).toBe(200);
    expect(readByService.json()).toMatchObject({
      clientId: client,
      projectId: null,
      policy: { idleTimeout: '30m', maxLifetime: '8h', maxLiveContainersPerClient: 5 },
    });
    expect(removed.statusCode).toBe(204);
    expect(afterRemoval.statusCode).toBe(404);
  });

  it('refuses a change by anyone but an admin (403), and a read by another client or a user (403)', async () => {
    // Act
    const byService = await call('PUT', '/v1/policies/acme', acmeService, { maxSessions: 2 });
    const byUser = await call('PUT', '/v1/policies/acme/web', john, { maxSessions: 2 });
    const deleteByService = await call('DELETE', '/v1/policies/acme', acmeService);
    const readByOther = await call('GET', '/v1/policies/acme', otherService);
    const readByUser = await call('GET', '/v1/policies/acme', john);

    // Assess
    for (const answer of [byService, byUser, deleteByService, readByOther, readByUser]) {
      expect(answer.statusCode).toBe(403);
      expect(answer.json()).toMatchObject({ error: { code: 'forbidden' } });
    }
  });

  it.each([
    [{ idleTimeout: '10s' }, 'idleTimeout', '1m'],
    [{ idleTimeout: '9h' }, 'idleTimeout', '8h'],
    [{ maxSessions: 0 }, 'maxSessions', '1'],
    [{ maxLifetime: 'soon' }, 'maxLifetime', '(ms|s|m|h|d)'],
  ])('answers 400 for %j naming the field %s and the bound %s', async (body, field, bound) => {
    // Act
    const answer = await call('PUT', '/v1/policies/acme', admin, body);

    // Assess
    expect(answer.statusCode).toBe(400);
    const error = answer.json<{ error: { code: string; field: string; message: string } }>().error;
    expect(error.code).toBe('invalid_argument');
    expect(error.field).toBe(field);
    expect(error.message).toContain(bound);
  });

  it("refuses a client's quota on a project's policy, naming the field", async () => {
    // Act
    const answer = await call('PUT', '/v1/policies/acme/web', admin, { maxProjectsPerClient: 3 });

    // Assess
    expect(answer.statusCode).toBe(400);
    expect(answer.json()).toMatchObject({
      error: { code: 'invalid_argument', field: 'maxProjectsPerClient' },
    });
  });

  it("shows a container's effective policy with the source of each value, and applies a change to it at once", async () => {
    // Arrange
    const client = `c-${randomUUID().slice(0, 8)}`;
    await call('PUT', `/v1/policies/${client}`, admin, { idleTimeout: '30m', maxSessions: 4 });
    await call('PUT', `/v1/policies/${client}/web`, admin, { idleTimeout: '5m' });
    const discovered = await call('POST', '/v1/containers/discover', admin, {
      clientId: client,
      projectId: 'web',
      userId: 'ann',
    });
    expect(discovered.statusCode).toBe(201);

    // Act
    const before = await call('GET', `/v1/containers/${client}.web.ann/policy`, admin);
    await call('PUT', `/v1/policies/${client}/web`, admin, {
      idleTimeout: '2m',
      maxLifetime: '1h',
    });
    const after = await call('GET', `/v1/containers/${client}.web.ann/policy`, admin);
    const byOtherUser = await call('GET', `/v1/containers/${client}.web.ann/policy`, john);

    // Assess
    expect(before.statusCode).toBe(200);
    expect(before.json()).toMatchObject({
      policy: {
        idleTimeout: { value: '5m', source: 'project' },
        maxSessions: { value: 4, source: 'client' },
        maxLifetime: { value: null, source: 'default' },
      },
      applied: { idleTimeout: '5m', expiresAt: null },
    });
    expect(after.json()).toMatchObject({
      policy: { idleTimeout: { value: '2m', source: 'project' }, maxLifetime: { value: '1h' } },
      applied: { idleTimeout: '2m' },
    });
    const applied = after.json<{ applied: { idleTimeoutSince: string; expiresAt: string } }>()
      .applied;
    expect(applied.idleTimeoutSince).not.toBeNull();
    expect(applied.expiresAt).not.toBeNull();
    expect(byOtherUser.statusCode).toBe(403);
  });
});

describe('quotas', () => {
  it('creates exactly 5 of 20 simultaneous discovers for new projects under maxProjectsPerClient 5; the rest are 429 naming the quota', async () => {
    // Arrange
    const client = `q-${randomUUID().slice(0, 8)}`;
    expect(
      (await call('PUT', `/v1/policies/${client}`, admin, { maxProjectsPerClient: 5 })).statusCode,
    ).toBe(200);

    // Act
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, index) =>
        call('POST', '/v1/containers/discover', admin, {
          clientId: client,
          projectId: `p${index}`,
          userId: 'ann',
        }),
      ),
    );

    // Assess
    const created = answers.filter((answer) => answer.statusCode === 201);
    const refused = answers.filter((answer) => answer.statusCode === 429);
    expect(created).toHaveLength(5);
    expect(refused).toHaveLength(15);
    for (const answer of refused) {
      expect(answer.json()).toMatchObject({
        error: { code: 'capacity_exceeded', field: 'maxProjectsPerClient' },
      });
    }
    // Counted by quota name, never by client (metrics QuotaRefusals, docs/design.md).
    const exposed = await metrics.registry.getSingleMetricAsString('berth_quota_refusals_total');
    expect(exposed).toContain(
      'berth_quota_refusals_total{quota="maxProjectsPerClient",service="discovery"} 15',
    );
    expect(exposed).not.toContain(client);
    const again = await call('POST', '/v1/containers/discover', admin, {
      clientId: client,
      projectId: created[0]?.json<{ container: { projectId: string } }>().container.projectId,
      userId: 'bob',
    });
    expect(again.statusCode).toBe(201);
  });

  it("refuses a user's (N+1)th live container, and counts it again once one is final", async () => {
    // Arrange
    const client = `q-${randomUUID().slice(0, 8)}`;
    await call('PUT', `/v1/policies/${client}`, admin, { maxLiveContainersPerUser: 2 });
    const discover = (projectId: string) =>
      call('POST', '/v1/containers/discover', admin, {
        clientId: client,
        projectId,
        userId: 'ann',
      });
    const first = await discover('a');
    await discover('b');

    // Act
    const third = await discover('c');
    const { generation } = first.json<{ container: { generation: number } }>().container;
    await deps.runtime.stopTask(
      first.json<{ container: { taskArn: string } }>().container.taskArn,
      'test',
    );
    const failed = await new UseCases({
      ...deps,
      policies: new DynamoStateStore({ client: dynamodb, ...names }),
    }).containers.fail(`${client}.a.ann`, generation, { kind: 'crashed', detail: 'test' });
    const fourth = await discover('c');

    // Assess
    expect(third.statusCode).toBe(429);
    expect(third.json()).toMatchObject({
      error: { code: 'capacity_exceeded', field: 'maxLiveContainersPerUser' },
    });
    expect(failed?.status).toBe('failed');
    expect(fourth.statusCode).toBe(201);
    expect(
      (await metrics.registry.getSingleMetric('berth_quota_refusals_total')?.get())?.values,
    ).toEqual([{ labels: { quota: 'maxLiveContainersPerUser' }, value: 1 }]);
  });

  it("repairs a counter left high by a record deleted by hand in the reaper's sweep: the user may start again", async () => {
    // Arrange: quota 2; one of the user's two counted records deleted by hand (no release).
    const client = `q-${randomUUID().slice(0, 8)}`;
    await call('PUT', `/v1/policies/${client}`, admin, { maxLiveContainersPerUser: 2 });
    const discover = (projectId: string) =>
      call('POST', '/v1/containers/discover', admin, {
        clientId: client,
        projectId,
        userId: 'ann',
      });
    expect((await discover('a')).statusCode).toBe(201);
    expect((await discover('b')).statusCode).toBe(201);
    await dynamodb.send(
      new DeleteItemCommand({
        TableName: names.containerTable,
        Key: { containerId: { S: `${client}.a.ann` } },
      }),
    );
    const store = new DynamoStateStore({ client: dynamodb, ...names });
    // A sweep interval of 0: every counter changed before the sweep is due for its recount.
    const reaper = new UseCases({
      ...deps,
      settings: { ...deps.settings, sweepIntervalMs: 0 },
      policies: store,
    }).reaper;

    // Act
    const refused = await discover('c');
    const report = await reaper.sweep();
    const after = await discover('c');

    // Assess
    expect(refused.statusCode).toBe(429);
    expect(report.quotaCountersRepaired).toBeGreaterThanOrEqual(1);
    expect(after.statusCode).toBe(201);
  });

  it("counts a warm-pool claim: a user at its quota is refused without taking a member, and the claimed container's stop releases it", async () => {
    // Arrange: a pool of two free members and a per-user quota of 1.
    const client = `q-${randomUUID().slice(0, 8)}`;
    await call('PUT', `/v1/policies/${client}`, admin, { maxLiveContainersPerUser: 1 });
    const store = new DynamoStateStore({ client: dynamodb, ...names });
    const taskDefinition = 'berth-workspace';
    const now = new Date().toISOString();
    for (const slot of [0, 1]) {
      await store.writePool({
        slots: [{ record: { slot, generation: 1, version: 1 }, expectVersion: null }],
        members: [
          {
            record: {
              ...newPoolMember(slot, 1, now),
              state: 'free',
              taskArn: `pool-task-${suffix}-${slot}`,
              controlQueueUrl: `http://queues/pool-${suffix}-${slot}-ctl`,
              taskDefinition,
              readyAt: now,
            },
            expectVersion: null,
          },
        ],
      });
    }
    const pool: PoolDeps = {
      size: 2,
      maxAgeMs: 3_600_000,
      store,
      queues: {
        createControl: (slot, generation) =>
          Promise.resolve(`http://queues/pool-${suffix}-${slot}-${generation}-ctl`),
        deleteControl: () => Promise.resolve(),
        send: () => Promise.resolve(),
      },
      runtime: {
        taskDefinition,
        startPoolMember: () => Promise.reject(new Error('no pool tick in this test')),
      },
    };
    const useCases = new UseCases({ ...deps, metrics: metrics.core, policies: store, pool });
    const pooled = await buildDiscoveryApp({
      useCases,
      store,
      publisher: deps.publisher,
      authSecret: SECRET,
      cacheTtlMs: 0,
      rateLimitPerMinute: 0,
      // The HTTP metrics of a second app in its own registry; the core's are the suite's.
      registry: new Registry(),
    });
    const discover = (projectId: string) =>
      pooled.inject({
        method: 'POST',
        url: '/v1/containers/discover',
        headers: { authorization: `Bearer ${admin}` },
        payload: { clientId: client, projectId, userId: 'ann' },
      });
    const freeMembers = async () =>
      (await store.readPool(2)).filter(({ member }) => member?.state === 'free').length;

    try {
      // Act
      const first = await discover('a');
      const second = await discover('b');
      const freeAfterRefusal = await freeMembers();
      const { containerId, generation } = first.json<{
        container: { containerId: string; generation: number };
      }>().container;
      await useCases.containers.stop(containerId, stopReason('manual'));
      const stopped = await useCases.containers.markStopped(
        containerId,
        generation,
        stopReason('manual'),
      );
      const third = await discover('b');

      // Assess
      expect(first.statusCode).toBe(201);
      expect(first.json()).toMatchObject({ container: { fromPool: true } });
      expect(await store.getContainer(containerId)).toMatchObject({ status: 'stopped' });
      expect(second.statusCode).toBe(429);
      expect(second.json()).toMatchObject({
        error: { code: 'capacity_exceeded', field: 'maxLiveContainersPerUser' },
      });
      expect(freeAfterRefusal).toBe(1);
      // A claim refused by a quota is counted like a cold start's refusal.
      expect(
        (await metrics.registry.getSingleMetric('berth_quota_refusals_total')?.get())?.values,
      ).toEqual([{ labels: { quota: 'maxLiveContainersPerUser' }, value: 1 }]);
      expect(stopped?.status).toBe('stopped');
      expect(third.statusCode).toBe(201);
      expect(third.json()).toMatchObject({ container: { fromPool: true } });
      expect(await freeMembers()).toBe(0);
    } finally {
      await pooled.close();
    }
  });
});
