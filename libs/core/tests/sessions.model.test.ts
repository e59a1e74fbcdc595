/**
 * A model-based test of the session commands over the fakes: random sequences of assign,
 * release, touch and stop, each command possibly delivered twice (one after the other or at
 * once), batches delivered in shuffled order or all at once, and old commands redelivered
 * late, as SQS may do. After every step the system is checked against a simple model.
 */
import fc from 'fast-check';
import {
  NotFoundError,
  containerIdOf,
  isLive,
  type ContainerKey,
  type SessionAssign,
  type SessionRelease,
  type SessionTouch,
  stopReason,
} from '@berth/domain';
import {
  KEY,
  OTHER_KEY,
  assignCommand,
  releaseCommand,
  settle,
  touchCommand,
  world,
  type World,
} from './support.ts';

const SESSIONS = ['s1', 's2', 's3', 's4', 's5'] as const;
const KEYS: readonly ContainerKey[] = [KEY, OTHER_KEY];
const MAX_SESSIONS = 2;

type Delivery =
  | { kind: 'assign'; command: SessionAssign }
  | { kind: 'release'; command: SessionRelease }
  | { kind: 'touch'; command: SessionTouch };

type SessionState = { status: 'active'; containerId: string } | { status: 'ended' };

interface Model {
  sessions: Map<string, SessionState>;
  /** Deliveries made so far, any of which SQS may deliver again later. */
  history: Delivery[];
  /** What each assign answered first: every later delivery of it answers the same. */
  decided: Map<string, Expected>;
}

const describeDelivery = (d: Delivery) =>
  d.kind === 'assign'
    ? `assign(${d.command.payload.sessionId}→${containerIdOf(d.command.payload)})`
    : `${d.kind}(${d.command.payload.sessionId})`;

function activeOn(model: Model, containerId: string): number {
  return [...model.sessions.values()].filter(
    (s) => s.status === 'active' && s.containerId === containerId,
  ).length;
}

type Expected =
  | { kind: 'assigned' }
  | { kind: 'rejected'; reason: string }
  | { kind: 'ended' }
  | { kind: 'touched' };

/** What the model says a delivery answers, and the model after it. */
function predict(model: Model, delivery: Delivery): Expected {
  const sessionId = delivery.command.payload.sessionId;
  switch (delivery.kind) {
    case 'assign': {
      const decided = model.decided.get(delivery.command.commandId);
      if (decided) return decided;
      const expected = decideAssign(model, delivery.command);
      model.decided.set(delivery.command.commandId, expected);
      return expected;
    }
    case 'release':
      model.sessions.set(sessionId, { status: 'ended' });
      return { kind: 'ended' };
    case 'touch':
      return { kind: 'touched' };
  }
}

function decideAssign(model: Model, command: SessionAssign): Expected {
  const sessionId = command.payload.sessionId;
  const state = model.sessions.get(sessionId);
  const containerId = containerIdOf(command.payload);
  if (state?.status === 'ended') return { kind: 'rejected', reason: 'released' };
  if (state?.status === 'active') {
    return state.containerId === containerId
      ? { kind: 'assigned' }
      : { kind: 'rejected', reason: 'conflict' };
  }
  if (activeOn(model, containerId) >= MAX_SESSIONS) return { kind: 'rejected', reason: 'capacity' };
  model.sessions.set(sessionId, { status: 'active', containerId });
  return { kind: 'assigned' };
}

async function deliver(real: World, delivery: Delivery): Promise<Expected> {
  switch (delivery.kind) {
    case 'assign': {
      const outcome = await real.useCases.sessions.assign(delivery.command);
      return outcome.kind === 'assigned'
        ? { kind: 'assigned' }
        : { kind: 'rejected', reason: outcome.reason };
    }
    case 'release': {
      const ended = await real.useCases.sessions.release(delivery.command);
      expect(ended.status).not.toBe('active');
      return { kind: 'ended' };
    }
    case 'touch':
      await real.useCases.sessions.touch(delivery.command);
      return { kind: 'touched' };
  }
}

/** Every delivery in `copies`, one after the other or all at once. */
async function deliverCopies(
  real: World,
  delivery: Delivery,
  copies: number,
  together: boolean,
): Promise<Expected[]> {
  if (together) return Promise.all(Array.from({ length: copies }, () => deliver(real, delivery)));
  const outcomes: Expected[] = [];
  for (let i = 0; i < copies; i += 1) outcomes.push(await deliver(real, delivery));
  return outcomes;
}

