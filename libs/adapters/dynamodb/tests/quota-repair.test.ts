import { DynamoDBDocumentClient, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { QuotaCharge } from '@berth/domain';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { DynamoStateStore, type TableNames } from '../src/index.ts';
import { containerFixture, destroyClients, newClient, storeWithTables } from './helpers.ts';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';

afterAll(destroyClients);

let store: DynamoStateStore;
let client: DynamoDBClient;
let names: TableNames;
let documents: DynamoDBDocumentClient;

/** Every counter changed before this is due: the test does not wait out a sweep interval. */
const LATER = '2999-01-01T00:00:00.000Z';

beforeAll(async () => {
  ({ store, client, names } = await storeWithTables('quota-repair'));
  documents = DynamoDBDocumentClient.from(newClient());
});

const charge = (clientId: string, userId: string): QuotaCharge => ({
  clientId,
  userId,
  projectId: 'site',
  maxLiveContainersPerUser: 10,
  maxLiveContainersPerClient: 10,
  newProjectLimit: null,
  newProject: false,
});

/** A counted live generation, written with its charge, as ContainerRecords.createGeneration does. */
async function startCounted(on: DynamoStateStore, clientId: string, userId: string) {
  const record = containerFixture({ clientId, projectId: 'site', userId }, 1, {
    status: 'running',
    quotaCounted: true,
  });
  await on.write({
    containers: [{ record, expect: { kind: 'new-generation', previousGeneration: null } }],
    quota: { charge: charge(clientId, userId) },
  });
}

async function counter(key: string) {
  return (
    await documents.send(
      new GetCommand({
        TableName: names.containerTable,
        Key: { containerId: key },
        ConsistentRead: true,
      }),
    )
  ).Item;
}

/** What an operator's hand edit (or a lost release) leaves behind: a count too high. */
async function raiseByHand(key: string, live: number) {
  await documents.send(
    new UpdateCommand({
      TableName: names.containerTable,
      Key: { containerId: key },
      UpdateExpression: 'SET live = :live',
      ExpressionAttributeValues: { ':live': live },
    }),
  );
}

describe('quota counter repair', () => {
  it('recounts a counter raised by hand from the live counted generations, and only the due ones', async () => {
    // Prepare
    await startCounted(store, 'drift', 'ann');
    await startCounted(store, 'drift', 'bob');
    await raiseByHand('~quota#drift', 7);
    await raiseByHand('~quota#drift#user#ann', 4);

    // Act
    const repairs = await store.repairQuotaCounters(LATER, 100);
    const again = await store.repairQuotaCounters(LATER, 100);

    // Assess
    expect(repairs).toEqual(
      expect.arrayContaining([
        { clientId: 'drift', from: 7, to: 2 },
        { clientId: 'drift', userId: 'ann', from: 4, to: 1 },
      ]),
    );
    expect(repairs.filter((repair) => repair.clientId === 'drift')).toHaveLength(2);
    expect(await counter('~quota#drift')).toMatchObject({ live: 2 });
    expect(await counter('~quota#drift#user#ann')).toMatchObject({ live: 1 });
    expect(await counter('~quota#drift#user#bob')).toMatchObject({ live: 1 });
    // Checked: no longer in the due index until its next change.
    expect((await counter('~quota#drift'))?.['dueKey']).toBeUndefined();
    expect(again.filter((repair) => repair.clientId === 'drift')).toEqual([]);
  });

  it('does not lose a generation started during the recount: its conditional write loses and retries', async () => {
    // Prepare: one counted generation, the counter raised by hand; a second store (another
    // process) starts a generation of the same client right before the repair writes.
    await startCounted(store, 'racing', 'ann');
    await raiseByHand('~quota#racing', 6);
    const other = new DynamoStateStore({ client: newClient(), ...names });
    let interleaved = 0;
    client.middlewareStack.add(
      (next) => async (args) => {
        const input = args.input as { ConditionExpression?: string; Key?: unknown };
        if (
          interleaved === 0 &&
          input.ConditionExpression?.includes('changedAt = :changedAt') &&
          JSON.stringify(input.Key).includes('"~quota#racing"')
        ) {
          interleaved += 1;
          await startCounted(other, 'racing', 'bob');
        }
        return next(args);
      },
      { step: 'initialize', name: 'interleaveAStart' },
    );

    // Act
    let repairs;
    try {
      repairs = await store.repairQuotaCounters(LATER, 100);
    } finally {
      client.middlewareStack.remove('interleaveAStart');
    }

    // Assess: the first write (1, counted before the start) lost; the retry counted both.
    expect(interleaved).toBe(1);
    expect(repairs.filter((repair) => repair.clientId === 'racing')).toEqual([
      { clientId: 'racing', from: 7, to: 2 },
    ]);
    expect(await counter('~quota#racing')).toMatchObject({ live: 2 });
  });

  it('leaves a counter changed after the cutoff due, from its last change, so busy counters do not hold the page', async () => {
    // Prepare: a counter raised by hand and marked due long ago, then changed by a start.
    await startCounted(store, 'busy', 'ann');
    await raiseByHand('~quota#busy', 5);
    await documents.send(
      new UpdateCommand({
        TableName: names.containerTable,
        Key: { containerId: '~quota#busy' },
        UpdateExpression: 'SET dueAt = :epoch',
        ExpressionAttributeValues: { ':epoch': '1970-01-01T00:00:00.000Z' },
      }),
    );
    const { changedAt } = (await counter('~quota#busy')) as { changedAt: string };
    const cutoff = new Date(Date.parse(changedAt) - 1).toISOString();

    // Act
    const repairs = await store.repairQuotaCounters(cutoff, 100);

    // Assess: not recounted yet (its start may not be in clientId-index), due from its change.
    expect(repairs.filter((repair) => repair.clientId === 'busy')).toEqual([]);
    expect(await counter('~quota#busy')).toMatchObject({
      live: 5,
      dueKey: 'quota',
      dueAt: changedAt,
    });
    expect(await store.repairQuotaCounters(LATER, 100)).toContainEqual({
      clientId: 'busy',
      from: 5,
      to: 1,
    });
  });

  it('makes a counter that refused a start due at once, so a drifted full quota is recounted', async () => {
    // Prepare: a per-user quota of 1 whose counter says 1 while nothing of that user is live.
    const full = { ...charge('refused', 'ann'), maxLiveContainersPerUser: 1 };
    await startCounted(store, 'refused', 'ann');
    await store.repairQuotaCounters(LATER, 100); // checked: not due any more
    await documents.send(
      new UpdateCommand({
        TableName: names.containerTable,
        Key: { containerId: 'refused.site.ann' },
        UpdateExpression: 'SET #status = :failed',
        ExpressionAttributeNames: { '#status': 'status' },
        ExpressionAttributeValues: { ':failed': 'failed' },
      }),
    );
    const next = containerFixture({ clientId: 'refused', projectId: 'next', userId: 'ann' }, 1, {
      quotaCounted: true,
    });
    const start = () =>
      store.write({
        containers: [
          { record: next, expect: { kind: 'new-generation', previousGeneration: null } },
        ],
        quota: { charge: { ...full, projectId: 'next' } },
      });

    // Act
    const refused = await start().then(
      () => undefined,
      (error: unknown) => error,
    );
    const repairs = await store.repairQuotaCounters(new Date().toISOString(), 100);
    await start();

    // Assess
    expect((refused as Error).name).toBe('CapacityExceededError');
    expect(repairs).toContainEqual({ clientId: 'refused', userId: 'ann', from: 1, to: 0 });
    expect(await counter('~quota#refused#user#ann')).toMatchObject({ live: 1 });
  });
});
