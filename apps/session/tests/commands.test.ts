/**
 * The session service's handler behind the real queue consumer, against fauxqs and DynamoDB
 * Local: commands go onto `berth-lifecycle-commands` (agent reports onto
 * `berth-agent-reports`, through the reports handler), events are read back from the
 * `berth-lifecycle-events` topic through a subscription, state from the real store. Only
 * the compute runtime is a fake (ECS has no local engine; FakeRuntime keeps its semantics).
 */
import { ReceiveMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  containerIdOf,
  systemClock,
  worktreePathFor,
  type BerthEvent,
  type ContainerKey,
} from '@berth/domain';
import { DynamoStateStore } from '@berth/dynamodb';
import {
  CommandSender,
  EventSubscription,
  SnsEventPublisher,
  SqsContainerQueues,
  createSnsClient,
  createSqsClient,
  ensureMessaging,
  startQueueConsumer,
  type HandleOutcome,
  type MessagingResources,
  type QueueConsumer,
  type QueueMessage,
} from '@berth/messaging';
import { EventEmitter, once } from 'node:events';
import { randomUUID } from 'node:crypto';
import {
  assignBody,
  dynamoStore,
  releaseBody,
  sessionService,
  stopBody,
  taskEvent,
  touchBody,
  type SessionServiceUnderTest,
} from './support.ts';

const MAX_SESSIONS = 2;

/** Every delivery the consumer handed to the handler, and what the handler answered. */
class Deliveries {
  readonly #byMessage = new Map<
    string,
    { receiveCount: number; outcome: HandleOutcome | 'threw'; body: string }[]
  >();
  readonly #changed = new EventEmitter();

  wrap(handle: (message: QueueMessage) => Promise<HandleOutcome>) {
    return async (message: QueueMessage): Promise<HandleOutcome> => {
      let outcome: HandleOutcome | 'threw' = 'threw';
      try {
        outcome = await handle(message);
        return outcome;
      } finally {
        const list = this.#byMessage.get(message.messageId) ?? [];
        list.push({ receiveCount: message.receiveCount, outcome, body: message.body });
        this.#byMessage.set(message.messageId, list);
        this.#changed.emit('delivery');
      }
    };
  }

  of(messageId: string) {
    return this.#byMessage.get(messageId) ?? [];
  }

