import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import { StaleWriteError, type ContainerRecord } from '@berth/domain';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { DynamoStateStore, TableNames } from '../src/index.ts';
import {
  at,
  containerFixture,
  destroyClients,
  sessionFixture,
  storeWithTables,
} from './helpers.ts';

afterAll(destroyClients);

let store: DynamoStateStore;
let names: TableNames;
let documents: DynamoDBDocumentClient;

beforeAll(async () => {
  const setup = await storeWithTables('records');
  store = setup.store;
  names = setup.names;
  documents = DynamoDBDocumentClient.from(setup.client);
});

async function rawContainer(containerId: string): Promise<Record<string, unknown> | undefined> {
  const { Item } = await documents.send(
    new GetCommand({ TableName: names.containerTable, Key: { containerId } }),
  );
  return Item;
}

async function rawSession(sessionId: string): Promise<Record<string, unknown> | undefined> {
  const { Item } = await documents.send(
    new GetCommand({ TableName: names.sessionTable, Key: { sessionId } }),
  );
  return Item;
}

let counter = 0;
function uniqueKey() {
  counter += 1;
  return { clientId: 'acme', projectId: 'site', userId: `user-${counter}` };
}

async function create(record: ContainerRecord): Promise<void> {
  await store.write({
    containers: [{ record, expect: { kind: 'new-generation', previousGeneration: null } }],
  });
}

describe('records round trip', () => {
  it('keeps a fresh container exactly, nulls included, and stores nulls as absent attributes', async () => {
    // Prepare
    const record = containerFixture(uniqueKey());

    // Act
    await create(record);

    // Assess
    expect(await store.getContainer(record.containerId)).toStrictEqual(record);
    const item = await rawContainer(record.containerId);
    expect(item).toBeDefined();
    for (const field of [
      'taskArn',
      'endpoint',
      'startedAt',
      'stoppedAt',
      'stopReason',
      'terminatingSince',
    ]) {
      expect(item).not.toHaveProperty(field);
    }
    expect(item).toMatchObject({ clientProject: 'acme#site', sessions: [] });
    // A starting container is not idle, whatever its idleSince says.
    expect(item).not.toHaveProperty('idleKey');
    expect(item).not.toHaveProperty('expiresAt');
  });

  it('keeps every field of a fully populated container, sessions in order, without derived attributes', async () => {
    // Prepare
    const record = containerFixture(uniqueKey(), 3, {
      status: 'terminating',
      sessions: ['s-z', 's-a', 's-m'],
      taskArn: 'arn:aws:ecs:us-east-1:000000000000:task/berth/abc',
      endpoint: '10.0.0.7:8080',
      inputQueueUrl: 'http://sqs/000000000000/in',
      outputQueueUrl: 'http://sqs/000000000000/out',
      workspacePath: '/workspace',
      startedAt: at(1),
      lastActivityAt: at(5),
      idleSince: null,
      terminatingSince: at(6),
      stopReason: 'manual:operator',
      version: 7,
      devServer: { state: 'up', port: 3000, since: at(4), restarts: 2, sequence: 5 },
    });

    // Act
    await create(record);
    const read = await store.getContainer(record.containerId);

    // Assess
    expect(read).toStrictEqual(record);
    expect(Object.keys(read!).sort()).toEqual(Object.keys(record).sort());
  });

  it('keeps a session tombstone with nulls and an active session with every field', async () => {
    // Prepare
    const tombstone = sessionFixture('tomb-1', {
      status: 'released',
      assignedAt: null,
      lastActivityAt: null,
      releasedAt: at(2),
      releaseReason: 'released',
    });
    const active = sessionFixture('active-1', {
      containerId: 'acme.site.someone',
      generation: 2,
      threadId: 'thread:1',
      inputQueueUrl: 'http://sqs/in',
      outputQueueUrl: 'http://sqs/out',
      worktreePath: '/workspace/.worktrees/thread-1',
    });

    // Act
    await store.write({
      sessions: [
        { record: tombstone, expect: { kind: 'absent' } },
        { record: active, expect: { kind: 'absent' } },
      ],
    });

    // Assess
    expect(await store.getSession('tomb-1')).toStrictEqual(tombstone);
    expect(await store.getSession('active-1')).toStrictEqual(active);
    const tombItem = await rawSession('tomb-1');
    expect(tombItem).not.toHaveProperty('containerId');
    expect(tombItem).not.toHaveProperty('activeKey');
    expect(tombItem?.expiresAt).toBe(Date.parse(at(2)) / 1000 + 15 * 24 * 3600);
    const activeItem = await rawSession('active-1');
    expect(activeItem).toMatchObject({ activeKey: 'active' });
    expect(activeItem).not.toHaveProperty('expiresAt');
  });

  it('answers undefined for what is not there', async () => {
    expect(await store.getContainer('nobody.nothing.none')).toBeUndefined();
    expect(await store.getSession('never-seen')).toBeUndefined();
  });

  it('does nothing for an empty change', async () => {
    await expect(store.write({})).resolves.toBeUndefined();
    await expect(store.write({ containers: [], sessions: [] })).resolves.toBeUndefined();
  });
});

