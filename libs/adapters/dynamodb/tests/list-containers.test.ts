import { InvalidArgumentError, type ContainerFilter, type ContainerRecord } from '@berth/domain';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ConsumedCapacityDetail, DynamoStateStore } from '../src/index.ts';
import { at, containerFixture, destroyClients, storeWithTables } from './helpers.ts';

afterAll(destroyClients);

async function createAll(store: DynamoStateStore, records: ContainerRecord[]): Promise<void> {
  for (let start = 0; start < records.length; start += 25) {
    await Promise.all(
      records.slice(start, start + 25).map((record) =>
        store.write({
          containers: [{ record, expect: { kind: 'new-generation', previousGeneration: null } }],
        }),
      ),
    );
  }
}

/** Follows nextCursor to the end, checking that no page is longer than asked. */
async function listAll(
  store: DynamoStateStore,
  filter: ContainerFilter,
  limit: number,
): Promise<{ items: ContainerRecord[]; pageSizes: number[] }> {
  const items: ContainerRecord[] = [];
  const pageSizes: number[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 200; pages += 1) {
    const page = await store.listContainers(filter, limit, cursor);
    expect(page.items.length).toBeLessThanOrEqual(limit);
    items.push(...page.items);
    pageSizes.push(page.items.length);
    if (page.nextCursor === null) return { items, pageSizes };
    expect(page.nextCursor).toMatch(/^[A-Za-z0-9_-]+$/);
    cursor = page.nextCursor;
  }
  throw new Error('pagination did not end');
}

const ids = (records: ContainerRecord[]) => records.map((record) => record.containerId).sort();