  /** Resolves once `done(deliveries of messageId)` holds; the handler's own signal, no sleeping. */
  async until(
    messageId: string,
    done: (list: ReturnType<Deliveries['of']>) => boolean,
    timeoutMs = 30_000,
  ) {
    const deadline = AbortSignal.timeout(timeoutMs);
    while (!done(this.of(messageId))) {
      try {
        await once(this.#changed, 'delivery', { signal: deadline });
      } catch {
        throw new Error(
          `message ${messageId}: deliveries ${JSON.stringify(this.of(messageId))} after ${timeoutMs} ms`,
        );
      }
    }
    return this.of(messageId);
  }

  handledOnce(messageId: string, timeoutMs?: number) {
    return this.until(messageId, (list) => list.length > 0, timeoutMs);
  }
}

let dynamodb: DynamoDBClient;
let store: DynamoStateStore;
let tableNames: { containerTable: string; sessionTable: string };
let sqs: SQSClient;
let sns: SNSClient;
let messaging: MessagingResources;
let queues: SqsContainerQueues;
let service: SessionServiceUnderTest;
let consumer: QueueConsumer | undefined;
let reportsConsumer: QueueConsumer | undefined;
let reportSender: CommandSender;
let events: EventSubscription;
let sender: CommandSender;
const deliveries = new Deliveries();
const reportDeliveries = new Deliveries();

let keys = 0;
/** A container key no other test uses. */
const freshKey = (): ContainerKey => ({
  clientId: `c${Date.now().toString(36)}${(keys += 1)}`,
  projectId: 'web',
  userId: 'ann',
});

beforeAll(async () => {
  ({ store, client: dynamodb, names: tableNames } = await dynamoStore('session-it'));
  sqs = createSqsClient();
  sns = createSnsClient();
  messaging = await ensureMessaging({ sqs, sns });
  queues = new SqsContainerQueues({ sqs });
  service = sessionService({
    store,
    queues,
    publisher: new SnsEventPublisher({ sns, topicArn: messaging.topicArn }),
    clock: systemClock,
    maxSessions: MAX_SESSIONS,
  });
  events = await EventSubscription.open({ sqs, sns, topicArn: messaging.topicArn });
  sender = new CommandSender({ sqs, queueUrl: messaging.lifecycleCommandsUrl });
  consumer = startQueueConsumer({
    sqs,
    queueUrl: messaging.lifecycleCommandsUrl,
    batchSize: 10,
    concurrency: 8,
    visibilityTimeoutSeconds: 10,
    heartbeatIntervalSeconds: 4,
    // Short polls: stopping this consumer (for the dead-letter test) must not leave a long
    // poll behind that swallows the next message (see the messaging README).
    waitTimeSeconds: 1,
    handle: deliveries.wrap(service.handle),
    onError: () => {},
  });
  reportSender = new CommandSender({ sqs, queueUrl: messaging.agentReportsUrl });
  reportsConsumer = startQueueConsumer({
    sqs,
    queueUrl: messaging.agentReportsUrl,
    batchSize: 10,
    concurrency: 8,
    visibilityTimeoutSeconds: 10,
    heartbeatIntervalSeconds: 4,
    waitTimeSeconds: 1,
    handle: reportDeliveries.wrap(service.reports),
    onError: () => {},
  });
}, 120_000);

afterAll(async () => {
  await reportsConsumer?.stop();
  await consumer?.stop();
  await events?.close();
  sqs?.destroy();
  sns?.destroy();
  dynamodb?.destroy();
});

const send = (body: object | string) => sender.send(body);
/** What a workspace agent does: a report onto berth-agent-reports. */
const report = (body: object | string) => reportSender.send(body);

describe('session.assign', () => {
  it('starts the container, adds the session and announces it with containerId, sessionCount, reused and worktreePath', async () => {
    // Prepare
    const key = freshKey();
    const containerId = containerIdOf(key);
    const first = assignBody('sess-a1', { ...key }, randomUUID(), 'thread-1');
    const second = assignBody('sess-a2', { ...key });

    // Act
    await send(first);
    const assigned = await events.waitFor(
      { type: 'session.assigned', sessionId: 'sess-a1' },
      30_000,
    );
    await send(second);
    const assignedAgain = await events.waitFor(
      { type: 'session.assigned', sessionId: 'sess-a2' },
      30_000,
    );

    // Assess
    const workspacePath = `/workspaces/${containerId}`;
    expect(assigned).toMatchObject({
      eventId: 'session/sess-a1/session.assigned',
      commandId: first.commandId,
      containerId,
      sessionId: 'sess-a1',
      payload: {
        containerId,
        sessionCount: 1,
        reused: false,
        worktreePath: worktreePathFor(workspacePath, 'thread-1'),
      },
    });
    expect(assignedAgain.payload).toMatchObject({
      containerId,
      sessionCount: 2,
      reused: true,
      worktreePath: worktreePathFor(workspacePath, 'sess-a2'),
    });
    await events.waitFor({ type: 'container.created', containerId }, 10_000);
    const container = await store.getContainer(containerId);
    expect(container).toMatchObject({
      status: 'starting',
      generation: 1,
      sessions: ['sess-a1', 'sess-a2'],
      idleSince: null,
    });
    expect(
      service.runtime.startCalls.filter((spec) => spec.containerId === containerId),
    ).toHaveLength(1);
    const session = await store.getSession('sess-a1');
    expect(session).toMatchObject({
      status: 'active',
      containerId,
      generation: 1,
      threadId: 'thread-1',
      inputQueueUrl: container?.inputQueueUrl,
      worktreePath: worktreePathFor(workspacePath, 'thread-1'),
    });
    // The agent makes the worktree when it reads `thread.open` from its input queue.
    const received = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: container?.inputQueueUrl ?? '',
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 2,
      }),
    );
    const opened = (received.Messages ?? []).map(
      (m) => JSON.parse(m.Body ?? '{}') as Record<string, unknown>,
    );
    expect(opened).toContainEqual({
      type: 'thread.open',
      threadId: 'thread-1',
      sessionId: 'sess-a1',
    });
  });

  it('applies the same assign once however often it arrives, and announces it under one eventId', async () => {
    // Prepare
    const key = freshKey();
    const containerId = containerIdOf(key);
    const body = assignBody('sess-dup', key);
    const sameSessionOtherCommand = assignBody('sess-dup', key);

    // Act: two deliveries of one message body at once, then a second command for the same session
    const sent = await Promise.all([send(body), send(body)]);
    const racing = await Promise.all([
      events.waitFor({ type: 'session.assigned', sessionId: 'sess-dup' }, 30_000),
      events.waitFor({ type: 'session.assigned', sessionId: 'sess-dup' }, 30_000),
    ]);
    const later = await send(sameSessionOtherCommand);
    const third = await events.waitFor({ type: 'session.assigned', sessionId: 'sess-dup' }, 30_000);

    // Assess
    for (const event of [...racing, third])
      expect(event.eventId).toBe('session/sess-dup/session.assigned');
    expect(third.commandId).toBe(sameSessionOtherCommand.commandId);
    for (const { messageId } of [...sent, later]) {
      expect((await deliveries.handledOnce(messageId)).map((d) => d.outcome)).toEqual(['done']);
    }
    const container = await store.getContainer(containerId);
    expect(container?.sessions).toEqual(['sess-dup']);
    expect(container?.generation).toBe(1);
    expect(await store.listSessionsByContainer(containerId)).toHaveLength(1);
    expect(service.runtime.tasks().filter((task) => task.containerId === containerId)).toHaveLength(
      1,
    );
  });

  it('refuses a session beyond BERTH_MAX_SESSIONS with session.rejected reason capacity, under concurrency', async () => {
    // Prepare
    const key = freshKey();
    const containerId = containerIdOf(key);
    const sessionIds = ['cap-1', 'cap-2', 'cap-3', 'cap-4', 'cap-5'].map(
      (s) => `${s}-${key.clientId}`,
    );

    // Act
    await Promise.all(sessionIds.map((sessionId) => send(assignBody(sessionId, key))));
    const outcomes = await Promise.all(
      sessionIds.map((sessionId) =>
        events.waitFor(
          (e) =>
            e.sessionId === sessionId &&
            (e.type === 'session.assigned' || e.type === 'session.rejected'),
          30_000,
          `the outcome of ${sessionId}`,
        ),
      ),
    );

    // Assess
    const assigned = outcomes.filter((e) => e.type === 'session.assigned');
    const rejected = outcomes.filter((e) => e.type === 'session.rejected');
    expect(assigned).toHaveLength(MAX_SESSIONS);
    expect(rejected).toHaveLength(sessionIds.length - MAX_SESSIONS);
    for (const event of rejected) expect(event.payload).toMatchObject({ reason: 'capacity' });
    const container = await store.getContainer(containerId);
    expect([...(container?.sessions ?? [])].sort()).toEqual(
      assigned.map((e) => e.sessionId).sort(),
    );
    const stored = await store.listSessionsByContainer(containerId);
    expect(stored.filter((s) => s.status === 'active')).toHaveLength(MAX_SESSIONS);
    for (const event of rejected)
      expect(await store.getSession(event.sessionId ?? '')).toBeUndefined();
  });
});

