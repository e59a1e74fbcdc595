import { jest } from '@jest/globals';
import { newContainerRecord, type ContainerRecord } from '@berth/domain';
import type { ServiceMetrics } from '@berth/platform';
import { InMemoryStateStore } from '@berth/testing';
import { emitGauges, ZERO_HEARTBEAT } from '../src/gauges.ts';

const T0 = '2026-01-01T00:00:00.000Z';

function container(userId: string, overrides: Partial<ContainerRecord>): ContainerRecord {
  return {
    ...newContainerRecord(
      { clientId: 'acme', projectId: 'web', userId, containerId: `acme.web.${userId}` },
      1,
      T0,
    ),
    ...overrides,
  };
}

function recordingMetrics() {
  const lines: {
    name: string;
    value: number | readonly number[];
    dimensions?: Record<string, string>;
  }[] = [];
  const metrics = {
    emf: (
      name: string,
      value: number | readonly number[],
      _unit?: string,
      dimensions?: Record<string, string>,
    ) => {
      lines.push({ name, value, ...(dimensions === undefined ? {} : { dimensions }) });
    },
  } as unknown as ServiceMetrics;
  return { lines, metrics };
}

describe('emitGauges', () => {
  it('counts every live status, samples each running container, and writes the trouble counters as 0', async () => {
    // Prepare
    const store = new InMemoryStateStore();
    store.seed({
      containers: [
        container('a', { status: 'running', sessions: ['s1', 's2'] }),
        container('b', { status: 'running', sessions: [] }),
        container('c', { status: 'running', sessions: ['s3'] }),
        container('d', { status: 'starting' }),
        container('e', { status: 'stopped' }),
        container('f', { status: 'failed' }),
      ],
    });
    const { lines, metrics } = recordingMetrics();

    // Act
    await emitGauges(store, metrics);

    // Assess
    expect(lines.filter((line) => line.name === 'ContainersByStatus')).toEqual([
      { name: 'ContainersByStatus', value: 1, dimensions: { Status: 'starting' } },
      { name: 'ContainersByStatus', value: 3, dimensions: { Status: 'running' } },
      { name: 'ContainersByStatus', value: 0, dimensions: { Status: 'terminating' } },
    ]);
    expect(lines.filter((line) => line.name === 'SessionsPerContainer')).toEqual([
      { name: 'SessionsPerContainer', value: [0, 1, 2] },
    ]);
    for (const counter of ZERO_HEARTBEAT) {
      expect(lines).toContainEqual({
        name: counter.name,
        value: 0,
        ...(counter.dimensions === undefined ? {} : { dimensions: counter.dimensions }),
      });
    }
  });

  it('reads the gauges through the status index, never by listing records', async () => {
    const store = new InMemoryStateStore();
    const list = jest.spyOn(store, 'listContainersByStatus');
    const gauges = jest.spyOn(store, 'containerGauges');
    await emitGauges(store, recordingMetrics().metrics);
    expect(list).not.toHaveBeenCalled();
    expect(gauges).toHaveBeenCalledWith(['starting', 'running', 'terminating']);
  });
});
