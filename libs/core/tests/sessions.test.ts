import { jest } from '@jest/globals';
import { WORKTREES_DIR, type SessionRecord } from '@berth/domain';
import {
  CONTAINER_ID,
  KEY,
  OTHER_KEY,
  assignCommand,
  concurrently,
  releaseCommand,
  runningContainer,
  settle,
  stored,
  touchCommand,
  world,
} from './support.ts';

async function session(
  w: ReturnType<typeof world>,
  sessionId: string,
): Promise<SessionRecord | undefined> {
  return w.deps.store.getSession(sessionId);
}

describe('SessionService.assign', () => {
  it('adds the session to a running idle container and clears idleSince', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);
    expect(running.idleSince).not.toBeNull();
    w.deps.clock.advance('1m');

    // Act
    const outcome = await w.useCases.sessions.assign(
      assignCommand('s1', KEY, { threadId: 'slack:t1' }),
    );

    // Assess
    expect(outcome).toMatchObject({ kind: 'assigned', reused: true, duplicate: false });
    const container = await stored(w.deps);
    expect(container).toMatchObject({
      sessions: ['s1'],
      idleSince: null,
      lastActivityAt: w.deps.clock.iso(),
    });
    expect(await session(w, 's1')).toEqual({
      sessionId: 's1',
      containerId: CONTAINER_ID,
      generation: 1,
      threadId: 'slack:t1',
      status: 'active',
      inputQueueUrl: running.inputQueueUrl,
      outputQueueUrl: running.outputQueueUrl,
      worktreePath: `${running.workspacePath}/${WORKTREES_DIR}/slack%3At1`,
      assignedAt: w.deps.clock.iso(),
      lastActivityAt: w.deps.clock.iso(),
      releasedAt: null,
      releaseReason: null,
    });
  });

  it('publishes session.assigned and asks the agent to open the thread', async () => {
    // Prepare
    const w = world();
    const running = await runningContainer(w);

    // Act
    await w.useCases.sessions.assign(assignCommand('s1', KEY, { commandId: 'c-1' }));

    // Assess
    expect(w.deps.publisher.ofType('session.assigned')).toEqual([
      expect.objectContaining({
        eventId: 'session/s1/session.assigned',
        sessionId: 's1',
        commandId: 'c-1',
        payload: expect.objectContaining({
          containerId: CONTAINER_ID,
          sessionCount: 1,
          reused: true,
        }) as unknown,
      }),
    ]);
    expect(w.deps.queues.sent).toEqual([
      {
        queueUrl: running.inputQueueUrl,
        body: { type: 'thread.open', threadId: 's1', sessionId: 's1' },
      },
    ]);
  });

  it('starts the container when there is none, and says it was not reused', async () => {
    // Prepare
    const w = world();

    // Act
    const outcome = await w.useCases.sessions.assign(assignCommand('s1'));

    // Assess
    expect(outcome).toMatchObject({ kind: 'assigned', reused: false });
    expect(w.deps.publisher.types()).toEqual(['container.created', 'session.assigned']);
  });

  it('changes nothing for the same sessionId again, and publishes the same event id again', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    const writes = w.deps.store.writes;
    const before = { container: await stored(w.deps), session: await session(w, 's1') };
    w.deps.clock.advance('5s');

    // Act
    const outcome = await w.useCases.sessions.assign(assignCommand('s1'));

    // Assess
    expect(outcome).toMatchObject({ kind: 'assigned', duplicate: true });
    // The only write is this second command's own outcome (decided once, issue 12 case 7).
    expect(w.deps.store.writes).toBe(writes + 1);
    expect({ container: await stored(w.deps), session: await session(w, 's1') }).toEqual(before);
    const assigned = w.deps.publisher.ofType('session.assigned');
    expect(assigned).toHaveLength(2);
    expect(assigned[1]!.eventId).toBe(assigned[0]!.eventId);
  });

  it('adds a session once when the same assign is delivered 10 times at once', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    const command = assignCommand('s1');

    // Act
    const outcomes = await concurrently(10, () => w.useCases.sessions.assign(command));

    // Assess
    expect(outcomes.every((o) => o.kind === 'assigned')).toBe(true);
    expect(outcomes.filter((o) => o.kind === 'assigned' && !o.duplicate)).toHaveLength(1);
    expect((await stored(w.deps)).sessions).toEqual(['s1']);
    expect(new Set(w.deps.publisher.ofType('session.assigned').map((e) => e.eventId)).size).toBe(1);
  });

  it('rejects a session already active on another container, with reason conflict', async () => {
    // Prepare
    const w = world();
    await w.useCases.sessions.assign(assignCommand('s1', KEY));

    // Act
    const outcome = await w.useCases.sessions.assign(assignCommand('s1', OTHER_KEY));

    // Assess
    expect(outcome).toMatchObject({ kind: 'rejected', reason: 'conflict' });
    expect(await session(w, 's1')).toMatchObject({ containerId: CONTAINER_ID });
  });
});