describe('session.release', () => {
  it('removes the session, announces session.released and marks a running container idle', async () => {
    // Prepare
    const key = freshKey();
    const containerId = containerIdOf(key);
    await send(assignBody('rel-1', key));
    await events.waitFor({ type: 'session.assigned', sessionId: 'rel-1' }, 30_000);
    const started = await store.getContainer(containerId);
    await taskEvent(service, started?.taskArn ?? '', 'RUNNING');
    expect(await store.getContainer(containerId)).toMatchObject({
      status: 'running',
      idleSince: null,
    });
    const release = releaseBody('rel-1');

    // Act
    const sent = await send(release);
    const released = await events.waitFor({ type: 'session.released', sessionId: 'rel-1' }, 30_000);
    const idle = await events.waitFor({ type: 'container.idle', containerId }, 30_000);

    // Assess
    expect(released).toMatchObject({
      eventId: 'session/rel-1/session.released',
      commandId: release.commandId,
      containerId,
      payload: { containerId, reason: 'released', sessionCount: 0 },
    });
    const container = await store.getContainer(containerId);
    expect(container?.sessions).toEqual([]);
    expect(container?.idleSince).toEqual(expect.any(String));
    expect(idle.payload).toMatchObject({
      container: { containerId, sessionCount: 0, idleSince: container?.idleSince },
    });
    expect(await store.getSession('rel-1')).toMatchObject({
      status: 'released',
      releasedAt: expect.any(String) as string,
    });

    // A second release changes nothing and announces the same event again.
    const again = await send(release);
    const releasedAgain = await events.waitFor(
      { type: 'session.released', sessionId: 'rel-1' },
      30_000,
    );
    expect(releasedAgain.eventId).toBe(released.eventId);
    for (const { messageId } of [sent, again]) {
      expect((await deliveries.handledOnce(messageId)).map((d) => d.outcome)).toEqual(['done']);
    }
    // What is promised is the state: the same sessions, idle period and activity. The version
    // is not: the idle event rides in the record's outbox, and clearing it after its publish is
    // one more write that may land before or after the read above.
    const { version: _v, pendingEvents: _p, ...state } = container ?? ({} as never);
    const after = await store.getContainer(containerId);
    expect(after).toMatchObject(state);
    expect(after?.pendingEvents.filter((e) => e.type !== 'container.idle')).toEqual([]);
  });

  it('keeps a session released before it was assigned released: the late assign yields session.rejected reason released', async () => {
    // Prepare
    const key = freshKey();
    const sessionId = `early-${key.clientId}`;

    // Act
    await send(releaseBody(sessionId));
    await events.waitFor({ type: 'session.released', sessionId }, 30_000);
    const assign = assignBody(sessionId, key);
    await send(assign);
    const rejected = await events.waitFor({ type: 'session.rejected', sessionId }, 30_000);

    // Assess
    expect(rejected).toMatchObject({
      commandId: assign.commandId,
      payload: { reason: 'released' },
    });
    expect(await store.getSession(sessionId)).toMatchObject({
      status: 'released',
      containerId: null,
    });
    // The refused assign did not start a container either.
    expect(await store.getContainer(containerIdOf(key))).toBeUndefined();
  });
});

