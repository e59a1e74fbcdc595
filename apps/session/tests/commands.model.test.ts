/**
 * A model-based test of the session service's command handler against the real DynamoDB
 * Local store: random sequences of assign, release, touch and stop over a few sessions and
 * two containers, each command possibly delivered twice, batches shuffled and run at once,
 * old messages delivered again late, the task coming up or ending, and the bus failing now
 * and then (a crash between the write and the publish, as far as the handler can tell).
 * What `retry` answers SQS would deliver again; the test does so, up to the 5 receives after
 * which SQS gives up. After every step, and once everything has settled, the invariants of
 * issue 3 must hold in the store, and every stored change must have had its event.
 */
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import fc from 'fast-check';
import {
  containerIdOf,
  isLive,
  type BerthEvent,
  type ContainerKey,
  type SessionRecord,
} from '@berth/domain';
import type { DynamoStateStore } from '@berth/dynamodb';
import type { HandleOutcome } from '@berth/messaging';
import { FakeQueues, ManualClock, RecordingPublisher } from '@berth/testing';
import { randomUUID } from 'node:crypto';
import {
  assignBody,
  describeEvents,
  dynamoStore,
  releaseBody,
  sessionService,
  stopBody,
  taskEvent,
  touchBody,
  type SessionServiceUnderTest,
} from './support.ts';

const MAX_SESSIONS = 2;
/**
 * A gap in @berth/core this test found, pinned by an `it.failing` in redelivery.test.ts:
 * the event of a container that reached a final status while the bus was down stays in its
 * outbox, which no sweep looks at. While it stands, the check allows exactly that (the
 * event still in the outbox of a stopped or failed record); set it to false once fixed.
 */
const FINAL_OUTBOX_NOT_SWEPT = true;
const SESSIONS = 4;
const KEYS = 2;
/** SQS moves a message to the dead-letter queue after this many receives. */
const MAX_RECEIVES = 5;

type Spec =
  | { kind: 'assign'; session: number; key: number }
  | { kind: 'release'; session: number }
  | { kind: 'touch'; session: number }
  | { kind: 'stop'; key: number };

/** One message on the queue: its body stays the same on every delivery. */
interface Message {
  spec: Spec;
  messageId: string;
  body: { type: string; commandId: string; payload: Record<string, unknown> };
  outcomes: HandleOutcome[];
}

interface Model {
  /** Every message sent, any of which SQS may deliver again, late. */
  sent: Message[];
  /** Released sessions (a release was handled): never active again. */
  released: Set<string>;
}

interface Real {
  run: string;
  service: SessionServiceUnderTest;
  store: DynamoStateStore;
  publisher: RecordingPublisher;
  queues: FakeQueues;
  clock: ManualClock;
  /** Sessions seen ended in the store at some check: they must stay ended. */
  seenEnded: Set<string>;
}

let store: DynamoStateStore;
let client: DynamoDBClient;

beforeAll(async () => {
  ({ store, client } = await dynamoStore('session-model'));
}, 120_000);

afterAll(() => client?.destroy());

const keyOf = (real: Real, key: number): ContainerKey => ({
  clientId: real.run,
  projectId: 'proj',
  userId: `u${key}`,
});
const sessionIdOf = (real: Real, session: number) => `${real.run}-s${session}`;
const allSessionIds = (real: Real) =>
  Array.from({ length: SESSIONS }, (_, i) => sessionIdOf(real, i));
const allContainerIds = (real: Real) =>
  Array.from({ length: KEYS }, (_, k) => containerIdOf(keyOf(real, k)));

function messageFor(real: Real, spec: Spec): Message {
  const commandId = randomUUID();
  const body = ((): Message['body'] => {
    switch (spec.kind) {
      case 'assign':
        return assignBody(sessionIdOf(real, spec.session), keyOf(real, spec.key), commandId);
      case 'release':
        return releaseBody(sessionIdOf(real, spec.session), commandId);
      case 'touch':
        return touchBody(sessionIdOf(real, spec.session), commandId);
      case 'stop':
        return stopBody(containerIdOf(keyOf(real, spec.key)), commandId);
    }
  })();
  return { spec, messageId: randomUUID(), body, outcomes: [] };
}

const describeSpec = (spec: Spec): string =>
  spec.kind === 'assign'
    ? `assign(s${spec.session}→k${spec.key})`
    : spec.kind === 'stop'
      ? `stop(k${spec.key})`
      : `${spec.kind}(s${spec.session})`;

