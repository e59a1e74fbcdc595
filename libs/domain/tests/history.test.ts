import {
  InvalidArgumentError,
  generationsOf,
  loadConfig,
  makeEvent,
  parseDay,
  parseEventTypeFilter,
  usageContributions,
  usageOf,
  type BerthEvent,
  type EventType,
} from '../src/index.ts';

const HOUR = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();
const MIDNIGHT = Date.parse('2026-03-10T00:00:00.000Z');

function containerEvent(
  type: EventType,
  at: number,
  generation: { createdAt: number; stoppedAt?: number; stopReason?: string; number?: number },
  containerId = 'acme.site.john',
): BerthEvent {
  const [clientId, projectId, userId] = containerId.split('.');
  return makeEvent({
    type,
    cause: `${containerId}#${generation.number ?? 1}`,
    occurredAt: iso(at),
    containerId,
    payload: {
      container: {
        containerId,
        clientId,
        projectId,
        userId,
        generation: generation.number ?? 1,
        status: type === 'container.stopped' ? 'stopped' : 'running',
        createdAt: iso(generation.createdAt),
        startedAt: iso(generation.createdAt),
        stoppedAt:
          type === 'container.stopped' && generation.stoppedAt ? iso(generation.stoppedAt) : null,
        stopReason: generation.stopReason ?? null,
      },
    },
  });
}

describe('parseEventTypeFilter', () => {
  it('accepts a type or a family, and refuses anything else naming the field', () => {
    expect(parseEventTypeFilter('container.stopped')).toEqual({ exact: 'container.stopped' });
    expect(parseEventTypeFilter('session.*')).toEqual({ prefix: 'session.' });
    for (const bad of ['container', 'pool.*', '*', 'container.stoped', 'container.**']) {
      expect(() => parseEventTypeFilter(bad)).toThrow(InvalidArgumentError);
    }
  });
});

describe('parseDay', () => {
  it('accepts calendar days only', () => {
    expect(parseDay('2026-02-28', 'from')).toBe('2026-02-28');
    expect(() => parseDay('2026-02-30', 'to')).toThrow(/to is not a day/);
    expect(() => parseDay('2026-2-3', 'from')).toThrow(/from must be a day/);
  });
});

describe('usageOf', () => {
  it('splits a generation at midnight UTC and counts it once however often its events repeat', () => {
    // Prepare: 22:00 to 03:00 across midnight, its stop delivered twice.
    const generation = {
      createdAt: MIDNIGHT - 2 * HOUR,
      stoppedAt: MIDNIGHT + 3 * HOUR,
      stopReason: 'idle',
    };
    const stopped = containerEvent('container.stopped', generation.stoppedAt, generation);
    const events = [
      containerEvent('container.created', generation.createdAt, generation),
      stopped,
      stopped,
    ];

    // Act
    const rows = usageOf(events, '2026-03-09', '2026-03-10', MIDNIGHT + 12 * HOUR);

    // Assess
    expect(rows.map((row) => [row.day, row.containerHours, row.generations])).toEqual([
      ['2026-03-09', 2, 1],
      ['2026-03-10', 3, 0],
    ]);
  });

  it('counts a live generation up to now, and nothing outside the days asked', () => {
    // Prepare
    const live = { createdAt: MIDNIGHT - 5 * HOUR };
    const events = [containerEvent('container.running', live.createdAt, live)];

    // Act
    const today = usageOf(events, '2026-03-10', '2026-03-10', MIDNIGHT + 90 * 60_000);

    // Assess
    expect(today).toEqual([
      {
        clientId: 'acme',
        projectId: 'site',
        day: '2026-03-10',
        containerHours: 1.5,
        sessions: 0,
        generations: 0,
      },
    ]);
  });
});

describe('generationsOf', () => {
  it('tells the newest generation first, with its stop reason and duration', () => {
    // Prepare
    const first = { createdAt: 0, stoppedAt: HOUR, stopReason: 'idle', number: 1 };
    const second = { createdAt: 2 * HOUR, number: 2 };

    // Act
    const generations = generationsOf([
      containerEvent('container.stopped', first.stoppedAt, first),
      containerEvent('container.created', first.createdAt, first),
      containerEvent('container.running', second.createdAt, second),
    ]);

    // Assess
    expect(generations.map((g) => [g.generation, g.durationSeconds, g.stoppedBy])).toEqual([
      [2, null, null],
      [1, 3600, { commandId: null, reason: 'idle' }],
    ]);
    expect(generations[1]?.events.map((e) => e.type)).toEqual([
      'container.created',
      'container.stopped',
    ]);
  });
});

describe('history configuration', () => {
  it('keeps 7 days by default and reads the metric clients, refusing a bad one by name', () => {
    const defaults = loadConfig({});
    expect(defaults.historyRetentionMs).toBe(7 * 24 * HOUR);
    expect(defaults.historyTable).toBe('berth-history');
    expect(defaults.usageMetricClients).toEqual([]);
    expect(loadConfig({ BERTH_USAGE_METRIC_CLIENTS: 'acme, globex' }).usageMetricClients).toEqual([
      'acme',
      'globex',
    ]);
    expect(() => loadConfig({ BERTH_USAGE_METRIC_CLIENTS: 'acme,Bad_Id' })).toThrow(
      /BERTH_USAGE_METRIC_CLIENTS/,
    );
    expect(() => loadConfig({ BERTH_HISTORY_RETENTION: '7 days' })).toThrow(
      /BERTH_HISTORY_RETENTION/,
    );
  });
});

describe('usageContributions', () => {
  it('adds a generation when created, a session when assigned, and the hours per day when final', () => {
    // Prepare
    const generation = { createdAt: MIDNIGHT - HOUR, stoppedAt: MIDNIGHT + 2 * HOUR };
    const session = makeEvent({
      type: 'session.assigned',
      cause: 'session/s1',
      occurredAt: iso(MIDNIGHT + HOUR),
      containerId: 'acme.site.john',
      sessionId: 's1',
      payload: { containerId: 'acme.site.john' },
    });

    // Act
    const created = usageContributions(
      containerEvent('container.created', generation.createdAt, generation),
    );
    const assigned = usageContributions(session);
    const stopped = usageContributions(
      containerEvent('container.stopped', generation.stoppedAt, generation),
    );
    const running = usageContributions(
      containerEvent('container.running', generation.createdAt, generation),
    );

    // Assess
    const where = { clientId: 'acme', projectId: 'site' };
    expect(created).toEqual([{ ...where, day: '2026-03-09', generations: 1 }]);
    expect(assigned).toEqual([{ ...where, day: '2026-03-10', sessions: 1 }]);
    expect(stopped).toEqual([
      { ...where, day: '2026-03-09', containerMs: HOUR },
      { ...where, day: '2026-03-10', containerMs: 2 * HOUR },
    ]);
    expect(running).toEqual([]);
  });
});