describe('session.touch and container.stop', () => {
  it('records activity on touch, and ignores a touch of an unknown session', async () => {
    // Prepare
    const key = freshKey();
    await send(assignBody('touch-1', key));
    await events.waitFor({ type: 'session.assigned', sessionId: 'touch-1' }, 30_000);
    const before = await store.getSession('touch-1');

    // Act
    const touched = await send(touchBody('touch-1'));
    const unknown = await send(touchBody(`ghost-${key.clientId}`));

    // Assess
    expect((await deliveries.handledOnce(touched.messageId)).map((d) => d.outcome)).toEqual([
      'done',
    ]);
    expect((await deliveries.handledOnce(unknown.messageId)).map((d) => d.outcome)).toEqual([
      'done',
    ]);
    const after = await store.getSession('touch-1');
    expect(after?.status).toBe('active');
    expect(Date.parse(after?.lastActivityAt ?? '')).toBeGreaterThan(
      Date.parse(before?.lastActivityAt ?? ''),
    );
    expect(await store.getSession(`ghost-${key.clientId}`)).toBeUndefined();
  });

  it('stops a container gracefully: terminating, the task is asked to stop, and its end releases the sessions', async () => {
    // Prepare
    const key = freshKey();
    const containerId = containerIdOf(key);
    await send(assignBody('stop-1', key));
    await events.waitFor({ type: 'session.assigned', sessionId: 'stop-1' }, 30_000);
    const { taskArn } = (await store.getContainer(containerId)) ?? {};
    await taskEvent(service, taskArn ?? '', 'RUNNING');
    const stop = stopBody(containerId, randomUUID(), 'maintenance');

    // Act
    await send(stop);
    const terminating = await events.waitFor(
      { type: 'container.terminating', containerId },
      30_000,
    );
    await taskEvent(service, taskArn ?? '', 'STOPPED');

    // Assess
    expect(terminating.commandId).toBe(stop.commandId);
    expect(service.runtime.stopCalls).toContainEqual({ taskArn, reason: 'manual:maintenance' });
    await events.waitFor({ type: 'container.stopped', containerId }, 10_000);
    expect(await store.getContainer(containerId)).toMatchObject({
      status: 'stopped',
      stopReason: 'manual:maintenance',
      sessions: [],
    });
    expect(await store.getSession('stop-1')).toMatchObject({ status: 'released' });
  });

  it('refuses a stop that names another generation with command.rejected on field generation, and stops the one it names', async () => {
    // Prepare
    const key = freshKey();
    const containerId = containerIdOf(key);
    await send(assignBody(`gen-${key.clientId}`, key));
    await events.waitFor({ type: 'session.assigned', sessionId: `gen-${key.clientId}` }, 30_000);
    const late = { ...stopBody(containerId), payload: { containerId, generation: 2 } };
    const meant = { ...stopBody(containerId), payload: { containerId, generation: 1 } };

    // Act
    const { messageId } = await send(late);
    const rejected = await events.waitFor(
      { type: 'command.rejected', commandId: late.commandId },
      30_000,
    );
    const untouched = await store.getContainer(containerId);
    await deliveries.handledOnce((await send(meant)).messageId);

    // Assess
    expect(rejected.payload).toMatchObject({ field: 'generation' });
    expect(String(rejected.payload.reason)).toMatch(/^conflict/);
    expect((await deliveries.handledOnce(messageId)).map((d) => d.outcome)).toEqual(['done']);
    expect(untouched).toMatchObject({ generation: 1, stopReason: null });
    expect(await store.getContainer(containerId)).toMatchObject({
      generation: 1,
      stopReason: 'manual',
    });
  });

  it('answers a stop of a container that does not exist with command.rejected, once', async () => {
    // Prepare
    const stop = stopBody(containerIdOf(freshKey()));

    // Act
    const { messageId } = await send(stop);
    const rejected = await events.waitFor(
      { type: 'command.rejected', commandId: stop.commandId },
      30_000,
    );

    // Assess
    expect(String(rejected.payload.reason)).toMatch(/^not_found/);
    expect((await deliveries.handledOnce(messageId)).map((d) => d.outcome)).toEqual(['done']);
  });
});

