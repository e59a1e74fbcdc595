import {
  EventSchema,
  containerCause,
  containerEvent,
  eventIdFor,
  makeEvent,
  newContainerRecord,
  toContainerJson,
  validator,
} from '../src/index.ts';

const T0 = '2026-01-01T00:00:00.000Z';
const T1 = '2026-01-01T00:05:00.000Z';
const record = (generation: number) =>
  newContainerRecord(
    { clientId: 'acme', projectId: 'web', userId: 'john', containerId: 'acme.web.john' },
    generation,
    T0,
  );
const json = (generation: number) => toContainerJson(record(generation), { idleTimeoutMs: 60_000 });
const events = validator(EventSchema);

describe('event ids', () => {
  it('are the same for the same cause and type, whenever they are made', () => {
    // Act
    const first = containerEvent('container.created', record(1), json(1), T0);
    const again = containerEvent('container.created', record(1), json(1), T1);

    // Assess
    expect(again.eventId).toBe(first.eventId);
  });

  it('differ between generations and between types', () => {
    const ids = new Set([
      containerEvent('container.created', record(1), json(1), T0).eventId,
      containerEvent('container.created', record(2), json(2), T0).eventId,
      containerEvent('container.running', record(1), json(1), T0).eventId,
    ]);
    expect(ids.size).toBe(3);
  });

  it('are derived from the cause alone', () => {
    // Prepare
    const input = { type: 'session.assigned' as const, cause: 'session/s1', occurredAt: T0 };

    // Act
    const a = makeEvent({ ...input, commandId: 'c1', payload: { sessionCount: 1 } });
    const b = makeEvent({
      ...input,
      occurredAt: T1,
      commandId: 'c2',
      payload: { sessionCount: 2 },
    });

    // Assess
    expect(a.eventId).toBe(b.eventId);
    expect(a.eventId).toBe(eventIdFor('session/s1', 'session.assigned'));
  });

  it('name the container and its generation in a container cause', () => {
    expect(containerCause(record(3))).toBe('acme.web.john#3');
  });
});

describe('event shape', () => {
  it('leaves out absent ids and matches the schema', () => {
    // Act
    const event = makeEvent({
      type: 'command.rejected',
      cause: 'command/m1',
      occurredAt: T0,
      containerId: null,
      sessionId: null,
    });

    // Assess
    expect(event).toEqual({
      type: 'command.rejected',
      eventId: 'command/m1/command.rejected',
      occurredAt: T0,
      payload: {},
    });
    expect(events.check(event)).toBe(true);
  });

  it('carries the container as JSON in container events', () => {
    const event = containerEvent('container.stopped', record(1), json(1), T0, { commandId: 'c9' });
    expect(event).toMatchObject({
      containerId: 'acme.web.john',
      commandId: 'c9',
      payload: { container: json(1) },
    });
    expect(events.check(event)).toBe(true);
  });
});
