/**
 * Gaps in @berth/core that the session service's tests found (see the report of issue 3),
 * each reduced to its shortest sequence of deliveries. They are `it.failing`: each asserts
 * what the contract promises, fails today, and turns red the day the core is fixed, as a
 * reminder to make it an ordinary test and to lift the matching allowance in
 * commands.model.test.ts.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { containerIdOf, newContainerRecord, type ContainerKey } from '@berth/domain';
import type { DynamoStateStore } from '@berth/dynamodb';
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
  ({ store, client } = await dynamoStore('session-gaps'));
}, 120_000);

afterAll(() => client?.destroy());

function world() {
  const publisher = new RecordingPublisher();
  const clock = new ManualClock();
  const service = sessionService({
    store,
    queues: new FakeQueues(),
    publisher,
    clock,
    maxSessions: 5,
  });
  const key: ContainerKey = {
    clientId: `g${randomUUID().slice(0, 8)}`,
    projectId: 'web',
    userId: 'ann',
  };
  let messages = 0;
  /** One delivery of a body; `receiveCount` only matters to the logs. */
  const deliver = (body: object) =>
    service
      .handle({ body: JSON.stringify(body), messageId: `m${(messages += 1)}`, receiveCount: 1 })
      .catch(() => 'retry' as const);
  return { publisher, clock, service, key, containerId: containerIdOf(key), deliver };
}

describe('known gaps in @berth/core', () => {
  it.failing(
    'publishes container.created on redelivery when the first publish failed (containers.ts provision)',
    async () => {
      // Prepare
      const { publisher, key, containerId, deliver } = world();
      const assign = assignBody('s1', key);
      publisher.failNext(1);

      // Act: the container is stored and started, its event fails; SQS delivers the assign again
      expect(await deliver(assign)).toBe('retry');
      expect(await deliver(assign)).toBe('done');

      // Assess
      expect(publisher.events.map((e) => e.eventId)).toContain(
        `${containerId}#1/container.created`,
      );
    },
  );

  it.failing(
    'publishes container.terminating and stops the task on redelivery when the first publish failed (containers.ts stop)',
    async () => {
      // Prepare
      const { publisher, service, key, containerId, deliver } = world();
      expect(await deliver(assignBody(`s-${key.clientId}`, key))).toBe('done');
      const { taskArn } = (await store.getContainer(containerId)) ?? {};
      await taskEvent(service, taskArn ?? '', 'RUNNING');
      const stop = stopBody(containerId);
      publisher.failNext(1);

      // Act
      expect(await deliver(stop)).toBe('retry');
      expect(await deliver(stop)).toBe('done');

      // Assess
      expect(await store.getContainer(containerId)).toMatchObject({ status: 'terminating' });
      expect(publisher.events.map((e) => e.eventId)).toContain(
        `${containerId}#1/container.terminating`,
      );
      expect(service.runtime.stopCalls.map((c) => c.taskArn)).toContain(taskArn);
    },
  );

  it.failing(
    'never loses session.assigned when the assign is redelivered only after the session ended (sessions.ts assignAgain)',
    async () => {
      // Prepare: the container exists, so the assign's only publish is session.assigned
      const { publisher, key, deliver } = world();
      expect(await deliver(assignBody(`first-${key.clientId}`, key))).toBe('done');
      const sessionId = `s-${key.clientId}`;
      const assign = assignBody(sessionId, key);
      publisher.failNext(1);

      // Act: stored, not announced; released; then the assign comes back
      expect(await deliver(assign)).toBe('retry');
      expect(await store.getSession(sessionId)).toMatchObject({ status: 'active' });
      expect(await deliver(releaseBody(sessionId))).toBe('done');
      expect(await deliver(assign)).toBe('done');

      // Assess: the stored assignment was announced at some point, under its own id
      expect(publisher.events.map((e) => e.eventId)).toContain(
        `session/${sessionId}/session.assigned`,
      );
    },
  );

  it.failing(
    'announces session.released for the sessions of a failed container even if the first publish failed (containers.ts repairFinal / sessions.ts endSessionsOf)',
    async () => {
      // Prepare
      const { publisher, service, key, containerId, deliver } = world();
      const sessionId = `s-${key.clientId}`;
      expect(await deliver(assignBody(sessionId, key))).toBe('done');
      const { taskArn } = (await store.getContainer(containerId)) ?? {};
      publisher.failNext(1);

      // Act: the task dies while starting; the first handling of its event fails to publish and
      // the task watcher's queue delivers the event again
      await taskEvent(service, taskArn ?? '', 'STOPPED');

      // Assess
      expect(await store.getContainer(containerId)).toMatchObject({ status: 'failed' });
      expect(await store.getSession(sessionId)).toMatchObject({ status: 'released' });
      expect(publisher.events.map((e) => e.eventId)).toContain(
        `session/${sessionId}/session.released`,
      );
    },
  );

  it.failing(
    'takes over the provisioning of a container whose starter died before it had queues (containers.ts awaitProvisioned)',
    async () => {
      // Prepare: what a session service killed between the conditional create and the
      // provisioning leaves behind: a `starting` record without task or queues, an hour old
      const { publisher, clock, service, key, containerId, deliver } = world();
      const createdAt = new Date(clock.now().getTime() - 3_600_000).toISOString();
      await store.write({
        containers: [
          {
            record: {
              ...newContainerRecord({ ...key, containerId }, 1, createdAt),
              workspacePath: `/workspaces/${containerId}`,
            },
            expect: { kind: 'new-generation', previousGeneration: null },
          },
        ],
      });
      const sessionId = `s-${key.clientId}`;

      // Act: today each delivery waits 10 s for queues that never come and answers retry,
      // so after 5 receives the command is in the dead-letter queue
      const outcome = await deliver(assignBody(sessionId, key));

      // Assess
      expect(outcome).toBe('done');
      expect(publisher.events.map((e) => e.eventId)).toContain(
        `session/${sessionId}/session.assigned`,
      );
      expect(service.runtime.liveTasks().filter((t) => t.containerId === containerId)).toHaveLength(
        1,
      );
    },
    60_000,
  );

  it.failing(
    'starts no new generation while the task of a container stopped during its start is still stopping (containers.ts stop/findOrStart)',
    async () => {
      // Prepare: a container whose task has not reported RUNNING yet, with a session
      const { service, key, containerId, deliver } = world();
      expect(await deliver(assignBody(`s1-${key.clientId}`, key))).toBe('done');
      expect(await deliver(stopBody(containerId))).toBe('done');
      expect(await store.getContainer(containerId)).toMatchObject({
        status: 'failed',
        generation: 1,
      });

      // Act: the next session arrives while the old task is still saving and stopping
      await deliver(assignBody(`s2-${key.clientId}`, key));

      // Assess: never two tasks of one containerId alive at once (both would write one workspace)
      const alive = service.runtime.liveTasks().filter((t) => t.containerId === containerId);
      expect(alive.map((t) => `${t.generation}:${t.lastStatus}`)).toHaveLength(1);
    },
  );
});