describe('bad commands', () => {
  const key = { clientId: 'acme', projectId: 'web', userId: 'ann' };
  const cases: [string, string | object, string | undefined, RegExp][] = [
    ['a body that is not JSON', '{"type": "session.assign", ', undefined, /JSON/],
    ['a body that is not an object', '[1, 2]', undefined, /object/],
    [
      'an unknown type',
      { type: 'session.teleport', commandId: 'bad-type', payload: { sessionId: 's' } },
      'type',
      /type must be one of/,
    ],
    [
      'a missing field',
      {
        type: 'session.assign',
        commandId: 'bad-missing',
        payload: { sessionId: 's', projectId: 'web', userId: 'ann' },
      },
      'payload.clientId',
      /required/,
    ],
    [
      'a bad field',
      {
        type: 'session.assign',
        commandId: 'bad-field',
        payload: { sessionId: 's', ...key, clientId: 'Acme_Corp' },
      },
      'payload.clientId',
      /payload\.clientId/,
    ],
    [
      'an extra field',
      { type: 'session.release', commandId: 'bad-extra', payload: { sessionId: 's', force: true } },
      'payload.force',
      /not a known field/,
    ],
    [
      'a missing commandId',
      { type: 'session.touch', payload: { sessionId: 's' } },
      'commandId',
      /required/,
    ],
  ];

  it.each(cases)(
    'rejects %s with command.rejected naming the field, removes it, and goes on',
    async (_name, body, field, reason) => {
      // Prepare
      const follower = assignBody(`after-${randomUUID().slice(0, 8)}`, freshKey());

      // Act
      const { messageId } = await send(body);
      await send(follower);
      const rejected = await events.waitFor(
        (e) => e.type === 'command.rejected' && e.payload.messageId === messageId,
        30_000,
        `command.rejected of message ${messageId}`,
      );
      await events.waitFor(
        { type: 'session.assigned', sessionId: follower.payload.sessionId },
        30_000,
      );

      // Assess
      expect(String(rejected.payload.reason)).toMatch(reason);
      if (field === undefined) expect(rejected.payload.field).toBeUndefined();
      else expect(rejected.payload.field).toBe(field);
      if (typeof body === 'object' && 'commandId' in body)
        expect(rejected.commandId).toBe(body.commandId);
      const handled = await deliveries.handledOnce(messageId);
      expect(handled).toEqual([expect.objectContaining({ receiveCount: 1, outcome: 'done' })]);
      // Deleted, not merely hidden: nothing is left on the queue, visible or in flight.
      const deadline = Date.now() + 15_000;
      let left = await queues.messagesInFlight(messaging.lifecycleCommandsUrl);
      while (left > 0 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        left = await queues.messagesInFlight(messaging.lifecycleCommandsUrl);
      }
      expect(left).toBe(0);
      expect(deliveries.of(messageId)).toHaveLength(1);
    },
  );
});

describe('devserver.state (issue 19)', () => {
  const stateBody = (
    containerId: string,
    generation: number,
    sequence: number,
    state: 'starting' | 'up' | 'crashed',
    restarts = 0,
  ) => ({
    type: 'devserver.state',
    commandId: `devserver-${containerId}-${generation}-${sequence}`,
    payload: {
      containerId,
      generation,
      state,
      port: 3000,
      restarts,
      since: new Date(Date.UTC(2026, 0, 1, 0, 0, sequence)).toISOString(),
      sequence,
    },
  });

  it('carries the state the agent reports to the container record and its JSON; an older report delivered late changes nothing', async () => {
    // Prepare: a running container.
    const key = freshKey();
    const containerId = containerIdOf(key);
    await send(assignBody('devsrv-1', key));
    await events.waitFor({ type: 'session.assigned', sessionId: 'devsrv-1' }, 30_000);
    const started = await store.getContainer(containerId);
    await taskEvent(service, started?.taskArn ?? '', 'RUNNING');
    await events.waitFor({ type: 'container.running', containerId }, 30_000);

    // Act: starting, up, then the crashed that came between them, delivered last.
    const starting = await report(stateBody(containerId, 1, 1, 'starting'));
    await reportDeliveries.handledOnce(starting.messageId);
    const afterStarting = await store.getContainer(containerId);
    const up = await report(stateBody(containerId, 1, 3, 'up', 1));
    await reportDeliveries.handledOnce(up.messageId);
    const late = await report(stateBody(containerId, 1, 2, 'crashed'));
    const [lateDelivery] = await reportDeliveries.handledOnce(late.messageId);

    // Assess
    expect(afterStarting?.devServer).toEqual({
      state: 'starting',
      port: 3000,
      restarts: 0,
      since: '2026-01-01T00:00:01.000Z',
      sequence: 1,
    });
    expect(lateDelivery?.outcome).toBe('done');
    const stored = await store.getContainer(containerId);
    expect(stored?.devServer).toEqual({
      state: 'up',
      port: 3000,
      restarts: 1,
      since: '2026-01-01T00:00:03.000Z',
      sequence: 3,
    });
    expect(service.useCases.records.json(stored!).devServer).toEqual({
      state: 'up',
      port: 3000,
      url: `http://${stored?.endpoint}:3000`,
      since: '2026-01-01T00:00:03.000Z',
      restarts: 1,
    });
  });

  it('does not act on a report naming another generation, or a container that is not live', async () => {
    // Prepare: a running container, then stopped.
    const key = freshKey();
    const containerId = containerIdOf(key);
    await send(assignBody('devsrv-2', key));
    await events.waitFor({ type: 'session.assigned', sessionId: 'devsrv-2' }, 30_000);
    const started = await store.getContainer(containerId);
    await taskEvent(service, started?.taskArn ?? '', 'RUNNING');
    await events.waitFor({ type: 'container.running', containerId }, 30_000);
    const refusedBefore = service.refusals.length;

    // Act 1: a report of generation 2.
    const forged = await report(stateBody(containerId, 2, 1, 'up'));
    await reportDeliveries.handledOnce(forged.messageId);
    const afterForged = await store.getContainer(containerId);

    // Act 2: the container ends; a report of its generation comes after.
    await taskEvent(service, started?.taskArn ?? '', 'STOPPED');
    const ended = await store.getContainer(containerId);
    const late = await report(stateBody(containerId, 1, 1, 'up'));
    await reportDeliveries.handledOnce(late.messageId);

    // Assess
    expect(afterForged?.devServer).toBeUndefined();
    expect(['stopped', 'failed']).toContain(ended?.status);
    expect(service.refusals.slice(refusedBefore)).toEqual([
      'stale_generation',
      'container_not_live',
    ]);
    const final = await store.getContainer(containerId);
    expect(final?.devServer).toBeUndefined();
    expect(service.useCases.records.json(final!).devServer).toBeNull();
  });
});