/** What must hold after every step, whatever happened. */
function checkInvariants(model: Model, real: World): void {
  const { store, runtime } = real.deps;
  const containers = store.allContainers();
  const sessions = store.allSessions();
  for (const container of containers) {
    const active = sessions
      .filter(
        (s) =>
          s.status === 'active' &&
          s.containerId === container.containerId &&
          s.generation === container.generation,
      )
      .map((s) => s.sessionId)
      .sort();
    expect(container.sessions.length).toBeLessThanOrEqual(MAX_SESSIONS);
    expect([...container.sessions].sort()).toEqual(active);
    if (!isLive(container.status)) expect(container.sessions).toEqual([]);
    const liveTasks = runtime.liveTasks().filter((t) => t.containerId === container.containerId);
    expect(liveTasks.length).toBeLessThanOrEqual(1);
    for (const task of liveTasks) {
      expect(isLive(container.status)).toBe(true);
      expect(task.taskArn).toBe(container.taskArn);
    }
  }
  for (const session of sessions.filter((s) => s.status === 'active')) {
    const container = containers.find((c) => c.containerId === session.containerId);
    expect(container?.generation).toBe(session.generation);
  }
  for (const sessionId of SESSIONS) {
    const state = model.sessions.get(sessionId);
    const stored = sessions.find((s) => s.sessionId === sessionId);
    if (state === undefined) expect(stored).toBeUndefined();
    else if (state.status === 'ended') expect(stored?.status).not.toBe('active');
    else expect(stored).toMatchObject({ status: 'active', containerId: state.containerId });
  }
}

class DeliverInOrder implements fc.AsyncCommand<Model, World> {
  readonly items: readonly { delivery: Delivery; copies: number; together: boolean }[];
  constructor(items: readonly { delivery: Delivery; copies: number; together: boolean }[]) {
    this.items = items;
  }
  check = () => true;
  async run(model: Model, real: World): Promise<void> {
    real.deps.clock.advance('1s');
    for (const { delivery, copies, together } of this.items) {
      const expected = predict(model, delivery);
      const outcomes = await deliverCopies(real, delivery, copies, together);
      for (const outcome of outcomes) expect(outcome).toEqual(expected);
      if (
        delivery.kind === 'touch' &&
        model.sessions.get(delivery.command.payload.sessionId)?.status === 'active'
      ) {
        const stored = await real.deps.store.getSession(delivery.command.payload.sessionId);
        expect(stored?.lastActivityAt).toBe(real.deps.clock.iso());
      }
      model.history.push(delivery);
    }
    checkInvariants(model, real);
  }
  toString = () =>
    `inOrder[${this.items.map((i) => `${describeDelivery(i.delivery)}×${i.copies}${i.together ? '∥' : ''}`).join(', ')}]`;
}

class DeliverAllAtOnce implements fc.AsyncCommand<Model, World> {
  readonly deliveries: readonly Delivery[];
  constructor(deliveries: readonly Delivery[]) {
    this.deliveries = deliveries;
  }
  check = () => true;
  async run(model: Model, real: World): Promise<void> {
    real.deps.clock.advance('1s');
    const answers = await Promise.all(this.deliveries.map((d) => deliver(real, d)));
    // Which of racing commands wins is up to the race; each answer is then final.
    this.deliveries.forEach((d, index) => {
      if (d.kind !== 'assign') return;
      const decided = model.decided.get(d.command.commandId);
      if (decided) expect(answers[index]).toEqual(decided);
      else model.decided.set(d.command.commandId, answers[index]!);
    });
    const released = new Set(
      this.deliveries.filter((d) => d.kind === 'release').map((d) => d.command.payload.sessionId),
    );
    const assignedTo = (sessionId: string) =>
      new Set(
        this.deliveries
          .filter((d): d is Extract<Delivery, { kind: 'assign' }> => d.kind === 'assign')
          .filter((d) => d.command.payload.sessionId === sessionId)
          .map((d) => containerIdOf(d.command.payload)),
      );
    // Which of competing assigns wins is up to the race; what may happen is not.
    for (const sessionId of SESSIONS) {
      const before = model.sessions.get(sessionId);
      const stored = await real.deps.store.getSession(sessionId);
      if (before?.status === 'ended' || released.has(sessionId)) {
        expect(stored?.status).not.toBe('active');
        model.sessions.set(sessionId, { status: 'ended' });
      } else if (before?.status === 'active') {
        expect(stored).toMatchObject({ status: 'active', containerId: before.containerId });
      } else if (stored) {
        expect(stored.status).toBe('active');
        expect(assignedTo(sessionId).has(stored.containerId!)).toBe(true);
        model.sessions.set(sessionId, { status: 'active', containerId: stored.containerId! });
      }
    }
    model.history.push(...this.deliveries);
    checkInvariants(model, real);
  }
  toString = () => `allAtOnce[${this.deliveries.map(describeDelivery).join(', ')}]`;
}

class Redeliver implements fc.AsyncCommand<Model, World> {
  readonly pick: number;
  constructor(pick: number) {
    this.pick = pick;
  }
  check = (model: Readonly<Model>) => model.history.length > 0;
  async run(model: Model, real: World): Promise<void> {
    const delivery = model.history[this.pick % model.history.length]!;
    const expected = predict(model, delivery);
    expect(await deliver(real, delivery)).toEqual(expected);
    checkInvariants(model, real);
  }
  toString = () => `redeliver(#${this.pick})`;
}

