import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { ContainerRecord, SessionRecord } from '@berth/domain';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ConsumedCapacityDetail, DynamoStateStore, TableNames } from '../src/index.ts';
import {
  at,
  containerFixture,
  destroyClients,
  sessionFixture,
  storeWithTables,
} from './helpers.ts';

afterAll(destroyClients);

async function createAll(store: DynamoStateStore, records: ContainerRecord[]): Promise<void> {
  await Promise.all(
    records.map((record) =>
      store.write({
        containers: [{ record, expect: { kind: 'new-generation', previousGeneration: null } }],
      }),
    ),
  );
}

async function update(
  store: DynamoStateStore,
  record: ContainerRecord,
  changes: Partial<ContainerRecord>,
) {
  const next = { ...record, ...changes, version: record.version + 1 };
  await store.write({
    containers: [{ record: next, expect: { kind: 'version', version: record.version } }],
  });
  return next;
}

async function createSessions(store: DynamoStateStore, sessions: SessionRecord[]): Promise<void> {
  await Promise.all(
    sessions.map((record) => store.write({ sessions: [{ record, expect: { kind: 'absent' } }] })),
  );
}

const ids = (records: ReadonlyArray<{ containerId: string | null }>) =>
  records.map((r) => r.containerId);

describe('idle-index', () => {
  let store: DynamoStateStore;
  let names: TableNames;
  let documents: DynamoDBDocumentClient;

  beforeAll(async () => {
    const setup = await storeWithTables('idle');
    ({ store, names } = setup);
    documents = DynamoDBDocumentClient.from(setup.client);
  });

  const key = (userId: string) => ({ clientId: 'acme', projectId: 'site', userId });

  it('holds exactly the running containers without sessions, oldest idleSince first, and drops them when they stop qualifying', async () => {
    // Prepare
    const idleOld = containerFixture(key('idle-old'), 1, { status: 'running', idleSince: at(0) });
    const idleNew = containerFixture(key('idle-new'), 1, { status: 'running', idleSince: at(30) });
    const busy = containerFixture(key('busy'), 1, {
      status: 'running',
      sessions: ['s1'],
      idleSince: null,
    });
    const starting = containerFixture(key('starting'), 1, { status: 'starting', idleSince: at(0) });
    const terminating = containerFixture(key('terminating'), 1, {
      status: 'terminating',
      idleSince: at(0),
    });
    const stopped = containerFixture(key('stopped'), 1, {
      status: 'stopped',
      idleSince: at(0),
      stoppedAt: at(1),
    });
    await createAll(store, [idleOld, idleNew, busy, starting, terminating, stopped]);

    // Act + Assess: only the idle ones, bounded by the time given.
    expect(ids(await store.listIdleContainers(at(10), 10))).toEqual([idleOld.containerId]);
    expect(ids(await store.listIdleContainers(at(30), 10))).toEqual([
      idleOld.containerId,
      idleNew.containerId,
    ]);
    expect(ids(await store.listIdleContainers(at(60), 1))).toEqual([idleOld.containerId]);
    expect(await store.listIdleContainers(at(60), 10)).toStrictEqual([idleOld, idleNew]);

    // A session joins the old one: it leaves the index.
    await update(store, idleOld, { sessions: ['s2'], idleSince: null });
    const { Item } = await documents.send(
      new GetCommand({
        TableName: names.containerTable,
        Key: { containerId: idleOld.containerId },
      }),
    );
    expect(Item).not.toHaveProperty('idleKey');
    expect(ids(await store.listIdleContainers(at(60), 10))).toEqual([idleNew.containerId]);

    // The new one starts terminating: it leaves too.
    await update(store, idleNew, { status: 'terminating', terminatingSince: at(61) });
    expect(await store.listIdleContainers(at(60), 10)).toEqual([]);

    // The busy one loses its last session: it enters.
    const nowIdle = await update(store, busy, { sessions: [], idleSince: at(40) });
    expect(await store.listIdleContainers(at(60), 10)).toStrictEqual([nowIdle]);
  });
});

describe('active-index', () => {
  let store: DynamoStateStore;

  beforeAll(async () => {
    ({ store } = await storeWithTables('active'));
  });

  it('holds only active sessions, oldest activity first, and drops released ones', async () => {
    // Prepare
    const quiet = sessionFixture('quiet', {
      containerId: 'a.b.c',
      generation: 1,
      lastActivityAt: at(0),
    });
    const chatty = sessionFixture('chatty', {
      containerId: 'a.b.c',
      generation: 1,
      lastActivityAt: at(30),
    });
    const gone = sessionFixture('gone', {
      status: 'released',
      lastActivityAt: at(0),
      releasedAt: at(1),
    });
    const expired = sessionFixture('expired', {
      status: 'expired',
      lastActivityAt: at(0),
      releasedAt: at(2),
    });
    await createSessions(store, [quiet, chatty, gone, expired]);

    // Act + Assess
    expect(await store.listStaleSessions(at(10), 10)).toStrictEqual([quiet]);
    expect(await store.listStaleSessions(at(60), 10)).toStrictEqual([quiet, chatty]);
    expect(await store.listStaleSessions(at(60), 1)).toStrictEqual([quiet]);

    const released = {
      ...quiet,
      status: 'released' as const,
      releasedAt: at(40),
      releaseReason: 'expired',
    };
    await store.write({
      sessions: [{ record: released, expect: { kind: 'status', status: 'active' } }],
    });
    expect(await store.listStaleSessions(at(60), 10)).toStrictEqual([chatty]);

    const touched = { ...chatty, lastActivityAt: at(90) };
    await store.write({
      sessions: [{ record: touched, expect: { kind: 'status', status: 'active' } }],
    });
    expect(await store.listStaleSessions(at(60), 10)).toEqual([]);
    expect(await store.listStaleSessions(at(90), 10)).toStrictEqual([touched]);
  });
});