describe('session.ready (issue 15)', () => {
  const HEAD = 'a'.repeat(40);
  const readyBody = (
    sessionId: string,
    containerId: string,
    threadId: string,
    worktreePath: string,
  ) => ({
    type: 'thread.ready',
    commandId: `ready-${sessionId}`,
    payload: { sessionId, threadId, containerId, generation: 1, worktreePath, head: HEAD },
  });

  it('comes only once the worktree exists and the container is running, whichever is last', async () => {
    // Prepare: two sessions of one starting container.
    const key = freshKey();
    const containerId = containerIdOf(key);
    await send(assignBody('ready-1', key, undefined, 'plan'));
    await send(assignBody('ready-2', key, undefined, 'notes'));
    const assigned = await events.waitFor(
      { type: 'session.assigned', sessionId: 'ready-1' },
      30_000,
    );
    await events.waitFor({ type: 'session.assigned', sessionId: 'ready-2' }, 30_000);
    const worktreePath = String(assigned.payload.worktreePath);

    // Act 1: the agent made the first worktree while the container is still starting.
    const early = await report(readyBody('ready-1', containerId, 'plan', worktreePath));
    await reportDeliveries.handledOnce(early.messageId);

    // Assess 1: recorded, not ready.
    expect(await store.getSession('ready-1')).toMatchObject({ head: HEAD });
    expect((await store.getSession('ready-1'))?.readyAt).toBeUndefined();

    // Act 2: the container becomes running.
    const container = await store.getContainer(containerId);
    await taskEvent(service, container?.taskArn ?? '', 'RUNNING');
    const first = await events.waitFor({ type: 'session.ready', sessionId: 'ready-1' }, 30_000);

    // Act 3: the second worktree is announced after the container runs.
    await report(readyBody('ready-2', containerId, 'notes', `${worktreePath}-2`));
    const second = await events.waitFor({ type: 'session.ready', sessionId: 'ready-2' }, 30_000);

    // Assess
    expect(first).toMatchObject({
      eventId: 'session/ready-1/session.ready',
      containerId,
      payload: { containerId, generation: 1, threadId: 'plan', worktreePath, head: HEAD },
    });
    expect(second.payload).toMatchObject({ threadId: 'notes', worktreePath: `${worktreePath}-2` });
    const stored = await store.getSession('ready-1');
    expect(stored?.readyAt).toBe(first.occurredAt);
    expect(Date.parse(stored?.readyAt ?? '')).toBeGreaterThanOrEqual(
      Date.parse((await store.getContainer(containerId))?.startedAt ?? ''),
    );
  });

  it('ignores an announcement for a session that is not active on that container', async () => {
    const key = freshKey();
    const containerId = containerIdOf(key);
    await send(assignBody('ready-3', key));
    await events.waitFor({ type: 'session.assigned', sessionId: 'ready-3' }, 30_000);

    const sent = await report(readyBody('ready-3', `${containerId}x`, 'ready-3', '/w'));
    const [delivery] = await reportDeliveries.handledOnce(sent.messageId);

    expect(delivery?.outcome).toBe('done');
    expect((await store.getSession('ready-3'))?.head).toBeUndefined();
  });

  it("does not act on a forged report: a generation that is not the record's", async () => {
    // Prepare: a session of a running generation-1 container.
    const key = freshKey();
    const containerId = containerIdOf(key);
    await send(assignBody('forged-1', key, undefined, 'plan'));
    const assigned = await events.waitFor(
      { type: 'session.assigned', sessionId: 'forged-1' },
      30_000,
    );
    const container = await store.getContainer(containerId);
    await taskEvent(service, container?.taskArn ?? '', 'RUNNING');
    const refusedBefore = service.refusals.length;

    // Act: a thread.ready naming generation 2 of that container.
    const forged = {
      ...readyBody('forged-1', containerId, 'plan', String(assigned.payload.worktreePath)),
    };
    forged.payload = { ...forged.payload, generation: 2 };
    forged.commandId = 'forged-generation';
    const sent = await report(forged);
    const [delivery] = await reportDeliveries.handledOnce(sent.messageId);

    // Assess: dropped (not retried), counted, logged, nothing written.
    expect(delivery?.outcome).toBe('done');
    expect(service.refusals.slice(refusedBefore)).toEqual(['stale_generation']);
    expect(service.log.lines).toContainEqual(
      expect.objectContaining({
        level: 'warn',
        message: expect.stringMatching(/agent report refused/) as unknown,
        fields: expect.objectContaining({
          commandId: 'forged-generation',
          reason: 'stale_generation',
        }) as unknown,
      }),
    );
    const stored = await store.getSession('forged-1');
    expect(stored?.head).toBeUndefined();
    expect(stored?.readyAt).toBeUndefined();
  });

  it('refuses a command that is not an agent report on the reports queue, and never carries it out', async () => {
    const key = freshKey();
    const body = assignBody('not-a-report-1', key);

    const sent = await report(body);
    const [delivery] = await reportDeliveries.handledOnce(sent.messageId);
    const rejected = await events.waitFor(
      { type: 'command.rejected', commandId: body.commandId },
      30_000,
    );

    expect(delivery?.outcome).toBe('done');
    expect(rejected.payload).toMatchObject({
      type: 'session.assign',
      field: 'type',
      messageId: sent.messageId,
    });
    expect(String(rejected.payload.reason)).toMatch(/not an agent report/);
    expect(await store.getSession('not-a-report-1')).toBeUndefined();
    expect(await store.getContainer(containerIdOf(key))).toBeUndefined();
  });

  it('refuses an agent report sent to the lifecycle commands queue', async () => {
    const key = freshKey();
    const containerId = containerIdOf(key);
    await send(assignBody('wrong-queue-1', key, undefined, 'plan'));
    await events.waitFor({ type: 'session.assigned', sessionId: 'wrong-queue-1' }, 30_000);
    const body = {
      ...readyBody('wrong-queue-1', containerId, 'plan', '/w'),
      commandId: 'wrong-queue',
    };

    const sent = await send(body);
    const rejected = await events.waitFor(
      { type: 'command.rejected', commandId: 'wrong-queue' },
      30_000,
    );

    expect(rejected.payload).toMatchObject({ type: 'thread.ready', messageId: sent.messageId });
    expect(String(rejected.payload.reason)).toMatch(/berth-agent-reports/);
    expect((await store.getSession('wrong-queue-1'))?.head).toBeUndefined();
  });

  it('tells the agent on release that the session left its thread', async () => {
    const key = freshKey();
    await send(assignBody('close-1', key, undefined, 'doc'));
    await events.waitFor({ type: 'session.assigned', sessionId: 'close-1' }, 30_000);
    const container = await store.getContainer(containerIdOf(key));

    await send(releaseBody('close-1'));
    await events.waitFor({ type: 'session.released', sessionId: 'close-1' }, 30_000);

    const bodies: Record<string, unknown>[] = [];
    for (let i = 0; i < 5 && !bodies.some((b) => b.type === 'thread.close'); i += 1) {
      const received = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: container?.inputQueueUrl ?? '',
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: 1,
        }),
      );
      for (const m of received.Messages ?? [])
        bodies.push(JSON.parse(m.Body ?? '{}') as Record<string, unknown>);
    }
    expect(bodies).toContainEqual({ type: 'thread.close', threadId: 'doc', sessionId: 'close-1' });
  });
});

