import { parseCommand, type RejectedCommand } from '../src/index.ts';

const assign = {
  type: 'session.assign',
  commandId: 'cmd-1',
  payload: { sessionId: 'sess-1', clientId: 'acme', projectId: 'web', userId: 'john' },
};

function rejection(body: unknown): RejectedCommand {
  const parsed = parseCommand(typeof body === 'string' ? body : JSON.stringify(body));
  if (parsed.ok) throw new Error(`accepted ${JSON.stringify(body)}`);
  return parsed.rejection;
}

describe('parseCommand accepts', () => {
  it.each([
    ['session.assign', assign.payload],
    ['session.assign', { ...assign.payload, threadId: 'slack:C01:1700000000.1' }],
    ['session.release', { sessionId: 'sess-1' }],
    ['session.touch', { sessionId: 'sess-1' }],
    ['container.stop', { containerId: 'acme.web.john' }],
    ['container.stop', { containerId: 'acme.web.john', reason: 'maintenance' }],
  ])('a valid %s', (type, payload) => {
    // Prepare
    const body = { type, commandId: 'cmd-1', payload };

    // Act
    const parsed = parseCommand(JSON.stringify(body));

    // Assess
    expect(parsed).toEqual({ ok: true, command: body });
  });
});

describe('parseCommand rejects', () => {
  it('a body that is not JSON', () => {
    expect(rejection('{"type": "session.assign",')).toEqual({ reason: 'body is not valid JSON' });
  });

  it.each(['[]', 'null', '"session.assign"', '42'])('a body that is not an object: %s', (body) => {
    expect(rejection(body)).toEqual({ reason: 'body must be a JSON object' });
  });

  it('a body without a type', () => {
    expect(rejection({ commandId: 'c', payload: {} })).toMatchObject({
      field: 'type',
      commandId: 'c',
    });
  });

  it('an unknown type, keeping the commandId for correlation', () => {
    expect(rejection({ ...assign, type: 'session.teleport' })).toMatchObject({
      field: 'type',
      type: 'session.teleport',
      commandId: 'cmd-1',
    });
  });

  it.each([
    ['clientId', 'payload.clientId'],
    ['projectId', 'payload.projectId'],
    ['userId', 'payload.userId'],
    ['sessionId', 'payload.sessionId'],
  ])('a missing %s, naming %s', (missing, field) => {
    // Prepare
    const payload: Record<string, unknown> = { ...assign.payload };
    delete payload[missing];

    // Act
    const result = rejection({ ...assign, payload });

    // Assess
    expect(result).toMatchObject({ field, commandId: 'cmd-1', type: 'session.assign' });
    expect(result.reason).toContain(field);
  });

  it.each([
    [{ ...assign, payload: { ...assign.payload, clientId: 'Acme' } }, 'payload.clientId'],
    [{ ...assign, payload: { ...assign.payload, userId: 'a.b' } }, 'payload.userId'],
    [{ ...assign, payload: { ...assign.payload, projectId: 7 } }, 'payload.projectId'],
    [{ ...assign, payload: { ...assign.payload, sessionId: 'has space' } }, 'payload.sessionId'],
    [{ ...assign, payload: { ...assign.payload, threadId: 'x'.repeat(129) } }, 'payload.threadId'],
    [{ ...assign, payload: { ...assign.payload, color: 'red' } }, 'payload.color'],
    [{ ...assign, payload: 'sess-1' }, 'payload'],
    [{ ...assign, extra: true }, 'extra'],
    [{ type: 'session.assign', payload: assign.payload }, 'commandId'],
    [{ ...assign, commandId: 'not valid!' }, 'commandId'],
    [{ type: 'session.release', commandId: 'c', payload: {} }, 'payload.sessionId'],
    [
      { type: 'session.touch', commandId: 'c', payload: { sessionId: 's', clientId: 'a' } },
      'payload.clientId',
    ],
    [
      { type: 'container.stop', commandId: 'c', payload: { containerId: 'acme-web-john' } },
      'payload.containerId',
    ],
    [
      { type: 'container.stop', commandId: 'c', payload: { containerId: 'a.b.c', reason: '' } },
      'payload.reason',
    ],
  ])('a bad field (%#), naming %s', (body, field) => {
    expect(rejection(body).field).toBe(field);
  });
});