describe('listContainers', () => {
  let store: DynamoStateStore;
  const records: ContainerRecord[] = [];
  const reads: ConsumedCapacityDetail[] = [];

  beforeAll(async () => {
    ({ store } = await storeWithTables('list', {
      onConsumedCapacity: (_units, detail) => reads.push(detail),
    }));
    for (const clientId of ['acme', 'globex']) {
      for (const projectId of ['site', 'app']) {
        for (const userId of ['u1', 'u2', 'u3']) {
          records.push(
            containerFixture({ clientId, projectId, userId }, 1, {
              status: userId === 'u3' ? 'stopped' : 'running',
              stoppedAt: userId === 'u3' ? at(5) : null,
              sessions: userId === 'u2' ? ['s1', 's2'] : [],
            }),
          );
        }
      }
    }
    // A client whose name is a prefix of another must not leak into its listing.
    records.push(
      containerFixture({ clientId: 'acme-labs', projectId: 'site', userId: 'u1' }, 1, {
        status: 'running',
      }),
    );
    await createAll(store, records);
  });

  const filters: ContainerFilter[] = [
    {},
    { userId: 'u1' },
    { userId: 'u1', clientId: 'acme' },
    { userId: 'u2', projectId: 'app' },
    { clientId: 'acme', projectId: 'site' },
    { clientId: 'acme', projectId: 'site', userId: 'u2' },
    { clientId: 'acme', projectId: 'site', status: 'running' },
    { status: 'stopped' },
    { status: 'running', clientId: 'globex' },
    { status: 'running', projectId: 'app' },
    { clientId: 'acme' },
    { projectId: 'app' },
    { userId: 'u3', status: 'running' },
    { clientId: 'nobody' },
  ];

  const matching = (filter: ContainerFilter) =>
    records.filter(
      (record) =>
        (filter.clientId === undefined || record.clientId === filter.clientId) &&
        (filter.projectId === undefined || record.projectId === filter.projectId) &&
        (filter.userId === undefined || record.userId === filter.userId) &&
        (filter.status === undefined || record.status === filter.status),
    );

  it.each(
    filters.flatMap((filter) =>
      [1, 2, 5, 100].map((limit) => [JSON.stringify(filter), limit, filter] as const),
    ),
  )('lists %s in pages of %d, each container once', async (_label, limit, filter) => {
    // Act
    const { items, pageSizes } = await listAll(store, filter, limit);

    // Assess
    const expected = matching(filter);
    expect(ids(items)).toEqual(ids(expected));
    expect(items).toEqual(expect.arrayContaining(expected));
    // Full pages until the end, even where a filter drops items DynamoDB already counted.
    const full = pageSizes.slice(0, -1);
    expect(full.every((size) => size === limit)).toBe(true);
  });

  it.each([
    [{ userId: 'u1' }, 'query', 'userId-index'],
    [{ userId: 'u1', clientId: 'acme', status: 'running' }, 'query', 'userId-index'],
    [{ clientId: 'acme', projectId: 'site' }, 'query', 'clientProject-index'],
    [{ clientId: 'acme', projectId: 'site', userId: 'u1' }, 'query', 'clientProject-index'],
    [{ status: 'running', clientId: 'acme' }, 'query', 'status-index'],
    [{ clientId: 'acme' }, 'query', 'clientId-index'],
    [{ clientId: 'acme', status: 'stopped' }, 'query', 'status-index'],
    [{}, 'query', 'status-index'],
    [{ projectId: 'app' }, 'query', 'status-index'],
  ] as const)('answers %j with a %s of %s', async (filter, operation, index) => {
    reads.length = 0;
    await store.listContainers(filter, 10);
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.every((read) => read.operation === operation && read.index === index)).toBe(true);
  });

  it('lists in key order on an index', async () => {
    const page = await store.listContainers({ userId: 'u1' }, 100);
    const order = page.items.map((record) => record.containerId);
    expect(order).toEqual([...order].sort());
  });

  it('refuses a cursor that does not decode', async () => {
    for (const cursor of [
      'not a cursor!',
      '',
      'e30',
      Buffer.from('[1,2]').toString('base64url'),
      'bm90IGpzb24',
    ]) {
      await expect(store.listContainers({ userId: 'u1' }, 1, cursor)).rejects.toMatchObject({
        code: 'invalid_argument',
        field: 'cursor',
      });
    }
  });

  it('refuses a cursor from another query', async () => {
    // Prepare
    const first = await store.listContainers({ userId: 'u1' }, 1);
    expect(first.nextCursor).not.toBeNull();

    // Act + Assess
    for (const filter of [
      { userId: 'u2' },
      { status: 'running' as const },
      {},
      { clientId: 'acme' },
    ]) {
      const attempt = store.listContainers(filter, 1, first.nextCursor!);
      await expect(attempt).rejects.toBeInstanceOf(InvalidArgumentError);
      await expect(attempt).rejects.toMatchObject({ field: 'cursor' });
    }
  });

  it('refuses a cursor whose key was tampered with', async () => {
    // Prepare
    const first = await store.listContainers({ userId: 'u1' }, 1);
    const decoded = JSON.parse(Buffer.from(first.nextCursor!, 'base64url').toString('utf8')) as {
      q: string;
      k: Record<string, string>;
    };
    const forged = (k: Record<string, unknown>) =>
      Buffer.from(JSON.stringify({ q: decoded.q, k }), 'utf8').toString('base64url');

    // Act + Assess
    for (const key of [
      { ...decoded.k, userId: 'u2' },
      { containerId: decoded.k.containerId },
      { ...decoded.k, extra: 'x' },
      { ...decoded.k, containerId: 7 },
      { ...decoded.k, containerId: '' },
    ]) {
      await expect(store.listContainers({ userId: 'u1' }, 1, forged(key))).rejects.toMatchObject({
        code: 'invalid_argument',
        field: 'cursor',
      });
    }
  });

  it('refuses a limit that is not a positive integer', async () => {
    for (const limit of [0, -1, 1.5, Number.NaN]) {
      await expect(store.listContainers({}, limit)).rejects.toMatchObject({
        code: 'invalid_argument',
        field: 'limit',
      });
    }
  });
});

describe('listContainers past the first page DynamoDB reads', () => {
  let store: DynamoStateStore;
  const rare: ContainerRecord[] = [];

  beforeAll(async () => {
    ({ store } = await storeWithTables('list-sparse'));
    const bulk = Array.from({ length: 240 }, (_, i) =>
      containerFixture({ clientId: 'bulk', projectId: 'p', userId: `user-${i}` }),
    );
    rare.push(
      ...['a', 'b', 'c'].map((userId) =>
        containerFixture({ clientId: 'rare', projectId: 'rare-project', userId }),
      ),
    );
    await createAll(store, [...bulk, ...rare]);
  });

  it('keeps reading until it has the limit or reaches the end', async () => {
    // A query of status-index filtered on projectId: DynamoDB evaluates pages of items
    // before filtering.
    const page = await store.listContainers({ projectId: 'rare-project' }, 3);
    expect(ids(page.items)).toEqual(ids(rare));

    const { items, pageSizes } = await listAll(store, { projectId: 'rare-project' }, 2);
    expect(ids(items)).toEqual(ids(rare));
    expect(pageSizes[0]).toBe(2);
  });

  it("reads one client's containers from its own index partition", async () => {
    const { items } = await listAll(store, { clientId: 'rare' }, 2);
    expect(ids(items)).toEqual(ids(rare));
  });

  it('pages an unfiltered listing of many items without losing or repeating one', async () => {
    const { items } = await listAll(store, {}, 37);
    expect(items).toHaveLength(243);
    expect(new Set(items.map((record) => record.containerId)).size).toBe(243);
  });
});
