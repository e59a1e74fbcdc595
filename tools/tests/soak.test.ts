import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  newContainerRecord,
  type BerthEvent,
  type ContainerRecord,
  type SessionRecord,
} from '@berth/domain';
import { planChaos } from '../src/soak/chaos.ts';
import {
  checkCommands,
  checkOneOutcome,
  checkEventsOfStore,
  checkGenerations,
  checkMarkers,
  checkStuckTransitional,
  checkTaskOverlap,
  commandOutcomes,
  isKnownGap,
  markerFileKey,
  sessionCountProblem,
  taskSpansFromLog,
  type MarkerRecord,
  type SentCommand,
} from '../src/soak/checks.ts';
import type { SoakReport } from '../src/soak/driver.ts';
import { FaultProxy } from '../src/soak/fault-proxy.ts';
import { parseSoakOptions } from '../src/soak/options.ts';
import { Random } from '../src/soak/random.ts';

// ---- helpers ----

/** A TCP server that answers every chunk with the same bytes. */
async function echoServer(): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return {
    server,
    port: address.port,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

interface Client {
  socket: Socket;
  received(): string;
  /** The error the socket ended with, if any. */
  error(): NodeJS.ErrnoException | undefined;
  closed: Promise<unknown>;
}

async function dial(port: number): Promise<Client> {
  const socket = connect({ host: '127.0.0.1', port });
  let data = '';
  let failure: NodeJS.ErrnoException | undefined;
  socket.on('data', (chunk: Buffer) => (data += chunk.toString()));
  socket.on('error', (error: NodeJS.ErrnoException) => (failure = error));
  // Not `once`: it rejects when 'error' comes first, and the error is what these tests look at.
  const closed = new Promise((resolve) => socket.once('close', resolve));
  await Promise.race([new Promise((resolve) => socket.once('connect', resolve)), closed]);
  return { socket, received: () => data, error: () => failure, closed };
}

async function until(what: string, check: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const T0 = Date.parse('2026-01-01T00:00:00.000Z');
const iso = (offsetMs: number): string => new Date(T0 + offsetMs).toISOString();

function containerEvent(
  type: BerthEvent['type'],
  generation: number,
  status: string,
  times: { createdAt: number; stoppedAt?: number },
  containerId = 'a.b.c',
): BerthEvent {
  return {
    type,
    eventId: `${containerId}#${generation}/${type}`,
    occurredAt: iso(times.stoppedAt ?? times.createdAt),
    containerId,
    payload: {
      container: {
        containerId,
        generation,
        status,
        createdAt: iso(times.createdAt),
        stoppedAt: times.stoppedAt === undefined ? null : iso(times.stoppedAt),
        stopReason: times.stoppedAt === undefined ? null : 'idle',
      },
    },
  };
}

function sessionEvent(type: BerthEvent['type'], sessionId: string, commandId?: string): BerthEvent {
  return {
    type,
    eventId: `session/${sessionId}/${type}${commandId ?? ''}`,
    occurredAt: iso(0),
    sessionId,
    ...(commandId ? { commandId } : {}),
    payload: {},
  };
}

function container(overrides: Partial<ContainerRecord> = {}): ContainerRecord {
  return {
    ...newContainerRecord(
      { containerId: 'a.b.c', clientId: 'a', projectId: 'b', userId: 'c' },
      2,
      iso(0),
    ),
    status: 'running',
    taskArn: 'arn:task',
    startedAt: iso(0),
    idleSince: null,
    version: 7,
    ...overrides,
  };
}

function session(sessionId: string, overrides: Partial<SessionRecord> = {}): SessionRecord {
  return {
    sessionId,
    containerId: 'a.b.c',
    generation: 2,
    threadId: sessionId,
    status: 'active',
    inputQueueUrl: null,
    outputQueueUrl: null,
    worktreePath: null,
    assignedAt: iso(0),
    lastActivityAt: iso(0),
    releasedAt: null,
    releaseReason: null,
    ...overrides,
  };
}

// ---- the fault proxy ----

describe('FaultProxy', () => {
  let echo: Awaited<ReturnType<typeof echoServer>>;
  let proxy: FaultProxy;

  beforeEach(async () => {
    echo = await echoServer();
    proxy = await FaultProxy.start({ name: 'test', targetPort: echo.port });
  });

  afterEach(async () => {
    await proxy.close();
    await echo.close();
  });

  it('passes bytes through both ways, in order', async () => {
    // Prepare
    const client = await dial(proxy.port);

    // Act
    for (let i = 0; i < 50; i += 1) client.socket.write(`${i},`);

    // Assess
    const expected = Array.from({ length: 50 }, (_, i) => `${i},`).join('');
    await until('the echo', () => client.received().length >= expected.length);
    expect(client.received()).toBe(expected);
    client.socket.destroy();
  });

  it('holds every chunk back for at least the latency, and keeps their order under jitter', async () => {
    // Prepare
    const client = await dial(proxy.port);
    await proxy.setFault({ kind: 'latency', ms: 150, jitterMs: 100 });

    // Act
    const sentAt = Date.now();
    for (let i = 0; i < 20; i += 1) {
      client.socket.write(`${i};`);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }

    // Assess: there and back, each way at least 150 ms
    const expected = Array.from({ length: 20 }, (_, i) => `${i};`).join('');
    await until('the delayed echo', () => client.received().length >= expected.length);
    expect(Date.now() - sentAt).toBeGreaterThanOrEqual(300);
    expect(client.received()).toBe(expected);
    expect(proxy.stats.delayedChunks).toBeGreaterThan(0);
    client.socket.destroy();
  });

  it('resets open connections and every new one during a reset window, then works again', async () => {
    // Prepare
    const open = await dial(proxy.port);
    open.socket.write('x');
    await until('the first echo', () => open.received() === 'x');

    // Act
    await proxy.setFault({ kind: 'reset' });
    await open.closed;
    const during = await dial(proxy.port);
    await during.closed;
    await proxy.setFault(undefined);
    const after = await dial(proxy.port);
    after.socket.write('y');

    // Assess
    expect(open.error()?.code).toBe('ECONNRESET');
    expect(during.error()?.code).toBe('ECONNRESET');
    await until('the echo after the window', () => after.received() === 'y');
    after.socket.destroy();
  });

  it('refuses connections during a refuse window and listens on the same port afterwards', async () => {
    // Prepare
    const open = await dial(proxy.port);

    // Act
    await proxy.setFault({ kind: 'refuse' });
    await open.closed;
    const during = await dial(proxy.port);
    await during.closed;
    await proxy.setFault(undefined);
    const after = await dial(proxy.port);
    after.socket.write('z');

    // Assess
    expect(open.error()?.code).toBe('ECONNRESET');
    expect(during.error()?.code).toBe('ECONNREFUSED');
    await until('the echo after the window', () => after.received() === 'z');
    expect(proxy.stats.refusedWindows).toBe(1);
    after.socket.destroy();
  });

  it('closes a window after its time, or at once when aborted', async () => {
    // Prepare
    const abort = new AbortController();

    // Act
    const timed = proxy.window({ kind: 'reset' }, 50);
    const duringTimed = proxy.fault;
    await timed;
    const aborted = proxy.window({ kind: 'latency', ms: 10 }, 60_000, abort.signal);
    abort.abort();
    await aborted;

    // Assess
    expect(duringTimed).toEqual({ kind: 'reset' });
    expect(proxy.fault).toBeUndefined();
  });
});

// ---- the checks ----

describe('checkGenerations', () => {
  it('accepts generations that follow one another', () => {
    // Prepare
    const events = [
      containerEvent('container.created', 1, 'starting', { createdAt: 0 }),
      containerEvent('container.stopped', 1, 'stopped', { createdAt: 0, stoppedAt: 1000 }),
      containerEvent('container.created', 2, 'starting', { createdAt: 1000 }),
      containerEvent('container.failed', 2, 'failed', { createdAt: 1000, stoppedAt: 2000 }),
    ];

    // Act / Assess
    expect(checkGenerations(events)).toEqual([]);
  });

  it('finds a generation created before the one before it ended', () => {
    // Prepare: delivered out of order, as SNS may
    const events = [
      containerEvent('container.created', 2, 'starting', { createdAt: 500 }),
      containerEvent('container.stopped', 1, 'stopped', { createdAt: 0, stoppedAt: 1000 }),
    ];

    // Act
    const found = checkGenerations(events);

    // Assess
    expect(found).toEqual([expect.objectContaining({ kind: 'one-live', subject: 'a.b.c#1/#2' })]);
    expect(isKnownGap(found[0]!)).toBe(false);
  });

  it('reports a generation without a final event, and a missing generation, as lost events', () => {
    // Prepare
    const events = [
      containerEvent('container.running', 1, 'running', { createdAt: 0 }),
      containerEvent('container.created', 3, 'starting', { createdAt: 5000 }),
    ];

    // Act
    const found = checkGenerations(events);

    // Assess
    expect(found.map((v) => [v.kind, v.subject])).toEqual([
      ['event-missing', 'a.b.c#2'],
      ['event-missing', 'a.b.c#1'],
    ]);
    expect(found.every(isKnownGap)).toBe(true);
  });

  it('finds statuses the lifecycle does not allow in one generation', () => {
    // Prepare
    const events = [
      containerEvent('container.terminating', 1, 'terminating', { createdAt: 0 }),
      containerEvent('container.failed', 1, 'failed', { createdAt: 0, stoppedAt: 10 }),
    ];

    // Act / Assess
    expect(checkGenerations(events)).toEqual([
      expect.objectContaining({ kind: 'lifecycle', subject: 'a.b.c#1' }),
    ]);
  });
});

describe('checkStuckTransitional', () => {
  it('finds a starting or terminating record older than its timeout, and only those', () => {
    // Prepare: a start timeout of 60 s, a stop timeout of 13 s, 5 s of slack; read at 100 s.
    const timeouts = { startTimeoutMs: 60_000, stopTimeoutMs: 13_000, slackMs: 5_000 };
    const now = T0 + 100_000;
    const containers = [
      // Its starter died before RunTask and an operator stopped it (issue 12, case 1).
      container({
        containerId: 'old.start',
        status: 'starting',
        createdAt: iso(0),
        taskArn: null,
        stopReason: 'manual:operator',
      }),
      container({ containerId: 'young.start', status: 'starting', createdAt: iso(50_000) }),
      container({
        containerId: 'old.stop',
        status: 'terminating',
        createdAt: iso(0),
        terminatingSince: iso(70_000),
      }),
      container({
        containerId: 'young.stop',
        status: 'terminating',
        createdAt: iso(0),
        terminatingSince: iso(90_000),
      }),
      container({ containerId: 'old.running', status: 'running', createdAt: iso(0) }),
      container({ containerId: 'old.stopped', status: 'stopped', createdAt: iso(0) }),
    ];

    // Act
    const found = checkStuckTransitional(containers, now, timeouts);

    // Assess
    expect(found.map((v) => [v.kind, v.subject])).toEqual([
      ['stuck-transitional', 'old.start#2'],
      ['stuck-transitional', 'old.stop#2'],
    ]);
    expect(found[0]!.detail).toContain('task none, stop manual:operator');
    expect(found.some(isKnownGap)).toBe(false);
  });
});

describe('task spans', () => {
  it('reads the local runtime log and finds two tasks of one container alive at once', () => {
    // Prepare
    const line = (msg: string, taskArn: string, time: number, generation?: number) =>
      JSON.stringify({
        level: 30,
        time: T0 + time,
        taskArn,
        containerId: 'a.b.c',
        generation,
        msg,
      });
    const log = [
      line('task started', 't1', 0, 1),
      line('task running', 't1', 10),
      line('task started', 't2', 500, 2),
      line('task stopped', 't1', 800),
      'not json',
      line('task stopped', 't2', 900),
      line('task started', 't3', 900, 3),
    ].join('\n');

    // Act
    const spans = taskSpansFromLog(log);
    const found = checkTaskOverlap(spans);

    // Assess
    expect(spans).toHaveLength(3);
    expect(spans.find((s) => s.taskArn === 't3')?.stoppedAt).toBeUndefined();
    expect(found).toEqual([expect.objectContaining({ kind: 'task-overlap', subject: 'a.b.c' })]);
    expect(found[0]!.detail).toContain('overlap 300 ms');
    expect(isKnownGap(found[0]!)).toBe(false);
  });

  it("takes an orphaned agent's end from the runtime started after the one that died", () => {
    // Prepare: runtime A started t1 and was SIGKILLed; runtime B logged t1's end before it
    // answered anything, and only then did generation 2 start.
    const line = (msg: string, taskArn: string, time: number, extra: object = {}) =>
      JSON.stringify({ level: 30, time: T0 + time, taskArn, containerId: 'a.b.c', msg, ...extra });
    const log = [
      line('task started', 't1', 0, { generation: 1 }),
      line('task running', 't1', 10),
      JSON.stringify({ level: 40, time: T0 + 2000, msg: 'agents of a runtime that died ...' }),
      line('task stopped', 't1', 4000, { generation: 1, orphaned: true }),
      line('task started', 't2', 4500, { generation: 2 }),
      line('task stopped', 't2', 9000),
    ].join('\n');

    // Act
    const spans = taskSpansFromLog(log);

    // Assess
    expect(spans.find((s) => s.taskArn === 't1')?.stoppedAt).toBe(T0 + 4000);
    expect(checkTaskOverlap(spans)).toEqual([]);
    // Without that line, t1 would count as alive to the end: a violation, on by default.
    const unseen = taskSpansFromLog(log.replace(/.*"orphaned":true.*\n/, ''));
    expect(checkTaskOverlap(unseen).map((v) => [v.kind, isKnownGap(v)])).toEqual([
      ['task-overlap', false],
    ]);
  });
});

describe('sessionCountProblem', () => {
  it('accepts a list that matches the active sessions of its generation', () => {
    // Prepare
    const record = container({ sessions: ['s1', 's2'] });
    const sessions = [
      session('s1'),
      session('s2'),
      session('s0', { status: 'released' }),
      session('old', { generation: 1, status: 'expired' }),
    ];

    // Act / Assess
    expect(sessionCountProblem(record, sessions, 3)).toBeUndefined();
  });

  it.each([
    [
      'an active session missing from the list',
      container({ sessions: ['s1'] }),
      [session('s1'), session('s2')],
      'active but not listed: s2',
    ],
    [
      'a listed session that is not active',
      container({ sessions: ['s1', 's2'] }),
      [session('s1'), session('s2', { status: 'released' })],
      'listed but not active: s2',
    ],
    [
      'a duplicate in the list',
      container({ sessions: ['s1', 's1'] }),
      [session('s1')],
      'duplicates',
    ],
    [
      'more sessions than allowed',
      container({ sessions: ['s1', 's2', 's3', 's4'] }),
      ['s1', 's2', 's3', 's4'].map((id) => session(id)),
      'above the limit',
    ],
    [
      'an active session of an older generation',
      container({ sessions: [] }),
      [session('s1', { generation: 1 })],
      'not live',
    ],
    [
      'a stopped container that still lists sessions',
      container({ status: 'stopped', sessions: ['s1'] }),
      [session('s1', { status: 'released' })],
      'listed but not active',
    ],
  ])('finds %s', (_what, record, sessions, expected) => {
    // Act
    const problem = sessionCountProblem(record, sessions, 3);

    // Assess
    expect(problem).toContain(expected);
  });
});

describe('checkOneOutcome', () => {
  it('finds an assign answered both assigned and rejected, and only that one', () => {
    // Prepare
    const sent = (commandId: string, sessionId: string): SentCommand => ({
      commandId,
      type: 'session.assign',
      sessionId,
      sentAt: T0,
      copies: 2,
    });
    const events = [
      sessionEvent('session.rejected', 's1', 'c1'),
      sessionEvent('session.assigned', 's1', 'c1'),
      sessionEvent('session.assigned', 's2', 'c2'),
      sessionEvent('session.assigned', 's2', 'c2'),
    ] as BerthEvent[];

    // Act
    const found = checkOneOutcome([sent('c1', 's1'), sent('c2', 's2')], events);

    // Assess
    expect(found.map((v) => [v.kind, v.subject])).toEqual([['command-two-outcomes', 'c1']]);
  });
});

describe('commandOutcomes and checkCommands', () => {
  const sent = (
    commandId: string,
    type: SentCommand['type'],
    about: Partial<SentCommand> = {},
  ): SentCommand => ({
    commandId,
    type,
    sentAt: T0,
    copies: 1,
    ...about,
  });

  it('accounts for each command by its event, a rejection, the dead-letter queue, or nothing', () => {
    // Prepare
    const commands = [
      sent('c1', 'session.assign', { sessionId: 's1' }),
      sent('c2', 'session.assign', { sessionId: 's2' }),
      sent('c3', 'session.release', { sessionId: 's1' }),
      sent('c4', 'session.release', { sessionId: 's3' }),
      sent('c5', 'invalid'),
      sent('c6', 'session.touch', { sessionId: 's1' }),
      sent('c7', 'container.stop', { containerId: 'a.b.c' }),
      sent('c8', 'container.stop', { containerId: 'a.b.c' }),
      sent('c9', 'session.assign', { sessionId: 's9' }),
    ];
    const events = [
      sessionEvent('session.assigned', 's1'),
      sessionEvent('session.rejected', 's2', 'c2'),
      sessionEvent('session.expired', 's1'),
      { ...sessionEvent('command.rejected', 'x', 'c5'), sessionId: undefined },
      {
        ...containerEvent('container.terminating', 1, 'terminating', { createdAt: 0 }),
        commandId: 'c7',
      },
    ] as BerthEvent[];

    // Act
    const outcomes = commandOutcomes(commands, events, new Set(['c9']));
    const lost = checkCommands(commands, outcomes);

    // Assess
    expect(Object.fromEntries(outcomes)).toEqual({
      c1: 'effect',
      c2: 'rejected',
      c3: 'effect',
      c4: 'lost',
      c5: 'rejected',
      c6: 'no-event-expected',
      c7: 'effect',
      c8: 'no-event-expected',
      c9: 'dead-lettered',
    });
    expect(lost).toEqual([expect.objectContaining({ kind: 'command-lost', subject: 'c4' })]);
  });
});

describe('checkEventsOfStore', () => {
  it('finds stored changes whose events never arrived', () => {
    // Prepare
    const containers = [
      container({ status: 'stopped', generation: 1, stoppedAt: iso(10), stopReason: 'idle' }),
    ];
    const sessions = [
      session('ok', { status: 'released' }),
      session('never-announced', { status: 'released' }),
      session('tombstone', { status: 'released', assignedAt: null, containerId: null }),
    ];
    const events = [
      sessionEvent('session.assigned', 'ok'),
      sessionEvent('session.released', 'ok'),
      sessionEvent('session.released', 'never-announced'),
    ];

    // Act
    const found = checkEventsOfStore(containers, sessions, events);

    // Assess
    expect(found.map((v) => v.subject).sort()).toEqual(['a.b.c#1', 'never-announced', 'tombstone']);
    expect(found.every(isKnownGap)).toBe(true);
  });
});

describe('checkMarkers', () => {
  it('requires every line answered with exit code 0 in its thread branch, and only those', () => {
    // Prepare
    const marker = (text: string, exitCode: number | undefined, threadId = 't1'): MarkerRecord => ({
      marker: text,
      sessionId: 's1',
      threadId,
      clientId: 'a',
      projectId: 'b',
      containerId: 'a.b.c',
      sentAt: T0,
      answeredAt: exitCode === undefined ? undefined : T0 + 1,
      exitCode,
    });
    const markers = [
      marker('soak m1', 0),
      marker('soak m2', 0),
      marker('soak m3', undefined),
      marker('soak m4', 70),
      marker('soak m5', 0, 't2'),
    ];
    const files = new Map([
      [markerFileKey(markers[0]!), '# chat\nsoak m1\nsoak m12\n'],
      [markerFileKey(markers[4]!), undefined],
    ]);

    // Act
    const found = checkMarkers(markers, files);

    // Assess
    expect(found.map((v) => v.subject)).toEqual(['soak m2', 'soak m5']);
    expect(found[1]!.detail).toContain('no such branch or file');
  });
});

describe('planChaos', () => {
  const base = {
    durationMs: 45_000,
    crashesPerMinute: 1,
    faultsPerMinute: 1,
    faultLengthMs: 5_000,
    faultKinds: ['latency', 'reset', 'refuse'] as const,
    faultTargets: ['dynamodb', 'sqs'] as const,
  };

  it('plans at least one crash and one fault window in a short run, all within the load', () => {
    // Act
    const plan = planChaos(
      { ...base, faultKinds: [...base.faultKinds], faultTargets: [...base.faultTargets] },
      new Random(1),
    );

    // Assess
    expect(plan.filter((p) => p.action.kind === 'crash')).toHaveLength(1);
    expect(plan.filter((p) => p.action.kind === 'fault')).toHaveLength(1);
    for (const item of plan) {
      expect(item.atMs).toBeGreaterThanOrEqual(0);
      const end = item.atMs + (item.action.kind === 'fault' ? item.action.lengthMs : 0);
      expect(end).toBeLessThanOrEqual(base.durationMs);
    }
  });

  it('brings every kind and target round in a longer run, and nothing when the rates are 0', () => {
    // Act
    const long = planChaos(
      {
        ...base,
        durationMs: 600_000,
        faultsPerMinute: 2,
        faultKinds: [...base.faultKinds],
        faultTargets: [...base.faultTargets],
      },
      new Random(2),
    );
    const none = planChaos(
      { ...base, crashesPerMinute: 0, faultsPerMinute: 0, faultKinds: [], faultTargets: [] },
      new Random(3),
    );

    // Assess
    const pairs = new Set(
      long.flatMap((p) =>
        p.action.kind === 'fault' ? [`${p.action.target}:${p.action.fault.kind}`] : [],
      ),
    );
    expect(pairs.size).toBe(6);
    expect(none).toEqual([]);
  });

  it('opens the first fault window before the first crash, so that it need not wait for a restart', () => {
    // Act: the CI run's settings
    const plan = planChaos(
      {
        ...base,
        durationMs: 60_000,
        crashesPerMinute: 1,
        faultsPerMinute: 2,
        faultKinds: [...base.faultKinds],
        faultTargets: [...base.faultTargets],
      },
      new Random(20261129),
    );

    // Assess
    const firstFault = plan.find((p) => p.action.kind === 'fault');
    const firstCrash = plan.find((p) => p.action.kind === 'crash');
    expect(firstFault!.atMs).toBeLessThan(firstCrash!.atMs);
  });

  it('makes the same plan from the same seed', () => {
    // Act
    const options = {
      ...base,
      faultKinds: [...base.faultKinds],
      faultTargets: [...base.faultTargets],
    };

    // Assess
    expect(planChaos(options, new Random(42))).toEqual(planChaos(options, new Random(42)));
  });
});

describe('parseSoakOptions', () => {
  it('takes flags over environment variables over defaults, and short stack timings', () => {
    // Act
    const options = parseSoakOptions(['--duration', '90s', '--users', '4'], {
      SOAK_DURATION: '5m',
      SOAK_PROJECTS: '5',
      SOAK_SEED: '7',
      BERTH_IDLE_TIMEOUT: '6s',
    });

    // Assess
    expect(options).toMatchObject({
      durationMs: 90_000,
      users: 4,
      projects: 5,
      seed: 7,
      strict: false,
    });
    expect(options !== 'help' && options.stackEnv).toMatchObject({
      BERTH_IDLE_TIMEOUT: '6s',
      BERTH_SWEEP_INTERVAL: '5s',
      BERTH_SHUTDOWN_GRACE: '8s',
      BERTH_REAPER_TICK: '500ms',
      BERTH_SESSION_TTL: '60s',
      BERTH_MAX_SESSIONS: '3',
      BERTH_RATE_LIMIT: '0',
    });
  });

  it('refuses a bad value, naming the flag', () => {
    // Act / Assess
    expect(() => parseSoakOptions(['--fault-kinds', 'latency,fire'], {})).toThrow(/--fault-kinds/);
    expect(() => parseSoakOptions(['--duration', '5 minutes'], {})).toThrow(/--duration/);
  });
});

// ---- the short soak ----

describe('npm run soak, short', () => {
  it('keeps every promise under load, a SIGKILLed service and fault windows', async () => {
    // Prepare
    const main = fileURLToPath(new URL('../src/soak/main.ts', import.meta.url));
    const child = spawn(
      process.execPath,
      [
        main,
        '--duration',
        '60s',
        '--users',
        '3',
        '--projects',
        '2',
        '--clients',
        '2',
        '--seed',
        '20261129',
        '--crash-rate',
        '1',
        '--fault-rate',
        '2',
        '--fault-length',
        '4s',
        '--json',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));

    // Act
    const [code] = (await once(child, 'exit')) as [number | null];

    // Assess
    const jsonLine = output.split('\n').find((line) => line.startsWith('{"ok":'));
    if (jsonLine === undefined)
      throw new Error(`the soak printed no report (exit code ${code}):\n${output}`);
    const report = JSON.parse(jsonLine) as SoakReport;
    const summary = output
      .split('\n')
      .filter((line) => !line.startsWith('{'))
      .join('\n');
    expect({ violations: report.violations, summary }).toEqual({ violations: [], summary });
    expect(code).toBe(0);
    expect(report.figures.crashesInjected).toBeGreaterThanOrEqual(1);
    expect(report.figures.faultWindows).toBeGreaterThanOrEqual(1);
    expect(report.figures.commandsSent['session.assign']).toBeGreaterThan(0);
    expect(report.figures.eventsSeen).toBeGreaterThan(0);
    expect(report.figures.containersStarted).toBeGreaterThan(0);
    expect(report.figures.markersVerified).toBe(report.figures.answersOk);
  }, 1_200_000);
});
