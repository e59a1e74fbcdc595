import {
  ContainerJsonSchema,
  SessionJsonSchema,
  idleStopAt,
  keptAliveBy,
  newContainerRecord,
  toContainerJson,
  toSessionJson,
  validator,
  type ContainerRecord,
  type ContainerStatus,
  type SessionRecord,
} from '../src/index.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const MINUTE = 60_000;
const containerJson = validator(ContainerJsonSchema);
const sessionJson = validator(SessionJsonSchema);

function container(overrides: Partial<ContainerRecord> = {}): ContainerRecord {
  return {
    ...newContainerRecord(
      { clientId: 'acme', projectId: 'web', userId: 'john', containerId: 'acme.web.john' },
      1,
      T0,
    ),
    ...overrides,
  };
}

const running = (overrides: Partial<ContainerRecord> = {}) =>
  container({
    status: 'running',
    startedAt: T0,
    idleSince: T0,
    taskArn: 'arn:task/1',
    ...overrides,
  });

describe('toContainerJson idleStopAt', () => {
  it('is idleSince plus the idle timeout for a running container without sessions', () => {
    expect(toContainerJson(running(), { idleTimeoutMs: 20 * MINUTE }).idleStopAt).toBe(
      '2026-01-01T00:20:00.000Z',
    );
  });

  it('is null while it has sessions', () => {
    expect(
      toContainerJson(running({ sessions: ['s1'], idleSince: null }), { idleTimeoutMs: MINUTE })
        .idleStopAt,
    ).toBeNull();
  });

  it('is null while messages are in flight', () => {
    expect(
      toContainerJson(running(), { idleTimeoutMs: MINUTE, messagesInFlight: 2 }).idleStopAt,
    ).toBeNull();
  });

  it.each<ContainerStatus>(['starting', 'terminating', 'stopped', 'failed'])(
    'is null when %s',
    (status) => {
      expect(idleStopAt(running({ status }), MINUTE)).toBeNull();
    },
  );
});

describe('toContainerJson keptAliveBy', () => {
  it.each<[ContainerStatus, string[], number, string[]]>([
    ['starting', [], 0, ['starting']],
    ['starting', ['s1'], 1, ['starting', 'sessions', 'messages_in_flight']],
    ['running', [], 0, []],
    ['running', ['s1'], 0, ['sessions']],
    ['running', [], 3, ['messages_in_flight']],
    ['running', ['s1', 's2'], 3, ['sessions', 'messages_in_flight']],
    ['terminating', ['s1'], 3, []],
    ['stopped', [], 0, []],
    ['failed', ['s1'], 1, []],
  ])('%s with sessions %j and %d in flight: %j', (status, sessions, inFlight, reasons) => {
    // Prepare
    const record = running({ status, sessions });

    // Act
    const json = toContainerJson(record, { idleTimeoutMs: MINUTE, messagesInFlight: inFlight });

    // Assess
    expect(json.keptAliveBy).toEqual(reasons);
    expect(keptAliveBy(record, inFlight)).toEqual(reasons);
  });
});

describe('toContainerJson shape', () => {
  it('has exactly the contract fields, absent values null, and matches the schema', () => {
    // Prepare
    const record = container();

    // Act
    const json = toContainerJson(record, { idleTimeoutMs: MINUTE });

    // Assess
    expect(Object.keys(json).sort()).toEqual(
      [
        'containerId',
        'clientId',
        'projectId',
        'userId',
        'status',
        'generation',
        'sessionCount',
        'sessions',
        'taskArn',
        'endpoint',
        'inputQueueUrl',
        'outputQueueUrl',
        'workspacePath',
        'createdAt',
        'startedAt',
        'lastActivityAt',
        'idleSince',
        'idleStopAt',
        'expiresAt',
        'keptAliveBy',
        'previewActiveAt',
        'devServer',
        'stoppedAt',
        'stopReason',
        'fromPool',
      ].sort(),
    );
    expect(json).toMatchObject({
      taskArn: null,
      endpoint: null,
      inputQueueUrl: null,
      outputQueueUrl: null,
      workspacePath: null,
      startedAt: null,
      idleStopAt: null,
      expiresAt: null,
      stoppedAt: null,
      stopReason: null,
      sessionCount: 0,
      createdAt: T0,
      fromPool: false,
    });
    expect(containerJson.check(json)).toBe(true);
  });

  it('counts sessions and copies the list', () => {
    // Prepare
    const record = running({ sessions: ['a', 'b'] });

    // Act
    const json = toContainerJson(record, { idleTimeoutMs: MINUTE });
    record.sessions.push('c');

    // Assess
    expect(json.sessionCount).toBe(2);
    expect(json.sessions).toEqual(['a', 'b']);
  });

  it('does not leak internal fields (version, terminatingSince)', () => {
    const json = toContainerJson(running({ terminatingSince: T0 }), {
      idleTimeoutMs: MINUTE,
    }) as Record<string, unknown>;
    expect(json).not.toHaveProperty('version');
    expect(json).not.toHaveProperty('terminatingSince');
  });
});

describe('toSessionJson', () => {
  it('keeps the contract fields only and matches the schema', () => {
    // Prepare
    const session: SessionRecord = {
      sessionId: 's1',
      containerId: null,
      generation: null,
      threadId: null,
      status: 'released',
      inputQueueUrl: null,
      outputQueueUrl: null,
      worktreePath: null,
      assignedAt: null,
      lastActivityAt: null,
      releasedAt: T0,
      releaseReason: 'released',
    };

    // Act
    const json = toSessionJson(session);

    // Assess
    expect(json).not.toHaveProperty('generation');
    expect(json).not.toHaveProperty('releaseReason');
    expect(sessionJson.check(json)).toBe(true);
  });
});