describe('container expectations', () => {
  it('creates generation 1 only where no item exists', async () => {
    // Prepare
    const record = containerFixture(uniqueKey());
    await create(record);

    // Act
    const again = create({ ...record, taskArn: 'other' });

    // Assess
    await expect(again).rejects.toBeInstanceOf(StaleWriteError);
    expect(await store.getContainer(record.containerId)).toStrictEqual(record);
  });

  it('updates under the stored version and refuses a stale one', async () => {
    // Prepare
    const record = containerFixture(uniqueKey());
    await create(record);
    const running: ContainerRecord = { ...record, status: 'running', startedAt: at(1), version: 2 };

    // Act
    await store.write({
      containers: [{ record: running, expect: { kind: 'version', version: 1 } }],
    });
    const stale = store.write({
      containers: [
        {
          record: { ...record, status: 'failed', version: 2 },
          expect: { kind: 'version', version: 1 },
        },
      ],
    });

    // Assess
    await expect(stale).rejects.toBeInstanceOf(StaleWriteError);
    expect(await store.getContainer(record.containerId)).toStrictEqual(running);
  });

  it('refuses a version update of a container that does not exist', async () => {
    const record = containerFixture(uniqueKey());
    await expect(
      store.write({ containers: [{ record, expect: { kind: 'version', version: 1 } }] }),
    ).rejects.toBeInstanceOf(StaleWriteError);
    expect(await store.getContainer(record.containerId)).toBeUndefined();
  });

  it.each(['starting', 'running', 'terminating'] as const)(
    'never replaces a %s container with a new generation',
    async (status) => {
      // Prepare
      const key = uniqueKey();
      const record = containerFixture(key, 1, { status });
      await create(record);

      // Act
      const next = store.write({
        containers: [
          {
            record: containerFixture(key, 2),
            expect: { kind: 'new-generation', previousGeneration: 1 },
          },
        ],
      });

      // Assess
      await expect(next).rejects.toBeInstanceOf(StaleWriteError);
      expect(await store.getContainer(record.containerId)).toStrictEqual(record);
    },
  );

  it.each(['stopped', 'failed'] as const)(
    'replaces a %s container with the next generation',
    async (status) => {
      // Prepare
      const key = uniqueKey();
      const old = containerFixture(key, 4, { status, stoppedAt: at(9), stopReason: 'idle' });
      await create(old);
      const next = containerFixture(key, 5, {
        createdAt: at(10),
        lastActivityAt: at(10),
        idleSince: at(10),
      });

      // Act
      await store.write({
        containers: [{ record: next, expect: { kind: 'new-generation', previousGeneration: 4 } }],
      });

      // Assess
      expect(await store.getContainer(next.containerId)).toStrictEqual(next);
      expect(await rawContainer(next.containerId)).not.toHaveProperty('expiresAt');
    },
  );

  it('refuses a new generation over a final container of another generation', async () => {
    // Prepare: two writers read generation 1; one already made generation 2 and stopped it.
    const key = uniqueKey();
    const second = containerFixture(key, 2, { status: 'stopped', stoppedAt: at(3) });
    await create(second);

    // Act
    const late = store.write({
      containers: [
        {
          record: containerFixture(key, 2),
          expect: { kind: 'new-generation', previousGeneration: 1 },
        },
      ],
    });

    // Assess
    await expect(late).rejects.toBeInstanceOf(StaleWriteError);
    expect(await store.getContainer(second.containerId)).toStrictEqual(second);
  });

  it('refuses a new generation that is not one higher, before writing anything', async () => {
    const key = uniqueKey();
    await create(containerFixture(key, 1, { status: 'stopped' }));
    await expect(
      store.write({
        containers: [
          {
            record: containerFixture(key, 3),
            expect: { kind: 'new-generation', previousGeneration: 1 },
          },
        ],
      }),
    ).rejects.toMatchObject({ code: 'invalid_argument', field: 'generation' });
  });

  it('never expires a final container: its generation must outlive it', async () => {
    const record = containerFixture(uniqueKey(), 1, {
      status: 'stopped',
      stoppedAt: at(0),
      stopReason: 'idle',
    });
    await create(record);
    const item = await rawContainer(record.containerId);
    expect(item).not.toHaveProperty('expiresAt');
    expect(await store.getContainer(record.containerId)).toStrictEqual(record);
  });
});