describe('checkpoint.record (issue 15)', () => {
  const commit = (n: number) => n.toString(16).padStart(40, '0');
  const recordBody = (
    sessionId: string,
    containerId: string,
    threadId: string,
    n: number,
    extra: Record<string, unknown> = {},
  ) => ({
    type: 'checkpoint.record',
    commandId: `cp-${sessionId}-${n}`,
    payload: {
      sessionId,
      threadId,
      containerId,
      generation: 1,
      commit: commit(n),
      messageId: `m-${n}`,
      files: [`f${n}.txt`],
      filesTotal: 1,
      createdAt: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
      ...extra,
    },
  });

  it('records each checkpoint once, lists them newest first with paging, and announces them', async () => {
    const key = freshKey();
    const containerId = containerIdOf(key);
    await send(assignBody('cp-1', key, undefined, 'essay'));
    await events.waitFor({ type: 'session.assigned', sessionId: 'cp-1' }, 30_000);

    // Act: three checkpoints, the first announced twice, and a revert to it.
    await report(recordBody('cp-1', containerId, 'essay', 1));
    const first = await events.waitFor({ type: 'session.checkpointed', sessionId: 'cp-1' }, 30_000);
    const again = await report(recordBody('cp-1', containerId, 'essay', 1));
    await reportDeliveries.handledOnce(again.messageId);
    await report(recordBody('cp-1', containerId, 'essay', 2));
    await report(recordBody('cp-1', containerId, 'essay', 3, { revertOf: commit(1) }));
    const reverted = await events.waitFor({ type: 'session.reverted', sessionId: 'cp-1' }, 30_000);

    // Assess
    expect(first).toMatchObject({
      containerId,
      payload: {
        sessionId: 'cp-1',
        threadId: 'essay',
        commit: commit(1),
        messageId: 'm-1',
        files: ['f1.txt'],
      },
    });
    expect(reverted.payload).toMatchObject({
      commit: commit(3),
      revertOf: commit(1),
      requestId: 'm-3',
    });
    const page1 = await store.listCheckpoints(containerId, 'essay', 2);
    expect(page1.items.map((c) => c.commit)).toEqual([commit(3), commit(2)]);
    expect(page1.nextCursor).not.toBeNull();
    const page2 = await store.listCheckpoints(containerId, 'essay', 2, page1.nextCursor ?? '');
    expect(page2.items.map((c) => c.commit)).toEqual([commit(1)]);
    expect(page2.nextCursor).toBeNull();
    expect(page1.items[0]?.revertOf).toBe(commit(1));
    // Another thread's list is empty, and its cursor is refused for this one.
    expect((await store.listCheckpoints(containerId, 'other', 10)).items).toEqual([]);
    await expect(
      store.listCheckpoints(containerId, 'other', 2, page1.nextCursor ?? ''),
    ).rejects.toMatchObject({
      field: 'cursor',
    });
  });

  it("does not act on a forged checkpoint: a live container naming another container's session", async () => {
    // Prepare: two users' containers, each with a session.
    const key = freshKey();
    const other = { ...freshKey(), userId: 'mallory' };
    await send(assignBody('cp-2', key, undefined, 'essay'));
    await send(assignBody('cp-2-other', other, undefined, 'essay'));
    await events.waitFor({ type: 'session.assigned', sessionId: 'cp-2' }, 30_000);
    await events.waitFor({ type: 'session.assigned', sessionId: 'cp-2-other' }, 30_000);
    const refusedBefore = service.refusals.length;

    // Act: the other container (its own id and generation, both right) names cp-2.
    const sent = await report(recordBody('cp-2', containerIdOf(other), 'essay', 9));
    const [delivery] = await reportDeliveries.handledOnce(sent.messageId);

    // Assess
    expect(delivery?.outcome).toBe('done');
    expect(service.refusals.slice(refusedBefore)).toEqual(['foreign_session']);
    expect((await store.listCheckpoints(containerIdOf(key), 'essay', 10)).items).toEqual([]);
    expect((await store.listCheckpoints(containerIdOf(other), 'essay', 10)).items).toEqual([]);
  });
});

