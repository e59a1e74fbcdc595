import {
  checkAgentReport,
  parseAgentReport,
  senderSessionName,
  taskIdOf,
  type AgentReport,
  type ContainerRecord,
} from '../src/index.ts';

const TASK_ID = '0f1e2d3c4b5a69788796a5b4c3d2e1f0';
const TASK_ARN = `arn:aws:ecs:us-east-1:123456789012:task/berth/${TASK_ID}`;
/** SenderId as SQS gives it for a message sent with an ECS task role's credentials. */
const senderOf = (sessionName: string) => `AROAEXAMPLEROLEUNIQUE:${sessionName}`;

const container = (overrides: Partial<ContainerRecord> = {}): ContainerRecord => ({
  containerId: 'acme.web.ann',
  clientId: 'acme',
  projectId: 'web',
  userId: 'ann',
  status: 'running',
  generation: 3,
  sessions: ['s-1'],
  taskArn: TASK_ARN,
  endpoint: null,
  inputQueueUrl: null,
  outputQueueUrl: null,
  workspacePath: null,
  createdAt: '2026-12-01T00:00:00.000Z',
  startedAt: '2026-12-01T00:00:01.000Z',
  lastActivityAt: '2026-12-01T00:00:01.000Z',
  idleSince: null,
  terminatingSince: null,
  stoppedAt: null,
  stopReason: null,
  version: 1,
  pendingEvents: [],
  fromPool: false,
  ...overrides,
});

const ready = (overrides: Record<string, unknown> = {}): AgentReport => ({
  type: 'thread.ready',
  commandId: 'agent-thread.ready-1',
  payload: {
    sessionId: 's-1',
    threadId: 'plan',
    containerId: 'acme.web.ann',
    generation: 3,
    worktreePath: '/workspace/acme/web/ann/threads/plan',
    head: 'a'.repeat(40),
    ...overrides,
  },
});

const devServer = (overrides: Record<string, unknown> = {}): AgentReport => ({
  type: 'devserver.state',
  commandId: 'agent-devserver.state-1',
  payload: {
    containerId: 'acme.web.ann',
    generation: 3,
    state: 'up',
    port: 3000,
    restarts: 0,
    since: '2026-12-01T00:00:02.000Z',
    sequence: 2,
    ...overrides,
  },
});

const session = { containerId: 'acme.web.ann', generation: 3, threadId: 'plan' };

describe('parseAgentReport', () => {
  it('accepts thread.ready and checkpoint.record', () => {
    const parsed = parseAgentReport(JSON.stringify(ready()));
    expect(parsed).toMatchObject({ ok: true, report: { type: 'thread.ready' } });
  });

  it('accepts devserver.state, and refuses one with a state or port out of its range', () => {
    expect(parseAgentReport(JSON.stringify(devServer()))).toMatchObject({
      ok: true,
      report: { type: 'devserver.state', payload: { state: 'up', port: 3000 } },
    });
    expect(parseAgentReport(JSON.stringify(devServer({ state: 'down' })))).toMatchObject({
      ok: false,
      rejection: { field: 'payload.state' },
    });
    expect(parseAgentReport(JSON.stringify(devServer({ port: 70000 })))).toMatchObject({
      ok: false,
      rejection: { field: 'payload.port' },
    });
  });

  it.each([
    [
      {
        type: 'session.assign',
        commandId: 'c',
        payload: { sessionId: 's', clientId: 'a', projectId: 'b', userId: 'c' },
      },
    ],
    [{ type: 'container.stop', commandId: 'c', payload: { containerId: 'a.b.c' } }],
    [{ type: 'session.release', commandId: 'c', payload: { sessionId: 's' } }],
    [{ type: 'no.such', commandId: 'c', payload: {} }],
  ])('refuses a command that is not an agent report: %j', (body) => {
    const parsed = parseAgentReport(JSON.stringify(body));
    expect(parsed.ok).toBe(false);
    if (parsed.ok) return;
    expect(parsed.rejection.field).toBe('type');
    expect(parsed.rejection.reason).toMatch(/thread\.ready, checkpoint\.record, devserver\.state/);
  });
});

describe('senderSessionName and taskIdOf', () => {
  it('read the role session name of a SenderId and the id of a task ARN', () => {
    expect(senderSessionName(senderOf(TASK_ID))).toBe(TASK_ID);
    expect(senderSessionName('000000000000')).toBeUndefined();
    expect(senderSessionName('AIDAEXAMPLEUSER')).toBeUndefined();
    expect(senderSessionName(undefined)).toBeUndefined();
    expect(taskIdOf(TASK_ARN)).toBe(TASK_ID);
    expect(taskIdOf(`arn:aws:ecs:us-east-1:123456789012:task/${TASK_ID}`)).toBe(TASK_ID);
    expect(taskIdOf(null)).toBeUndefined();
  });
});

describe('checkAgentReport', () => {
  const check = (input: Partial<Parameters<typeof checkAgentReport>[0]> = {}) =>
    checkAgentReport({
      report: ready(),
      container: container(),
      session,
      senderId: senderOf(TASK_ID),
      senderCheck: 'task',
      ...input,
    });

  it('accepts a report from the task of the record it names', () => {
    expect(check()).toEqual({ ok: true });
  });

  it('refuses a report sent by another task (crafted SenderId)', () => {
    expect(check({ senderId: senderOf('ffffffffffffffffffffffffffffffff') })).toEqual({
      ok: false,
      reason: 'wrong_sender',
    });
    expect(check({ senderId: '000000000000' })).toEqual({ ok: false, reason: 'wrong_sender' });
    expect(check({ senderId: undefined })).toEqual({ ok: false, reason: 'wrong_sender' });
    expect(check({ container: container({ taskArn: null }) })).toEqual({
      ok: false,
      reason: 'wrong_sender',
    });
  });

  it('does not look at the sender with the check off', () => {
    expect(check({ senderId: '000000000000', senderCheck: 'off' })).toEqual({ ok: true });
  });

  it('refuses a report that does not match the store', () => {
    expect(check({ container: undefined })).toMatchObject({ reason: 'unknown_container' });
    expect(check({ report: ready({ generation: 2 }) })).toMatchObject({
      reason: 'stale_generation',
    });
    expect(check({ container: container({ status: 'stopped' }) })).toMatchObject({
      reason: 'container_not_live',
    });
    expect(check({ session: undefined })).toMatchObject({ reason: 'foreign_session' });
    expect(check({ session: { ...session, containerId: 'acme.web.bob' } })).toMatchObject({
      reason: 'foreign_session',
    });
    expect(check({ session: { ...session, generation: 2 } })).toMatchObject({
      reason: 'foreign_session',
    });
    expect(check({ session: { ...session, threadId: 'other' } })).toMatchObject({
      reason: 'foreign_session',
    });
  });

  it('checks a dev server report against its container alone: it names no session', () => {
    expect(check({ report: devServer(), session: undefined })).toEqual({ ok: true });
    expect(check({ report: devServer({ generation: 2 }), session: undefined })).toMatchObject({
      reason: 'stale_generation',
    });
    expect(
      check({
        report: devServer(),
        session: undefined,
        container: container({ status: 'failed' }),
      }),
    ).toMatchObject({ reason: 'container_not_live' });
    expect(
      check({ report: devServer(), session: undefined, senderId: senderOf('f'.repeat(32)) }),
    ).toMatchObject({ reason: 'wrong_sender' });
  });
});