/** One receive of a message, as the queue consumer hands it over; a throw counts as retry. */
async function deliver(real: Real, model: Model, message: Message): Promise<void> {
  const receiveCount = message.outcomes.length + 1;
  if (receiveCount > MAX_RECEIVES) return;
  const outcome = await real.service
    .handle({ body: JSON.stringify(message.body), messageId: message.messageId, receiveCount })
    .catch((): HandleOutcome => 'retry');
  message.outcomes.push(outcome);
  if (outcome === 'done' && message.spec.kind === 'release')
    model.released.add(sessionIdOf(real, message.spec.session));
}

const awaitingRedelivery = (model: Model) =>
  model.sent.filter((m) => m.outcomes.at(-1) === 'retry' && m.outcomes.length < MAX_RECEIVES);

class DeliverBatch implements fc.AsyncCommand<Model, Real> {
  readonly items: { spec: Spec; copies: number; order: number[] }[];
  constructor(items: { spec: Spec; copies: number; order: number[] }[]) {
    this.items = items;
  }
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    real.clock.advance('1s');
    // Each copy is a delivery of the same message; SQS keeps no order, and the consumer
    // handles a batch concurrently.
    const deliveries = this.items
      .flatMap((item) => {
        const message = messageFor(real, item.spec);
        model.sent.push(message);
        return Array.from({ length: item.copies }, (_, i) => ({
          message,
          order: item.order[i] ?? 0,
        }));
      })
      .sort((a, b) => a.order - b.order);
    await Promise.all(deliveries.map(({ message }) => deliver(real, model, message)));
    await checkInvariants(real, model);
  }
  toString = () =>
    `batch[${this.items.map((i) => `${describeSpec(i.spec)}x${i.copies}`).join(', ')}]`;
}

/** SQS delivers an old message again, after later ones: a reordering. */
class Redeliver implements fc.AsyncCommand<Model, Real> {
  readonly pick: number;
  constructor(pick: number) {
    this.pick = pick;
  }
  check = (model: Readonly<Model>) => model.sent.length > 0;
  async run(model: Model, real: Real): Promise<void> {
    real.clock.advance('1s');
    const message = model.sent[this.pick % model.sent.length];
    if (!message) throw new Error('check() let an empty history through');
    // A message already deleted comes back as a copy: the same body under a new receive.
    const copy: Message = message.outcomes.includes('done')
      ? { ...message, messageId: randomUUID(), outcomes: [] }
      : message;
    if (copy !== message) model.sent.push(copy);
    await deliver(real, model, copy);
    await checkInvariants(real, model);
  }
  toString = () => `redeliver(#${this.pick})`;
}

/** The visibility timeout of everything answered `retry` runs out: all come back at once. */
class RedeliverRetries implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    real.clock.advance('1s');
    await Promise.all(awaitingRedelivery(model).map((message) => deliver(real, model, message)));
    await checkInvariants(real, model);
  }
  toString = () => 'redeliver-retries';
}

/** The task of a container comes up, or ends (asked to, or by crashing). */
class TaskChange implements fc.AsyncCommand<Model, Real> {
  readonly key: number;
  readonly to: 'RUNNING' | 'STOPPED';
  constructor(key: number, to: 'RUNNING' | 'STOPPED') {
    this.key = key;
    this.to = to;
  }
  check = () => true;
  async run(model: Model, real: Real): Promise<void> {
    real.clock.advance('1s');
    const container = await real.store.getContainer(containerIdOf(keyOf(real, this.key)));
    const task = container?.taskArn ? real.service.runtime.task(container.taskArn) : undefined;
    if (!task || task.lastStatus === 'STOPPED') return;
    if (this.to === 'RUNNING' && task.lastStatus !== 'PENDING') return;
    await taskEvent(real.service, task.taskArn, this.to);
    await checkInvariants(real, model);
  }
  toString = () => `task(k${this.key})→${this.to}`;
}

/** The next publish fails: for the handler, a crash between its write and its event. */
class BusFails implements fc.AsyncCommand<Model, Real> {
  check = () => true;
  run(_model: Model, real: Real): Promise<void> {
    real.publisher.failNext(1);
    return Promise.resolve();
  }
  toString = () => 'bus-fails-once';
}

