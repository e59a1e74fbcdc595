/**
 * A command's outcome is decided once (issue 12, case 7): however often and whenever SQS
 * delivers a `session.assign` again, it answers what it answered the first time, with the same
 * event (same id, same content), over the real DynamoDB Local store.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { containerIdOf, type BerthEvent, type ContainerKey } from '@berth/domain';
import type { DynamoStateStore } from '@berth/dynamodb';
import type { HandleOutcome } from '@berth/messaging';
import { FakeQueues, ManualClock, RecordingPublisher } from '@berth/testing';
import { randomUUID } from 'node:crypto';
import {
  assignBody,
  dynamoStore,
  releaseBody,
  sessionService,
  stopBody,
  taskEvent,
} from './support.ts';

let store: DynamoStateStore;
let client: DynamoDBClient;

beforeAll(async () => {
  ({ store, client } = await dynamoStore('session-outcomes'));
}, 120_000);

afterAll(() => client?.destroy());

function world(maxSessions: number) {
  const publisher = new RecordingPublisher();
  const clock = new ManualClock();
  const service = sessionService({
    store,
    queues: new FakeQueues(),
    publisher,
    clock,
    maxSessions,
  });
  const key: ContainerKey = {
    clientId: `o${randomUUID().slice(0, 8)}`,
    projectId: 'web',
    userId: 'ann',
  };
  let messages = 0;
  const receive = (body: object, messageId: string, receiveCount: number): Promise<HandleOutcome> =>
    service
      .handle({ body: JSON.stringify(body), messageId, receiveCount })
      .catch((): HandleOutcome => 'retry');
  /** One message, delivered until it is done or SQS would move it to the dead-letter queue. */
  const deliver = async (body: object): Promise<HandleOutcome> => {
    const messageId = `m${(messages += 1)}`;
    let outcome: HandleOutcome = 'retry';
    for (let receiveCount = 1; receiveCount <= 5 && outcome !== 'done'; receiveCount += 1) {
      outcome = await receive(body, messageId, receiveCount);
    }
    return outcome;
  };
  /** The events a command caused, as published (duplicates included). */
  const eventsOf = (commandId: string): BerthEvent[] =>
    publisher.events.filter((event) => event.commandId === commandId);
  return { publisher, clock, service, key, containerId: containerIdOf(key), deliver, eventsOf };
}

describe('session.assign: one outcome per command', () => {
  it('repeats a capacity rejection on redelivery, although a slot freed in between', async () => {
    // Prepare: a full container (one session at most) and an assign it refused
    const { clock, service, key, containerId, deliver, eventsOf } = world(1);
    const first = `first-${key.clientId}`;
    const late = `late-${key.clientId}`;
    expect(await deliver(assignBody(first, key))).toBe('done');
    const { taskArn } = (await store.getContainer(containerId)) ?? {};
    await taskEvent(service, taskArn ?? '', 'RUNNING');
    const refused = assignBody(late, key, `refused-${key.clientId}`);
    expect(await deliver(refused)).toBe('done');
    const answered = eventsOf(refused.commandId);

    // Act: the first session leaves, then SQS delivers the refused assign again
    clock.advance('5s');
    expect(await deliver(releaseBody(first))).toBe('done');
    clock.advance('5s');
    expect(await deliver(refused)).toBe('done');

    // Assess: still refused, with the very same event; the freed slot stays free
    expect(answered).toEqual([
      expect.objectContaining({
        type: 'session.rejected',
        eventId: `command/${refused.commandId}/session.rejected`,
        payload: expect.objectContaining({ reason: 'capacity' }) as unknown,
      }),
    ]);
    expect(eventsOf(refused.commandId)).toEqual([...answered, ...answered]);
    expect(await store.getSession(late)).toBeUndefined();
    expect(await store.getContainer(containerId)).toMatchObject({ sessions: [] });
  });

  it('repeats only its assignment when an assign comes back after its session ended', async () => {
    // Prepare: an assign that was answered, and its session released since
    const { clock, key, deliver, eventsOf } = world(5);
    const sessionId = `s-${key.clientId}`;
    const assign = assignBody(sessionId, key, `assign-${key.clientId}`);
    expect(await deliver(assignBody(`other-${key.clientId}`, key))).toBe('done');
    expect(await deliver(assign)).toBe('done');
    const answered = eventsOf(assign.commandId);
    clock.advance('5s');
    expect(await deliver(releaseBody(sessionId))).toBe('done');

    // Act: SQS delivers the assign again
    clock.advance('5s');
    expect(await deliver(assign)).toBe('done');

    // Assess: assigned, announced again as it was, and not also rejected
    expect(answered.map((event) => event.type)).toEqual(['session.assigned']);
    expect(eventsOf(assign.commandId)).toEqual([...answered, ...answered]);
    expect(await store.getSession(sessionId)).toMatchObject({ status: 'released' });
  });

  it('decides once when two deliveries of one assign are handled at once', async () => {
    // Prepare: a running container with room
    const { service, key, containerId, deliver, eventsOf } = world(5);
    expect(await deliver(assignBody(`first-${key.clientId}`, key))).toBe('done');
    const { taskArn } = (await store.getContainer(containerId)) ?? {};
    await taskEvent(service, taskArn ?? '', 'RUNNING');
    const sessionId = `s-${key.clientId}`;
    const assign = assignBody(sessionId, key, `twice-${key.clientId}`);

    // Act: both deliveries at once, as SQS may after a visibility timeout
    const outcomes = await Promise.all([deliver(assign), deliver(assign)]);

    // Assess: one assignment, announced with one content
    expect(outcomes).toEqual(['done', 'done']);
    const events = eventsOf(assign.commandId);
    expect(new Set(events.map((event) => JSON.stringify(event))).size).toBe(1);
    expect(events[0]).toMatchObject({ type: 'session.assigned' });
    expect((await store.getContainer(containerId))?.sessions).toEqual([
      `first-${key.clientId}`,
      sessionId,
    ]);
  });
});