describe('session expectations', () => {
  it('creates an absent session once and refuses a second create', async () => {
    const session = sessionFixture('sess-absent');
    await store.write({ sessions: [{ record: session, expect: { kind: 'absent' } }] });
    await expect(
      store.write({
        sessions: [{ record: { ...session, threadId: 'x' }, expect: { kind: 'absent' } }],
      }),
    ).rejects.toBeInstanceOf(StaleWriteError);
    expect(await store.getSession('sess-absent')).toStrictEqual(session);
  });

  it('updates a session in the expected status and refuses one in another', async () => {
    // Prepare
    const session = sessionFixture('sess-status');
    await store.write({ sessions: [{ record: session, expect: { kind: 'absent' } }] });
    const released = {
      ...session,
      status: 'released' as const,
      releasedAt: at(1),
      releaseReason: 'released',
    };

    // Act
    await store.write({
      sessions: [{ record: released, expect: { kind: 'status', status: 'active' } }],
    });
    const revive = store.write({
      sessions: [{ record: session, expect: { kind: 'status', status: 'active' } }],
    });

    // Assess
    await expect(revive).rejects.toBeInstanceOf(StaleWriteError);
    expect(await store.getSession('sess-status')).toStrictEqual(released);
  });

  it('applies a status expectation only while the fields it pins are as read (null: absent)', async () => {
    // Prepare
    const session = { ...sessionFixture('sess-pinned'), lastActivityAt: at(1) };
    await store.write({ sessions: [{ record: session, expect: { kind: 'absent' } }] });
    const touched = { ...session, lastActivityAt: at(2) };
    const expired = { ...session, status: 'expired' as const, releasedAt: at(3) };

    // Act
    await store.write({
      sessions: [
        {
          record: touched,
          expect: {
            kind: 'status',
            status: 'active',
            unchanged: { lastActivityAt: at(1), releaseReason: null },
          },
        },
      ],
    });
    const onTheOldRead = store.write({
      sessions: [
        {
          record: expired,
          expect: { kind: 'status', status: 'active', unchanged: { lastActivityAt: at(1) } },
        },
      ],
    });

    // Assess
    await expect(onTheOldRead).rejects.toBeInstanceOf(StaleWriteError);
    expect(await store.getSession('sess-pinned')).toStrictEqual(touched);
  });

  it('refuses a status expectation on a session that does not exist', async () => {
    await expect(
      store.write({
        sessions: [
          { record: sessionFixture('sess-ghost'), expect: { kind: 'status', status: 'active' } },
        ],
      }),
    ).rejects.toBeInstanceOf(StaleWriteError);
    expect(await store.getSession('sess-ghost')).toBeUndefined();
  });
});

describe('transactions', () => {
  it('applies a container and its sessions together', async () => {
    // Prepare
    const record = containerFixture(uniqueKey());
    await create(record);
    const joined: ContainerRecord = {
      ...record,
      sessions: ['tx-a', 'tx-b'],
      idleSince: null,
      version: 2,
    };

    // Act
    await store.write({
      containers: [{ record: joined, expect: { kind: 'version', version: 1 } }],
      sessions: [
        {
          record: sessionFixture('tx-a', { containerId: record.containerId, generation: 1 }),
          expect: { kind: 'absent' },
        },
        {
          record: sessionFixture('tx-b', { containerId: record.containerId, generation: 1 }),
          expect: { kind: 'absent' },
        },
      ],
    });

    // Assess
    expect(await store.getContainer(record.containerId)).toStrictEqual(joined);
    expect(
      (await store.listSessionsByContainer(record.containerId)).map((s) => s.sessionId),
    ).toEqual(['tx-a', 'tx-b']);
  });

  it.each([
    ['the container version', 'container'],
    ['a session', 'session'],
  ] as const)('applies nothing when %s does not hold', async (_label, failing) => {
    // Prepare
    const record = containerFixture(uniqueKey());
    await create(record);
    const taken = sessionFixture(`tx-taken-${failing}`);
    await store.write({ sessions: [{ record: taken, expect: { kind: 'absent' } }] });
    const fresh = sessionFixture(`tx-fresh-${failing}`, {
      containerId: record.containerId,
      generation: 1,
    });

    // Act
    const attempt = store.write({
      containers: [
        {
          record: { ...record, sessions: [fresh.sessionId], version: 2 },
          expect: { kind: 'version', version: failing === 'container' ? 5 : 1 },
        },
      ],
      sessions: [
        { record: fresh, expect: { kind: 'absent' } },
        ...(failing === 'session'
          ? [{ record: { ...taken, threadId: 'changed' }, expect: { kind: 'absent' as const } }]
          : []),
      ],
    });

    // Assess
    await expect(attempt).rejects.toBeInstanceOf(StaleWriteError);
    expect(await store.getContainer(record.containerId)).toStrictEqual(record);
    expect(await store.getSession(fresh.sessionId)).toBeUndefined();
    expect(await store.getSession(taken.sessionId)).toStrictEqual(taken);
  });
});
