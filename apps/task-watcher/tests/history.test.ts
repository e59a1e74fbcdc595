import { LifecycleHistory } from '@berth/core';
import {
  InvalidArgumentError,
  UnavailableError,
  makeEvent,
  type BerthEvent,
  type HistoryStore,
} from '@berth/domain';
import { createHistoryHandler } from '../src/history.ts';

const log = { info: () => {}, warn: () => {}, error: () => {} };
const NOW = Date.parse('2026-03-10T12:00:00.000Z');

/** The handler's logic only: the store is DynamoDB's in libs/adapters/dynamodb/tests/history.test.ts. */
function world(failure?: Error) {
  const kept = new Map<string, BerthEvent>();
  const store: HistoryStore = {
    record: (event) => {
      if (failure) return Promise.reject(failure);
      if (kept.has(event.eventId)) return Promise.resolve('duplicate');
      kept.set(event.eventId, event);
      return Promise.resolve('stored');
    },
    list: () => Promise.resolve({ items: [...kept.values()], nextCursor: null }),
    usageEvents: () => Promise.resolve([...kept.values()]),
    usageRollup: () => Promise.resolve([]),
  };
  const metrics: Array<[string, number, string]> = [];
  const history = new LifecycleHistory({
    store,
    clock: { now: () => new Date(NOW) },
    retentionMs: 86_400_000,
    metricClients: ['acme'],
    usageMetric: (name, value, client) => metrics.push([name, value, client]),
  });
  const errors: number[] = [];
  const handle = createHistoryHandler(history, log, () => errors.push(1));
  return { kept, metrics, errors, handle };
}

const assigned = (clientId: string, occurredAt = NOW - 60_000) =>
  makeEvent({
    type: 'session.assigned',
    cause: `session/s-${clientId}`,
    occurredAt: new Date(occurredAt).toISOString(),
    containerId: `${clientId}.site.ann`,
    sessionId: `s-${clientId}`,
    payload: { containerId: `${clientId}.site.ann` },
  });

describe('task-watcher history handler', () => {
  it('keeps an event once and counts its usage metric once, however often it arrives', async () => {
    // Prepare
    const { handle, kept, metrics } = world();
    const body = JSON.stringify(assigned('acme'));

    // Act
    const outcomes = [
      await handle({ body, messageId: 'm1' }),
      await handle({ body, messageId: 'm2' }),
    ];

    // Assess
    expect(outcomes).toEqual(['done', 'done']);
    expect([...kept.keys()]).toEqual(['session/s-acme/session.assigned']);
    expect(metrics).toEqual([['SessionsAssigned', 1, 'acme']]);
  });

  it("names a client outside BERTH_USAGE_METRIC_CLIENTS 'other', and keeps no event past its retention", async () => {
    // Prepare
    const { handle, kept, metrics } = world();

    // Act
    await handle({ body: JSON.stringify(assigned('globex')), messageId: 'm1' });
    await handle({ body: JSON.stringify(assigned('old', NOW - 2 * 86_400_000)), messageId: 'm2' });

    // Assess
    expect(metrics).toEqual([['SessionsAssigned', 1, 'other']]);
    expect([...kept.keys()]).toEqual(['session/s-globex/session.assigned']);
  });

  it("counts a generation's hours when its stop is first kept", async () => {
    // Prepare
    const { handle, metrics } = world();
    const stopped = makeEvent({
      type: 'container.stopped',
      cause: 'acme.site.ann#3',
      occurredAt: new Date(NOW - 60_000).toISOString(),
      containerId: 'acme.site.ann',
      payload: {
        container: {
          containerId: 'acme.site.ann',
          clientId: 'acme',
          projectId: 'site',
          userId: 'ann',
          generation: 3,
          status: 'stopped',
          createdAt: new Date(NOW - 90 * 60_000).toISOString(),
          stoppedAt: new Date(NOW - 60_000).toISOString(),
        },
      },
    });

    // Act
    await handle({ body: JSON.stringify(stopped), messageId: 'm1' });
    await handle({ body: JSON.stringify(stopped), messageId: 'm2' });

    // Assess: 89 minutes, once.
    expect(metrics).toEqual([['ContainerHours', 89 / 60, 'acme']]);
  });

  it.each(['not json', '{}', JSON.stringify({ type: 'container.bogus', eventId: 'x' })])(
    'drops %s without retrying it',
    async (body) => {
      const { handle, kept, errors } = world();
      expect(await handle({ body, messageId: 'm1' })).toBe('done');
      expect(kept.size).toBe(0);
      expect(errors).toEqual([]);
    },
  );

  it('retries when the store is unavailable, and drops what the store refuses for good', async () => {
    // Prepare
    const body = JSON.stringify(assigned('acme'));
    const unavailable = world(new UnavailableError('DynamoDB is down'));
    const refused = world(new InvalidArgumentError('bad item'));

    // Act
    const outcomes = [
      await unavailable.handle({ body, messageId: 'm1' }),
      await refused.handle({ body, messageId: 'm2' }),
    ];

    // Assess
    expect(outcomes).toEqual(['retry', 'done']);
    expect(unavailable.errors).toEqual([1]);
    expect(refused.errors).toEqual([1]);
  });
});