describe('SessionService.assign capacity', () => {
  it('rejects the (max+1)-th distinct session with reason capacity', async () => {
    // Prepare
    const w = world({ settings: { maxSessions: 2 } });
    await w.useCases.sessions.assign(assignCommand('s1'));
    await w.useCases.sessions.assign(assignCommand('s2'));

    // Act
    const outcome = await w.useCases.sessions.assign(
      assignCommand('s3', KEY, { commandId: 'c-3' }),
    );

    // Assess
    expect(outcome).toMatchObject({ kind: 'rejected', reason: 'capacity' });
    expect((await stored(w.deps)).sessions).toEqual(['s1', 's2']);
    expect(await session(w, 's3')).toBeUndefined();
    expect(w.deps.publisher.ofType('session.rejected')).toEqual([
      expect.objectContaining({
        sessionId: 's3',
        commandId: 'c-3',
        payload: expect.objectContaining({ reason: 'capacity' }) as unknown,
      }),
    ]);
  });

  it('never goes above the limit under 30 concurrent assigns', async () => {
    // Prepare
    const w = world({ settings: { maxSessions: 10 } });
    await runningContainer(w);

    // Act
    const outcomes = await concurrently(30, (i) =>
      w.useCases.sessions.assign(assignCommand(`s${i}`)),
    );

    // Assess
    const assigned = outcomes.filter((o) => o.kind === 'assigned');
    const rejected = outcomes.filter((o) => o.kind === 'rejected');
    expect(assigned).toHaveLength(10);
    expect(rejected).toHaveLength(20);
    expect(rejected.every((o) => o.kind === 'rejected' && o.reason === 'capacity')).toBe(true);
    const container = await stored(w.deps);
    expect(container.sessions).toHaveLength(10);
    const active = w.deps.store.allSessions().filter((s) => s.status === 'active');
    expect(active.map((s) => s.sessionId).sort()).toEqual([...container.sessions].sort());
  });

  it('takes a session again once one has left', async () => {
    // Prepare
    const w = world({ settings: { maxSessions: 1 } });
    await w.useCases.sessions.assign(assignCommand('s1'));
    await w.useCases.sessions.release(releaseCommand('s1'));

    // Act
    const outcome = await w.useCases.sessions.assign(assignCommand('s2'));

    // Assess
    expect(outcome).toMatchObject({ kind: 'assigned' });
  });
});

describe('SessionService.release', () => {
  it('removes the session, sets idleSince when the last one leaves and publishes container.idle', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    w.deps.clock.advance('3m');

    // Act
    const released = await w.useCases.sessions.release(releaseCommand('s1', 'c-rel'));

    // Assess
    expect(released).toMatchObject({
      status: 'released',
      releasedAt: w.deps.clock.iso(),
      releaseReason: 'released',
    });
    expect(await stored(w.deps)).toMatchObject({ sessions: [], idleSince: w.deps.clock.iso() });
    expect(w.deps.publisher.types().slice(-2)).toEqual(['session.released', 'container.idle']);
    expect(w.deps.publisher.ofType('session.released')[0]).toMatchObject({
      commandId: 'c-rel',
      payload: { containerId: CONTAINER_ID, sessionCount: 0 },
    });
  });

  it('keeps the container busy while other sessions remain', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    await w.useCases.sessions.assign(assignCommand('s2'));

    // Act
    await w.useCases.sessions.release(releaseCommand('s1'));

    // Assess
    expect(await stored(w.deps)).toMatchObject({ sessions: ['s2'], idleSince: null });
    expect(w.deps.publisher.ofType('container.idle')).toHaveLength(0);
  });

  it('stores a tombstone for a session not seen yet, and the later assign is rejected (released)', async () => {
    // Prepare
    const w = world();

    // Act
    const tombstone = await w.useCases.sessions.release(releaseCommand('s1'));
    const outcome = await w.useCases.sessions.assign(assignCommand('s1'));

    // Assess
    expect(tombstone).toMatchObject({ sessionId: 's1', status: 'released', containerId: null });
    expect(outcome).toMatchObject({ kind: 'rejected', reason: 'released' });
    expect(await session(w, 's1')).toMatchObject({ status: 'released', containerId: null });
    expect(w.deps.store.allContainers()).toEqual([]);
    expect(w.deps.publisher.ofType('session.rejected')[0]!.payload).toMatchObject({
      reason: 'released',
    });
  });

  it('changes nothing when releasing twice', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    await w.useCases.sessions.release(releaseCommand('s1'));
    const writes = w.deps.store.writes;
    const before = { container: await stored(w.deps), session: await session(w, 's1') };
    w.deps.clock.advance('1m');

    // Act
    const again = await w.useCases.sessions.release(releaseCommand('s1'));

    // Assess
    expect(again).toEqual(before.session);
    expect(w.deps.store.writes).toBe(writes);
    expect({ container: await stored(w.deps), session: await session(w, 's1') }).toEqual(before);
    const released = w.deps.publisher.ofType('session.released');
    expect(released.map((e) => e.eventId)).toEqual([
      'session/s1/session.released',
      'session/s1/session.released',
    ]);
  });

  it('never revives a released session, whatever arrives later', async () => {
    // Prepare
    const w = world();
    await w.useCases.sessions.assign(assignCommand('s1'));
    await w.useCases.sessions.release(releaseCommand('s1'));

    // Act
    const outcome = await w.useCases.sessions.assign(assignCommand('s1'));

    // Assess
    expect(outcome).toMatchObject({ kind: 'rejected', reason: 'released' });
    expect((await stored(w.deps)).sessions).toEqual([]);
  });
});