describe('status-index and container-index', () => {
  let store: DynamoStateStore;
  const units: number[] = [];
  const reads: ConsumedCapacityDetail[] = [];

  beforeAll(async () => {
    ({ store } = await storeWithTables('status', {
      onConsumedCapacity: (consumed, detail) => {
        units.push(consumed);
        reads.push(detail);
      },
    }));
  });

  it('lists containers by status up to the limit', async () => {
    // Prepare
    const running = Array.from({ length: 5 }, (_, i) =>
      containerFixture({ clientId: 'acme', projectId: 'site', userId: `run-${i}` }, 1, {
        status: 'running',
      }),
    );
    const stopped = Array.from({ length: 2 }, (_, i) =>
      containerFixture({ clientId: 'acme', projectId: 'site', userId: `stop-${i}` }, 1, {
        status: 'stopped',
        stoppedAt: at(1),
      }),
    );
    await createAll(store, [...running, ...stopped]);

    // Act
    const three = await store.listContainersByStatus('running', 3);
    const all = await store.listContainersByStatus('running', 100);
    const final = await store.listContainersByStatus('stopped', 100);

    // Assess
    expect(three).toHaveLength(3);
    expect(ids(all).sort()).toEqual(ids(running).sort());
    expect(all).toEqual(expect.arrayContaining(running));
    expect(ids(final).sort()).toEqual(ids(stopped).sort());
    expect(await store.listContainersByStatus('failed', 10)).toEqual([]);
  });

  it('counts containers by status and running ones by session count, across pages', async () => {
    // Prepare: four running containers of ~330 KB each cannot come back in one 1 MB page.
    const bulky = (prefix: string, count: number): string[] =>
      Array.from({ length: count }, (_, i) => `${prefix}-${i}-${'s'.repeat(33 * 1024)}`);
    const keyOf = (userId: string) => ({ clientId: 'gauge', projectId: 'site', userId });
    const running = [
      containerFixture(keyOf('r0'), 1, { status: 'running', sessions: bulky('a', 10) }),
      containerFixture(keyOf('r1'), 1, { status: 'running', sessions: bulky('b', 10) }),
      containerFixture(keyOf('r2'), 1, { status: 'running', sessions: bulky('c', 10) }),
      containerFixture(keyOf('r3'), 1, { status: 'running', sessions: bulky('d', 3) }),
      containerFixture(keyOf('r4'), 1, { status: 'running', sessions: [] }),
    ];
    const starting = [0, 1].map((i) => containerFixture(keyOf(`s${i}`), 1, { status: 'starting' }));
    const before = await store.containerGauges(['running', 'starting', 'terminating']);
    await createAll(store, [...running, ...starting]);

    // Act
    const gauges = await store.containerGauges(['running', 'starting', 'terminating']);

    // Assess: the difference is what this test wrote (other tests share the table).
    const delta = (status: 'running' | 'starting' | 'terminating') =>
      (gauges.byStatus[status] ?? 0) - (before.byStatus[status] ?? 0);
    expect([delta('running'), delta('starting'), delta('terminating')]).toEqual([5, 2, 0]);
    const added = (sessions: number) =>
      (gauges.runningBySessionCount.get(sessions) ?? 0) -
      (before.runningBySessionCount.get(sessions) ?? 0);
    expect([added(10), added(3), added(0)]).toEqual([3, 1, 1]);
    expect(Object.keys(gauges.byStatus).sort()).toEqual(['running', 'starting', 'terminating']);
  });

  it('lists every session of a container, across pages of the 1 MB query limit', async () => {
    // Prepare: eight ~300 KB sessions cannot come back in one page.
    const bulky = 'x'.repeat(300 * 1024);
    const sessions = Array.from({ length: 8 }, (_, i) =>
      sessionFixture(`big-${i}`, {
        containerId: 'acme.site.big',
        generation: 1,
        worktreePath: `/w/${i}/${bulky}`,
      }),
    );
    const other = sessionFixture('elsewhere', { containerId: 'acme.site.other', generation: 1 });
    await createSessions(store, [...sessions, other]);
    reads.length = 0;

    // Act
    const listed = await store.listSessionsByContainer('acme.site.big');

    // Assess
    expect(listed).toStrictEqual(sessions);
    expect(
      reads.filter((read) => read.operation === 'query' && read.index === 'container-index').length,
    ).toBeGreaterThan(1);
    expect(await store.listSessionsByContainer('acme.site.nobody')).toEqual([]);
  });

  it('reports the capacity its reads consume', async () => {
    // Prepare
    units.length = 0;
    const before = store.consumedCapacityUnits;

    // Act
    await store.listContainersByStatus('running', 100);

    // Assess
    expect(units.length).toBeGreaterThan(0);
    const total = units.reduce((sum, value) => sum + value, 0);
    expect(total).toBeGreaterThan(0);
    expect(store.consumedCapacityUnits - before).toBeCloseTo(total);
  });
});