/** What must hold between any two steps. */
async function checkInvariants(real: Real, model: Model): Promise<void> {
  for (const containerId of allContainerIds(real)) {
    const container = await real.store.getContainer(containerId);
    const items = await real.store.listSessionsByContainer(containerId);
    const active = items.filter((s) => s.status === 'active');
    // Tasks not yet STOPPED; of those, the ones nobody asked to stop are the running ones.
    const alive = real.service.runtime.liveTasks().filter((t) => t.containerId === containerId);
    const running = alive.filter((t) => t.desiredStatus !== 'STOPPED');
    // At most one live container (task) per containerId, and it is the recorded one.
    expect(running.length).toBeLessThanOrEqual(1);
    // A task asked to stop may still be saving: no other may start until it has stopped.
    expect(alive.length).toBeLessThanOrEqual(1);
    if (!container) {
      expect(alive).toEqual([]);
      expect(active).toEqual([]);
      continue;
    }
    if (running[0]) {
      expect(running[0].taskArn).toBe(container.taskArn);
      expect(isLive(container.status)).toBe(true);
    }
    if (isLive(container.status) && container.taskArn)
      expect(alive.map((t) => t.taskArn)).toContain(container.taskArn);
    // The session count is the number of active sessions, never above the limit.
    expect(new Set(container.sessions).size).toBe(container.sessions.length);
    expect(container.sessions.length).toBeLessThanOrEqual(MAX_SESSIONS);
    expect([...container.sessions].sort()).toEqual(active.map((s) => s.sessionId).sort());
    for (const session of active) expect(session.generation).toBe(container.generation);
    if (!isLive(container.status)) expect(container.sessions).toEqual([]);
  }
  for (const sessionId of allSessionIds(real)) {
    const session = await real.store.getSession(sessionId);
    if (session && session.status !== 'active') real.seenEnded.add(sessionId);
    // No released session is active again.
    if (model.released.has(sessionId) || real.seenEnded.has(sessionId)) {
      expect(session).toBeDefined();
      expect(session?.status).not.toBe('active');
    }
  }
}

/** After everything settled: every stored change was announced, and only stored changes. */
async function checkEvents(real: Real, model: Model): Promise<void> {
  const events = real.publisher.events;
  const byId = new Map<string, BerthEvent[]>();
  for (const event of events) byId.set(event.eventId, [...(byId.get(event.eventId) ?? []), event]);
  // One eventId, one effect: its copies agree on what happened.
  for (const [eventId, copies] of byId) {
    const effect = (e: BerthEvent) =>
      JSON.stringify([
        e.type,
        e.sessionId,
        e.containerId,
        e.type === 'session.assigned' ? [e.payload.containerId, e.payload.worktreePath] : null,
      ]);
    expect({ eventId, effects: [...new Set(copies.map(effect))] }).toEqual({
      eventId,
      effects: [effect(copies[0] as BerthEvent)],
    });
  }
  const sessions = (
    await Promise.all(allSessionIds(real).map((id) => real.store.getSession(id)))
  ).filter((s): s is SessionRecord => s !== undefined);
  const stored = new Map(sessions.map((s) => [s.sessionId, s]));
  for (const session of sessions) {
    if (session.containerId !== null)
      expect(byId.has(`session/${session.sessionId}/session.assigned`)).toBe(true);
    if (session.status === 'released')
      expect(byId.has(`session/${session.sessionId}/session.released`)).toBe(true);
    if (session.status === 'expired')
      expect(byId.has(`session/${session.sessionId}/session.expired`)).toBe(true);
  }
  for (const event of events) {
    const session = event.sessionId ? stored.get(event.sessionId) : undefined;
    if (event.type === 'session.assigned')
      expect(session?.containerId).toBe(event.payload.containerId);
    if (event.type === 'session.released') expect(session?.status).toBe('released');
  }
  for (const containerId of allContainerIds(real)) {
    const container = await real.store.getContainer(containerId);
    if (!container) continue;
    const cause = `${containerId}#${container.generation}`;
    const final = container.status === 'stopped' || container.status === 'failed';
    // Published, or (a known gap, above) still in the outbox of a final record.
    const announced = (eventId: string) =>
      byId.has(eventId) ||
      (FINAL_OUTBOX_NOT_SWEPT &&
        final &&
        container.pendingEvents.some((e) => e.eventId === eventId));
    if (!final) expect(container.pendingEvents).toEqual([]);
    if (container.inputQueueUrl) expect(announced(`${cause}/container.created`)).toBe(true);
    if (container.startedAt) expect(announced(`${cause}/container.running`)).toBe(true);
    if (container.status === 'stopped') expect(announced(`${cause}/container.stopped`)).toBe(true);
    if (container.status === 'failed') expect(announced(`${cause}/container.failed`)).toBe(true);
    // A stop of a running container goes through terminating; one of a starting container
    // waits for its task to end (failed) or to come up (then terminating).
    if (
      container.status === 'terminating' ||
      (container.status === 'stopped' && container.stopReason?.startsWith('manual'))
    ) {
      expect(announced(`${cause}/container.terminating`)).toBe(true);
    }
  }
  // Every assign that was answered got its answer on the bus.
  for (const message of model.sent) {
    if (message.spec.kind !== 'assign' || !message.outcomes.includes('done')) continue;
    const sessionId = sessionIdOf(real, message.spec.session);
    expect(
      events.some(
        (e) =>
          (e.type === 'session.assigned' && e.sessionId === sessionId) ||
          ((e.type === 'session.rejected' || e.type === 'command.rejected') &&
            e.commandId === message.body.commandId),
      ),
    ).toBe(true);
  }
}