describe('SessionService.touch', () => {
  it('updates lastActivityAt of an active session', async () => {
    // Prepare
    const w = world();
    await w.useCases.sessions.assign(assignCommand('s1'));
    w.deps.clock.advance('10m');

    // Act
    const touched = await w.useCases.sessions.touch(touchCommand('s1'));

    // Assess
    expect(touched?.lastActivityAt).toBe(w.deps.clock.iso());
    expect((await session(w, 's1'))?.lastActivityAt).toBe(w.deps.clock.iso());
  });

  it('leaves a released session as it is', async () => {
    // Prepare
    const w = world();
    await w.useCases.sessions.assign(assignCommand('s1'));
    await w.useCases.sessions.release(releaseCommand('s1'));
    const before = await session(w, 's1');
    w.deps.clock.advance('10m');

    // Act
    await w.useCases.sessions.touch(touchCommand('s1'));

    // Assess
    expect(await session(w, 's1')).toEqual(before);
  });
});

describe('SessionService.expireStale', () => {
  it('expires sessions idle longer than the TTL and publishes session.expired', async () => {
    // Prepare
    const w = world({ settings: { sessionTtlMs: 60 * 60_000 } });
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('old'));
    w.deps.clock.advance('30m');
    await w.useCases.sessions.assign(assignCommand('recent'));
    w.deps.clock.advance('31m');

    // Act
    const expired = await w.useCases.sessionEndings.expireStale();

    // Assess
    expect(expired).toBe(1);
    expect(await session(w, 'old')).toMatchObject({ status: 'expired', releaseReason: 'expired' });
    expect(await session(w, 'recent')).toMatchObject({ status: 'active' });
    expect((await stored(w.deps)).sessions).toEqual(['recent']);
    expect(w.deps.publisher.ofType('session.expired')).toEqual([
      expect.objectContaining({ eventId: 'session/old/session.expired', sessionId: 'old' }),
    ]);
  });

  it('keeps a session touched after the query found it stale', async () => {
    // Prepare
    const w = world({ settings: { sessionTtlMs: 60 * 60_000 } });
    await w.useCases.sessions.assign(assignCommand('s1'));
    w.deps.clock.advance('2h');
    const list = w.deps.store.listStaleSessions.bind(w.deps.store);
    jest.spyOn(w.deps.store, 'listStaleSessions').mockImplementationOnce(async (before, limit) => {
      const stale = await list(before, limit);
      await w.useCases.sessions.touch(touchCommand('s1'));
      return stale;
    });

    // Act
    const expired = await w.useCases.sessionEndings.expireStale();

    // Assess
    expect(expired).toBe(0);
    expect(await session(w, 's1')).toMatchObject({ status: 'active' });
  });
});

describe('SessionService with a failing bus', () => {
  it('publishes session.assigned under the same id on redelivery after a publish failure', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    const command = assignCommand('s1');
    w.deps.publisher.failNext(1);
    const first = await settle(w.useCases.sessions.assign(command));
    expect(first.error).toBeDefined();
    const afterFirst = await stored(w.deps);

    // Act
    const redelivered = await w.useCases.sessions.assign(command);

    // Assess
    expect(redelivered).toMatchObject({ kind: 'assigned', duplicate: true });
    expect(await stored(w.deps)).toEqual(afterFirst);
    expect(afterFirst.sessions).toEqual(['s1']);
    expect(w.deps.publisher.ofType('session.assigned')).toEqual([
      expect.objectContaining({ eventId: 'session/s1/session.assigned' }),
    ]);
  });

  it('publishes session.released and container.idle under the same ids on redelivery', async () => {
    // Prepare
    const w = world();
    await runningContainer(w);
    await w.useCases.sessions.assign(assignCommand('s1'));
    const command = releaseCommand('s1');
    w.deps.publisher.failNext(1);
    expect((await settle(w.useCases.sessions.release(command))).error).toBeDefined();
    const afterFirst = await stored(w.deps);

    // Act
    await w.useCases.sessions.release(command);

    // Assess
    expect(await stored(w.deps)).toEqual(afterFirst);
    expect(w.deps.publisher.types().slice(-2)).toEqual(['session.released', 'container.idle']);
    expect(w.deps.publisher.ofType('container.idle')[0]!.eventId).toBe(
      `${CONTAINER_ID}#1/idle@${afterFirst.idleSince}/container.idle`,
    );
  });
});