describe('store failures', () => {
  it('retries a command whose store is unavailable and moves it to the dead-letter queue after 5 receives', async () => {
    // Prepare: the same service, but its store points at tables that do not exist.
    await consumer?.stop();
    consumer = undefined;
    const brokenDeliveries = new Deliveries();
    const broken = sessionService({
      store: new DynamoStateStore({
        client: dynamodb,
        containerTable: `${tableNames.containerTable}-missing`,
        sessionTable: `${tableNames.sessionTable}-missing`,
      }),
      queues,
      publisher: new SnsEventPublisher({ sns, topicArn: messaging.topicArn }),
      clock: systemClock,
    });
    consumer = startQueueConsumer({
      sqs,
      queueUrl: messaging.lifecycleCommandsUrl,
      batchSize: 10,
      visibilityTimeoutSeconds: 1,
      heartbeatIntervalSeconds: 0,
      waitTimeSeconds: 1,
      handle: brokenDeliveries.wrap(broken.handle),
      onError: () => {},
    });
    const body = assignBody('dlq-1', freshKey());

    // Act
    const { messageId } = await send(body);
    await brokenDeliveries.until(
      messageId,
      (list) => list.some((d) => d.receiveCount >= 5),
      90_000,
    );
    const deadLettered = await receiveUntil(
      messaging.lifecycleCommandsDlqUrl,
      (m) => m.includes(body.commandId),
      60_000,
    );

    // Assess
    expect(JSON.parse(deadLettered)).toEqual(body);
    const handled = brokenDeliveries.of(messageId);
    expect(handled.every((d) => d.outcome === 'retry')).toBe(true);
    expect(Math.max(...handled.map((d) => d.receiveCount))).toBe(5);
    expect(handled.length).toBeGreaterThanOrEqual(4);
    expect(broken.log.lines.filter((l) => l.level === 'error').map((l) => l.message)).toContain(
      'command failed; it will be retried',
    );
    // Nothing was announced for it: no effect was stored, and it was not a bad command.
    const announced: BerthEvent[] = [];
    for (let event = await events.next(1_000); event; event = await events.next(1_000))
      announced.push(event);
    expect(
      announced.filter((e) => e.commandId === body.commandId || e.sessionId === 'dlq-1'),
    ).toEqual([]);
  });
});

/** Receives (and deletes nothing) until a body matches; the dead-letter queue is this test's to read. */
async function receiveUntil(
  queueUrl: string,
  matches: (body: string) => boolean,
  timeoutMs: number,
): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
        VisibilityTimeout: 1,
      }),
    );
    const match = Messages.find((m) => m.Body !== undefined && matches(m.Body));
    if (match?.Body !== undefined) return match.Body;
  }
  throw new Error(`no matching message on ${queueUrl} within ${timeoutMs} ms`);
}