/** Everything SQS would still deliver is delivered; tasks asked to stop finish stopping. */
async function settle(real: Real, model: Model): Promise<void> {
  const finishStopping = async () => {
    for (const task of real.service.runtime.liveTasks()) {
      if (task.lastStatus === 'STOPPING') await taskEvent(real.service, task.taskArn, 'STOPPED');
    }
  };
  for (
    let pending = awaitingRedelivery(model);
    pending.length > 0;
    pending = awaitingRedelivery(model)
  ) {
    await finishStopping();
    await Promise.all(pending.map((message) => deliver(real, model, message)));
  }
  await finishStopping();
  // Every sweep of the reaper publishes what a live or terminating container's outbox still
  // holds (Reaper.reconcile), until the bus answers; done here for this run's containers only,
  // as the tables are shared.
  for (let sweep = 0; sweep < 3; sweep += 1) {
    for (const containerId of allContainerIds(real)) {
      const container = await real.store.getContainer(containerId);
      if (container && container.status !== 'stopped' && container.status !== 'failed') {
        await real.service.useCases.records.flush(container);
      }
    }
  }
}

const sessionIndex = fc.integer({ min: 0, max: SESSIONS - 1 });
const keyIndex = fc.integer({ min: 0, max: KEYS - 1 });
const spec: fc.Arbitrary<Spec> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('assign' as const),
      session: sessionIndex,
      key: keyIndex,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('release' as const), session: sessionIndex }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('touch' as const), session: sessionIndex }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('stop' as const), key: keyIndex }) },
);

const steps = fc.commands(
  [
    fc
      .array(
        fc.record({
          spec,
          copies: fc.integer({ min: 1, max: 2 }),
          order: fc.array(fc.nat(), { minLength: 2, maxLength: 2 }),
        }),
        { minLength: 1, maxLength: 4 },
      )
      .map((items) => new DeliverBatch(items)),
    fc.nat().map((pick) => new Redeliver(pick)),
    fc.constant(new RedeliverRetries()),
    fc
      .tuple(keyIndex, fc.constantFrom('RUNNING' as const, 'STOPPED' as const))
      .map(([k, to]) => new TaskChange(k, to)),
    fc.constant(new BusFails()),
  ],
  { maxCommands: 10 },
);

let runs = 0;

describe('the command handler against a model, on DynamoDB Local', () => {
  it('keeps counts, limits, one live container and released sessions right, and announces every change', async () => {
    await fc.assert(
      fc.asyncProperty(steps, async (commands) => {
        runs += 1;
        const clock = new ManualClock();
        const publisher = new RecordingPublisher();
        const queues = new FakeQueues();
        const real: Real = {
          // Each run has ids of its own, so the runs can share the tables.
          run: `r${runs}-${randomUUID().slice(0, 6)}`,
          service: sessionService({ store, queues, publisher, clock, maxSessions: MAX_SESSIONS }),
          store,
          publisher,
          queues,
          clock,
          seenEnded: new Set(),
        };
        const model: Model = { sent: [], released: new Set() };
        try {
          await fc.asyncModelRun(() => ({ model, real }), commands);
          await settle(real, model);
          await checkInvariants(real, model);
          await checkEvents(real, model);
        } catch (error) {
          const containers = await Promise.all(
            allContainerIds(real).map((id) => real.store.getContainer(id)),
          );
          const history = model.sent.map(
            (m) =>
              `${describeSpec(m.spec)} ${m.body.commandId.slice(0, 8)}: ${m.outcomes.join(',')}`,
          );
          throw new Error(
            `${(error as Error).message}\n--- messages\n${history.join('\n')}\n--- containers\n${containers.map((c) => JSON.stringify(c)).join('\n')}\n--- events\n${describeEvents(publisher.events)}\n--- log\n${real.service.log.lines
              .map(
                (l) =>
                  `${l.level} ${l.message} ${JSON.stringify(l.fields, (_k, v: unknown) => (v instanceof Error ? v.message : v))}`,
              )
              .join('\n')}`,
            { cause: error },
          );
        }
      }),
      // Each step is several round trips to DynamoDB Local on a shared 2-core machine.
      { numRuns: 25 },
    );
  }, 600_000);
});
