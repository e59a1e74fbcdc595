/**
 * Session endings that no command retries (an expiry, the sessions of a container that ended)
 * are published at least once, and a container's queues are deleted whatever happens to them
 * (issue 12, cases 8 and 10), over the real DynamoDB Local store.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  containerIdOf,
  type ContainerKey,
  type SessionRecord,
  type StateStore,
} from '@berth/domain';
import type { DynamoStateStore } from '@berth/dynamodb';
import { FakeQueues, ManualClock, RecordingPublisher } from '@berth/testing';
import { randomUUID } from 'node:crypto';
import { assignBody, deliverTaskEvent, dynamoStore, sessionService, taskEvent } from './support.ts';

const clients: DynamoDBClient[] = [];

afterAll(() => {
  for (const client of clients) client.destroy();
});

/**
 * A container with one session, running, on tables of its own (the reaper's sweep then sees
 * this test's records only). `lag` wraps the store as the test needs.
 */
async function world(lag: (store: DynamoStateStore) => StateStore = (store) => store) {
  const { store, client } = await dynamoStore('session-endings');
  clients.push(client);
  const publisher = new RecordingPublisher();
  const clock = new ManualClock();
  const queues = new FakeQueues();
  const service = sessionService({ store: lag(store), queues, publisher, clock });
  const key: ContainerKey = {
    clientId: `e${randomUUID().slice(0, 8)}`,
    projectId: 'web',
    userId: 'ann',
  };
  const containerId = containerIdOf(key);
  const sessionId = `s-${key.clientId}`;
  expect(
    await service.handle({
      body: JSON.stringify(assignBody(sessionId, key)),
      messageId: `m-${key.clientId}`,
      receiveCount: 1,
    }),
  ).toBe('done');
  const container = await store.getContainer(containerId);
  await taskEvent(service, container?.taskArn ?? '', 'RUNNING');
  const eventIds = () => publisher.events.map((event) => event.eventId);
  return { store, publisher, clock, queues, service, containerId, sessionId, container, eventIds };
}

describe('session endings outside the command path', () => {
  it("publishes a session's expiry whose first publish failed", async () => {
    // Prepare: a session past BERTH_SESSION_TTL, and a bus that refuses its expiry once
    const { store, publisher, clock, service, sessionId, eventIds } = await world();
    clock.advance('3h');
    publisher.failNextOf('session.expired', 1);

    // Act: the reaper's sweep expires it (and sweeps what failed)
    await service.useCases.reaper.sweep();

    // Assess: expired, announced, and nothing left in its outbox
    expect(eventIds()).toContain(`session/${sessionId}/session.expired`);
    const stored: SessionRecord | undefined = await store.getSession(sessionId);
    expect(stored).toMatchObject({ status: 'expired' });
    expect(stored?.pendingEvents).toBeUndefined();
  });

  it('publishes the ending of a crashed container’s session at the sweep, with no task event delivered again', async () => {
    // Prepare: the bus refuses the session's ending once
    const { store, publisher, clock, service, container, sessionId, eventIds } = await world();
    publisher.failNextOf('session.released', 1);
    const crash = service.runtime.change(container?.taskArn ?? '', {
      lastStatus: 'STOPPED',
      exitCode: 1,
    });

    // Act: the task event is handled once (its redelivery never comes), then the reaper sweeps
    await service.useCases.taskEvents.handle(crash).catch(() => undefined);
    clock.advance('1m');
    await service.useCases.reaper.sweep();

    // Assess
    expect(await store.getSession(sessionId)).toMatchObject({ status: 'released' });
    expect(eventIds()).toContain(`session/${sessionId}/session.released`);
  });

  it("deletes a crashed container's queues although publishing its sessions' endings failed", async () => {
    // Prepare
    const { publisher, queues, service, container } = await world();
    publisher.failNextOf('session.released', 5);
    const crash = service.runtime.change(container?.taskArn ?? '', {
      lastStatus: 'STOPPED',
      exitCode: 1,
    });

    // Act: one handling of the task event, whose session publish fails
    await service.useCases.taskEvents.handle(crash).catch(() => undefined);

    // Assess
    expect(queues.deleted).toContainEqual({
      inputQueueUrl: container?.inputQueueUrl,
      outputQueueUrl: container?.outputQueueUrl,
    });
  });

  it('ends a session assigned just before its container crashed, although the container index had not caught up', async () => {
    // Prepare: the container index lags behind its table, as a GSI may; everything else is
    // DynamoDB Local's
    const lagging = (store: DynamoStateStore): StateStore =>
      new Proxy(store, {
        get(target, property, receiver) {
          if (property === 'listSessionsByContainer') return () => Promise.resolve([]);
          const value: unknown = Reflect.get(target, property, receiver);
          return typeof value === 'function' ? (value as () => unknown).bind(target) : value;
        },
      });
    const { store, service, container, sessionId, eventIds } = await world(lagging);

    // Act: the task crashes
    await deliverTaskEvent(
      service,
      service.runtime.change(container?.taskArn ?? '', { lastStatus: 'STOPPED', exitCode: 1 }),
    );

    // Assess
    expect(await store.getContainer(container?.containerId ?? '')).toMatchObject({
      status: 'failed',
    });
    expect(await store.getSession(sessionId)).toMatchObject({ status: 'released' });
    expect(eventIds()).toContain(`session/${sessionId}/session.released`);
  });
});