describe('container.stop: one outcome per command', () => {
  /** A running generation 1 with one session, stopped by `stop` and ended; then generation 2. */
  async function stoppedThenReplaced(generation: number | undefined) {
    const { publisher, clock, service, key, containerId, deliver, eventsOf } = world(5);
    expect(await deliver(assignBody(`first-${key.clientId}`, key))).toBe('done');
    const first = await store.getContainer(containerId);
    await taskEvent(service, first?.taskArn ?? '', 'RUNNING');
    const stop = stopBody(containerId, `stop-${key.clientId}`, 'user asked', generation);
    expect(await deliver(stop)).toBe('done');
    const answered = eventsOf(stop.commandId);
    await taskEvent(service, first?.taskArn ?? '', 'STOPPED');
    clock.advance('5s');
    expect(await deliver(assignBody(`second-${key.clientId}`, key))).toBe('done');
    const second = await store.getContainer(containerId);
    await taskEvent(service, second?.taskArn ?? '', 'RUNNING');
    return { publisher, containerId, stop, answered, deliver, eventsOf };
  }

  it.each([
    ['naming its generation', 1],
    ['naming no generation', undefined],
  ])(
    'repeats its stop when it comes back %s after that generation ended and the next began',
    async (_label, generation) => {
      // Prepare: the stop took effect, its generation ended, generation 2 runs
      const { publisher, containerId, stop, answered, deliver, eventsOf } =
        await stoppedThenReplaced(generation);
      const rejected = () =>
        publisher.events.filter(
          (event) => event.type === 'command.rejected' && event.commandId === stop.commandId,
        );

      // Act: SQS delivers the stop again
      expect(await deliver(stop)).toBe('done');

      // Assess: the same answer again (same id, same content), no refusal, and generation 2
      // is left running (before: a refusal naming the generation, or generation 2 stopped)
      expect(answered.map((event) => event.eventId)).toEqual([
        `${containerId}#1/container.terminating`,
      ]);
      expect(eventsOf(stop.commandId)).toEqual([...answered, ...answered]);
      expect(rejected()).toEqual([]);
      expect(await store.getContainer(containerId)).toMatchObject({
        generation: 2,
        status: 'running',
        stopReason: null,
      });
    },
  );

  it('refuses a command that reuses the commandId of another type, changing nothing', async () => {
    // Prepare: a running container and a stop that took effect
    const { publisher, containerId, stop, deliver } = await stoppedThenReplaced(1);
    const key = { clientId: containerId.split('.')[0] ?? '', projectId: 'web', userId: 'ann' };

    // Act: an assign with that stop's commandId
    expect(await deliver(assignBody(`reuser-${key.clientId}`, key, stop.commandId))).toBe('done');

    // Assess: answered with a refusal naming the field, and no session
    expect(
      publisher.events.filter(
        (event) => event.type === 'command.rejected' && event.commandId === stop.commandId,
      ),
    ).toEqual([
      expect.objectContaining({
        payload: expect.objectContaining({ field: 'commandId' }) as unknown,
      }),
    ]);
    expect(await store.getSession(`reuser-${key.clientId}`)).toBeUndefined();
  });
});
