/**
 * A generation is final only once its task is known to have ended (issue 12, case 9): a
 * record closed while its task may still run must not let the next generation start on the
 * same workspace. Over the real DynamoDB Local store, with FakeRuntime's task log as the
 * witness of which tasks are alive.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { containerIdOf, type ContainerKey } from '@berth/domain';
import type { DynamoStateStore } from '@berth/dynamodb';
import type { HandleOutcome } from '@berth/messaging';
import { FakeQueues, ManualClock, RecordingPublisher } from '@berth/testing';
import { randomUUID } from 'node:crypto';
import { assignBody, dynamoStore, sessionService, taskEvent } from './support.ts';

let store: DynamoStateStore;
let client: DynamoDBClient;

beforeAll(async () => {
  ({ store, client } = await dynamoStore('session-generations'));
}, 120_000);

afterAll(() => client?.destroy());

describe('the next generation waits for the previous task', () => {
  it('starts no generation 2 while the task of a record closed for lost queues still runs', async () => {
    // Prepare: a running container whose record lost its queue URLs while its task runs on
    const publisher = new RecordingPublisher();
    const clock = new ManualClock();
    const service = sessionService({ store, queues: new FakeQueues(), publisher, clock });
    const key: ContainerKey = {
      clientId: `g${randomUUID().slice(0, 8)}`,
      projectId: 'w',
      userId: 'a',
    };
    const containerId = containerIdOf(key);
    const liveTasks = () =>
      service.runtime.liveTasks().filter((t) => t.containerId === containerId);
    let mostAlive = 0;
    let messages = 0;
    const deliver = async (body: object): Promise<HandleOutcome> => {
      const messageId = `m${(messages += 1)}`;
      let outcome: HandleOutcome = 'retry';
      for (let receiveCount = 1; receiveCount <= 5 && outcome !== 'done'; receiveCount += 1) {
        outcome = await service.handle({ body: JSON.stringify(body), messageId, receiveCount });
        mostAlive = Math.max(mostAlive, liveTasks().length);
      }
      return outcome;
    };
    expect(await deliver(assignBody('s1', key))).toBe('done');
    const first = await store.getContainer(containerId);
    await taskEvent(service, first?.taskArn ?? '', 'RUNNING');
    const running = await store.getContainer(containerId);
    if (!running) throw new Error('no record');
    await store.write({
      containers: [
        {
          record: {
            ...running,
            inputQueueUrl: null,
            outputQueueUrl: null,
            version: running.version + 1,
          },
          expect: { kind: 'version', version: running.version },
        },
      ],
    });

    // Act: a new session arrives; then the old task ends (the reaper's reconciliation stops
    // the task of a closed record) and the session is delivered again
    const whileAlive = await deliver(assignBody('s2', key, 'assign-s2'));
    const recordWhileAlive = await store.getContainer(containerId);
    await service.useCases.reaper.reconcile();
    const stopped = liveTasks().map((t) => t.lastStatus);
    await taskEvent(service, first?.taskArn ?? '', 'STOPPED');
    const afterwards = await deliver(assignBody('s2', key, 'assign-s2'));

    // Assess: never two tasks of one containerId alive at once
    expect(mostAlive).toBe(1);
    expect(whileAlive).toBe('retry');
    // The record says the truth meanwhile: stopping (not final) while its task still runs
    expect(recordWhileAlive).toMatchObject({
      generation: 1,
      status: 'terminating',
      stopReason: 'lost:it has no queues',
    });
    expect(stopped).toEqual(['STOPPING']);
    expect(afterwards).toBe('done');
    expect(await store.getContainer(containerId)).toMatchObject({
      generation: 2,
      sessions: ['s2'],
    });
    expect(liveTasks().map((t) => t.generation)).toEqual([2]);
    // Generation 1 ended once its task had: stopped, for the lost queues
    expect(
      publisher.events
        .filter((event) => event.eventId === `${containerId}#1/container.stopped`)
        .map((event) => (event.payload as { container: { stopReason: string } }).container),
    ).toEqual([
      expect.objectContaining({ status: 'stopped', stopReason: 'lost:it has no queues' }),
    ]);
  });
});