class MarkRunning implements fc.AsyncCommand<Model, World> {
  readonly keyIndex: number;
  readonly copies: number;
  constructor(keyIndex: number, copies: number) {
    this.keyIndex = keyIndex;
    this.copies = copies;
  }
  check = () => true;
  async run(model: Model, real: World): Promise<void> {
    const container = await real.deps.store.getContainer(containerIdOf(KEYS[this.keyIndex]!));
    if (container?.status !== 'starting' || !container.taskArn) return;
    const event = real.deps.runtime.change(container.taskArn, { lastStatus: 'RUNNING' });
    for (let i = 0; i < this.copies; i += 1) await real.useCases.taskEvents.handle(event);
    expect((await real.deps.store.getContainer(container.containerId))?.status).toBe('running');
    checkInvariants(model, real);
  }
  toString = () => `running(${containerIdOf(KEYS[this.keyIndex]!)})×${this.copies}`;
}

class Stop implements fc.AsyncCommand<Model, World> {
  readonly keyIndex: number;
  readonly copies: number;
  constructor(keyIndex: number, copies: number) {
    this.keyIndex = keyIndex;
    this.copies = copies;
  }
  check = () => true;
  async run(model: Model, real: World): Promise<void> {
    const containerId = containerIdOf(KEYS[this.keyIndex]!);
    const before = await real.deps.store.getContainer(containerId);
    const outcomes = [];
    for (let i = 0; i < this.copies; i += 1) {
      outcomes.push(await settle(real.useCases.containers.stop(containerId, stopReason('manual'))));
    }
    if (!before) {
      for (const { error } of outcomes) expect(error).toBeInstanceOf(NotFoundError);
    } else {
      for (const { error } of outcomes) expect(error).toBeUndefined();
    }
    if (before && isLive(before.status)) {
      const taskArn = before.taskArn!;
      const stopped = real.deps.runtime.change(taskArn, { lastStatus: 'STOPPED', exitCode: 0 });
      for (let i = 0; i < this.copies; i += 1) await real.useCases.taskEvents.handle(stopped);
      const after = await real.deps.store.getContainer(containerId);
      expect(isLive(after!.status)).toBe(false);
      for (const [sessionId, state] of model.sessions) {
        if (state.status === 'active' && state.containerId === containerId) {
          model.sessions.set(sessionId, { status: 'ended' });
        }
      }
    }
    checkInvariants(model, real);
  }
  toString = () => `stop(${containerIdOf(KEYS[this.keyIndex]!)})×${this.copies}`;
}

const sessionId = fc.constantFrom(...SESSIONS);
const keyIndex = fc.nat({ max: KEYS.length - 1 });
const commandId = fc.nat({ max: 1_000_000 }).map((n) => `c-${n}`);

const delivery: fc.Arbitrary<Delivery> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.tuple(sessionId, keyIndex, commandId).map(([s, k, id]): Delivery => ({
      kind: 'assign',
      command: assignCommand(s, KEYS[k], { commandId: id }),
    })),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(sessionId, commandId)
      .map(([s, id]): Delivery => ({ kind: 'release', command: releaseCommand(s, id) })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(sessionId, commandId)
      .map(([s, id]): Delivery => ({ kind: 'touch', command: touchCommand(s, id) })),
  },
);

const copies = fc.integer({ min: 1, max: 2 });

const commands = fc.commands(
  [
    fc
      .array(
        fc.record({ delivery, copies, together: fc.boolean(), order: fc.double({ noNaN: true }) }),
        {
          minLength: 1,
          maxLength: 4,
        },
      )
      // Shuffled: SQS keeps no order, so a batch arrives in any order.
      .map((items) => new DeliverInOrder([...items].sort((a, b) => a.order - b.order))),
    fc
      .array(fc.tuple(delivery, copies), { minLength: 2, maxLength: 6 })
      .map(
        (items) =>
          new DeliverAllAtOnce(items.flatMap(([d, n]) => Array.from({ length: n }, () => d))),
      ),
    fc.nat().map((pick) => new Redeliver(pick)),
    fc.tuple(keyIndex, copies).map(([k, n]) => new MarkRunning(k, n)),
    fc.tuple(keyIndex, copies).map(([k, n]) => new Stop(k, n)),
  ],
  { size: '+1' },
);

describe('SessionService against a model', () => {
  it('keeps counts, limits and released sessions right under duplicates and reordering', async () => {
    await fc.assert(
      fc.asyncProperty(commands, async (cmds) => {
        const setup = () => ({
          model: {
            sessions: new Map<string, SessionState>(),
            history: [],
            decided: new Map(),
          } satisfies Model,
          real: world({ settings: { maxSessions: MAX_SESSIONS } }),
        });
        await fc.asyncModelRun(setup, cmds);
      }),
      { numRuns: 60 },
    );
    // CPU time, not a timing claim: on a loaded 2-core machine 60 runs can take a minute.
  }, 180_000);
});
