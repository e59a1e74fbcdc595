/**
 * The core's tests are only as good as the fake store under them: these pin down that it keeps
 * the promises of the StateStore port (and of the DynamoDB adapter) that the core relies on.
 */
import {
  InvalidArgumentError,
  StaleWriteError,
  newContainerRecord,
  type ContainerRecord,
  type SessionRecord,
} from '@berth/domain';
import { world } from './support.ts';

const T0 = '2026-01-01T00:00:00.000Z';

function container(userId: string, overrides: Partial<ContainerRecord> = {}): ContainerRecord {
  return {
    ...newContainerRecord(
      { clientId: 'acme', projectId: 'web', userId, containerId: `acme.web.${userId}` },
      1,
      T0,
    ),
    ...overrides,
  };
}

function session(sessionId: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    sessionId,
    containerId: 'acme.web.a',
    generation: 1,
    threadId: sessionId,
    status: 'active',
    inputQueueUrl: null,
    outputQueueUrl: null,
    worktreePath: null,
    assignedAt: T0,
    lastActivityAt: T0,
    releasedAt: null,
    releaseReason: null,
    ...overrides,
  };
}

describe('InMemoryStateStore.write', () => {
  it('applies nothing when one expectation fails', async () => {
    // Prepare
    const { store } = world().deps;
    store.seed({ containers: [container('a', { version: 3 })] });

    // Act
    const write = store.write({
      containers: [
        {
          record: container('a', { version: 4, sessions: ['s1'] }),
          expect: { kind: 'version', version: 3 },
        },
      ],
      sessions: [
        { record: session('s1'), expect: { kind: 'absent' } },
        { record: session('s2'), expect: { kind: 'status', status: 'active' } },
      ],
    });

    // Assess
    await expect(write).rejects.toBeInstanceOf(StaleWriteError);
    expect(store.allContainers()).toEqual([container('a', { version: 3 })]);
    expect(store.allSessions()).toEqual([]);
  });

  it('creates a first generation only where there is no item', async () => {
    // Prepare
    const { store } = world().deps;
    const create = () =>
      store.write({
        containers: [
          { record: container('a'), expect: { kind: 'new-generation', previousGeneration: null } },
        ],
      });

    // Act
    await create();

    // Assess
    await expect(create()).rejects.toBeInstanceOf(StaleWriteError);
  });

  it('replaces a generation only when it is final, and only with the next one', async () => {
    // Prepare
    const { store } = world().deps;
    store.seed({ containers: [container('a', { status: 'running' })] });
    const next = (generation: number) =>
      store.write({
        containers: [
          {
            record: container('a', { generation }),
            expect: { kind: 'new-generation', previousGeneration: 1 },
          },
        ],
      });

    // Act
    const whileRunning = next(2);

    // Assess
    await expect(whileRunning).rejects.toBeInstanceOf(StaleWriteError);
    store.seed({ containers: [container('a', { status: 'failed' })] });
    await expect(next(3)).rejects.toBeInstanceOf(InvalidArgumentError);
    await next(2);
    expect(store.allContainers()[0]?.generation).toBe(2);
  });

  it('refuses a write that names one item twice, as DynamoDB does', async () => {
    const { store } = world().deps;
    await expect(
      store.write({
        sessions: [
          { record: session('s1'), expect: { kind: 'absent' } },
          { record: session('s1'), expect: { kind: 'absent' } },
        ],
      }),
    ).rejects.toBeInstanceOf(InvalidArgumentError);
  });

  it('hands out copies: changing a record read does not change the store', async () => {
    // Prepare
    const { store } = world().deps;
    store.seed({ containers: [container('a')] });

    // Act
    const read = await store.getContainer('acme.web.a');
    read!.sessions.push('intruder');

    // Assess
    expect((await store.getContainer('acme.web.a'))?.sessions).toEqual([]);
  });
});

describe('InMemoryStateStore queries', () => {
  it('lists running containers without sessions idle since at or before a time', async () => {
    // Prepare
    const { store } = world().deps;
    store.seed({
      containers: [
        container('due', { status: 'running', idleSince: '2026-01-01T00:00:00.000Z' }),
        container('edge', { status: 'running', idleSince: '2026-01-01T00:10:00.000Z' }),
        container('later', { status: 'running', idleSince: '2026-01-01T00:10:00.001Z' }),
        container('busy', { status: 'running', idleSince: null, sessions: ['s'] }),
        container('starting', { status: 'starting', idleSince: T0 }),
      ],
    });

    // Act
    const idle = await store.listIdleContainers('2026-01-01T00:10:00.000Z', 10);

    // Assess
    expect(idle.map((c) => c.userId)).toEqual(['due', 'edge']);
  });

  it('lists active sessions whose last activity is at or before a time', async () => {
    // Prepare
    const { store } = world().deps;
    store.seed({
      sessions: [
        session('old', { lastActivityAt: T0 }),
        session('new', { lastActivityAt: '2026-01-01T01:00:00.000Z' }),
        session('gone', { lastActivityAt: T0, status: 'released' }),
      ],
    });

    // Act
    const stale = await store.listStaleSessions('2026-01-01T00:30:00.000Z', 10);

    // Assess
    expect(stale.map((s) => s.sessionId)).toEqual(['old']);
  });

  it('pages through a filtered list with an opaque cursor bound to its query', async () => {
    // Prepare
    const { store } = world().deps;
    store.seed({
      containers: ['a', 'b', 'c', 'd', 'e'].map((u) =>
        container(u, { status: u === 'c' ? 'stopped' : 'running' }),
      ),
    });

    // Act
    const first = await store.listContainers({ status: 'running' }, 2);
    const second = await store.listContainers({ status: 'running' }, 2, first.nextCursor!);

    // Assess
    expect(first.items.map((c) => c.userId)).toEqual(['a', 'b']);
    expect(second).toMatchObject({ nextCursor: null });
    expect(second.items.map((c) => c.userId)).toEqual(['d', 'e']);
    await expect(
      store.listContainers({ status: 'stopped' }, 2, first.nextCursor!),
    ).rejects.toMatchObject({
      field: 'cursor',
    });
    await expect(store.listContainers({}, 2, 'not-a-cursor')).rejects.toBeInstanceOf(
      InvalidArgumentError,
    );
  });
});
