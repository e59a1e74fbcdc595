/**
 * The session service's command handler under generated queue messages, over the in-memory
 * fakes: whatever arrives, the handler returns (never throws), a bad body is answered with
 * exactly one `command.rejected` (reason, and the field when one field is at fault) and is
 * never retried, and it changes nothing in the store or the runtime.
 *
 * Reproduce a failure with the seed fast-check prints: BERTH_FUZZ_SEED=<seed> (and
 * BERTH_FUZZ_RUNS=<n> to run longer).
 */
import { UseCases } from '@berth/core';
import {
  COMMAND_TYPES,
  EventSchema,
  isAgentReportType,
  validator,
  type BerthEvent,
} from '@berth/domain';
import { makeCoreDeps, type FakeCoreDeps, type InMemoryStateStore } from '@berth/testing';
import fc from 'fast-check';
import { createCommandHandler } from '../src/handler.ts';

const seed =
  process.env.BERTH_FUZZ_SEED === undefined ? undefined : Number(process.env.BERTH_FUZZ_SEED);
const runs = (numRuns: number): fc.Parameters<unknown> => ({
  numRuns:
    process.env.BERTH_FUZZ_RUNS === undefined ? numRuns : Number(process.env.BERTH_FUZZ_RUNS),
  ...(seed === undefined ? {} : { seed }),
});

const eventShape = validator<BerthEvent>(EventSchema);

type CommandType = (typeof COMMAND_TYPES)[number];

const idPart = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
const opaqueId = fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/);

/** Valid payload fields by command type; optional ones may be left out. */
const FIELDS: Record<
  CommandType,
  Record<string, { valid: fc.Arbitrary<unknown>; optional?: boolean }>
> = {
  'session.assign': {
    sessionId: { valid: opaqueId },
    clientId: { valid: idPart },
    projectId: { valid: idPart },
    userId: { valid: idPart },
    threadId: { valid: opaqueId, optional: true },
  },
  'session.release': { sessionId: { valid: opaqueId } },
  'session.touch': { sessionId: { valid: opaqueId } },
  'container.stop': {
    containerId: { valid: fc.tuple(idPart, idPart, idPart).map((parts) => parts.join('.')) },
    reason: { valid: fc.string({ minLength: 1, maxLength: 50 }), optional: true },
  },
  'thread.ready': {
    sessionId: { valid: opaqueId },
    threadId: { valid: opaqueId },
    containerId: { valid: fc.tuple(idPart, idPart, idPart).map((parts) => parts.join('.')) },
    generation: { valid: fc.integer({ min: 1, max: 1000 }) },
    worktreePath: { valid: fc.string({ minLength: 1, maxLength: 50 }) },
    head: { valid: fc.stringMatching(/^[0-9a-f]{40}$/) },
  },
  'checkpoint.record': {
    sessionId: { valid: opaqueId },
    threadId: { valid: opaqueId },
    containerId: { valid: fc.tuple(idPart, idPart, idPart).map((parts) => parts.join('.')) },
    generation: { valid: fc.integer({ min: 1, max: 1000 }) },
    commit: { valid: fc.stringMatching(/^[0-9a-f]{40}$/) },
    messageId: { valid: opaqueId },
    files: { valid: fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }) },
    filesTotal: { valid: fc.integer({ min: 0, max: 1000 }) },
    revertOf: { valid: fc.stringMatching(/^[0-9a-f]{40}$/), optional: true },
    createdAt: {
      valid: fc
        .date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true })
        .map((d) => d.toISOString()),
    },
  },
  'devserver.state': {
    containerId: { valid: fc.tuple(idPart, idPart, idPart).map((parts) => parts.join('.')) },
    generation: { valid: fc.integer({ min: 1, max: 1000 }) },
    state: { valid: fc.constantFrom('starting', 'up', 'crashed') },
    port: { valid: fc.integer({ min: 1, max: 65535 }) },
    restarts: { valid: fc.integer({ min: 0, max: 1000 }) },
    since: {
      valid: fc
        .date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true })
        .map((d) => d.toISOString()),
    },
    sequence: { valid: fc.integer({ min: 1, max: 1000 }) },
  },
};

/** Values no field of any command accepts: each is bad for whichever field it lands in. */
const badValue = fc.oneof(
  fc.constantFrom(
    '',
    '..',
    '../../etc',
    'a/b',
    '%2F',
    '\u0000',
    'A B',
    'ä',
    '😀',
    'x'.repeat(300),
    'y'.repeat(100_000),
    '__proto__/x',
    'a b',
    '\n',
  ),
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.jsonValue({ maxDepth: 2 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
);

interface ValidCommand {
  type: CommandType;
  commandId: string;
  payload: Record<string, unknown>;
}

const validCommand: fc.Arbitrary<ValidCommand> = fc.constantFrom(...COMMAND_TYPES).chain((type) => {
  const fields = FIELDS[type];
  const names = Object.keys(fields);
  return fc
    .tuple(
      opaqueId,
      fc.tuple(...names.map((name) => fields[name]!.valid)),
      fc.tuple(...names.map(() => fc.boolean())),
    )
    .map(([commandId, values, keepOptional]) => {
      const payload: Record<string, unknown> = {};
      names.forEach((name, i) => {
        if (!fields[name]!.optional || keepOptional[i]) payload[name] = values[i];
      });
      return { type, commandId, payload };
    });
});

// The contract's rules, written out again so the oracle does not share a mistake with the code.
const ID_PART = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const OPAQUE = /^[A-Za-z0-9._:-]{1,128}$/;
const VALID: Record<string, (value: unknown) => boolean> = {
  type: (v) => (COMMAND_TYPES as readonly unknown[]).includes(v),
  commandId: (v) => typeof v === 'string' && OPAQUE.test(v),
  'payload.sessionId': (v) => typeof v === 'string' && OPAQUE.test(v),
  'payload.threadId': (v) => typeof v === 'string' && OPAQUE.test(v),
  'payload.clientId': (v) => typeof v === 'string' && ID_PART.test(v),
  'payload.projectId': (v) => typeof v === 'string' && ID_PART.test(v),
  'payload.userId': (v) => typeof v === 'string' && ID_PART.test(v),
  'payload.containerId': (v) =>
    typeof v === 'string' &&
    v.split('.').length === 3 &&
    v.split('.').every((p) => ID_PART.test(p)),
  'payload.reason': (v) => typeof v === 'string' && [...v].length >= 1 && [...v].length <= 200,
  'payload.generation': (v) => Number.isInteger(v) && (v as number) >= 1,
  'payload.worktreePath': (v) =>
    typeof v === 'string' && [...v].length >= 1 && [...v].length <= 4096,
  'payload.commit': (v) => typeof v === 'string' && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(v),
  'payload.revertOf': (v) => typeof v === 'string' && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(v),
  'payload.messageId': (v) => typeof v === 'string' && [...v].length >= 1 && [...v].length <= 128,
  'payload.files': (v) =>
    Array.isArray(v) &&
    v.length <= 100 &&
    v.every((f) => typeof f === 'string' && [...f].length <= 4096),
  'payload.filesTotal': (v) => Number.isInteger(v) && (v as number) >= 0,
  'payload.createdAt': (v) =>
    typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/.test(v),
  'payload.head': (v) => typeof v === 'string' && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(v),
  'payload.state': (v) => v === 'starting' || v === 'up' || v === 'crashed',
  'payload.port': (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535,
  'payload.restarts': (v) => Number.isInteger(v) && (v as number) >= 0,
  'payload.since': (v) =>
    typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/.test(v),
  'payload.sequence': (v) => Number.isInteger(v) && (v as number) >= 1,
};

/** A valid command with exactly one field broken, and that field as a rejection names it. */
const oneFieldBroken: fc.Arbitrary<{ body: string; field: string }> = validCommand.chain(
  (command) => {
    const payloadFields = Object.keys(FIELDS[command.type]);
    const targets = [
      'type',
      'commandId',
      'payload',
      ...payloadFields.map((name) => `payload.${name}`),
      'extra',
      'payload.extra',
    ];
    const badFor = (target: string) =>
      target === 'type'
        ? // Names every object inherits, and near misses of the real types.
          fc.oneof(
            fc.constantFrom(
              'constructor',
              'toString',
              '__proto__',
              'hasOwnProperty',
              'session.Assign',
              'session.assign ',
            ),
            badValue,
          )
        : badValue;
    const broken = fc
      .constantFrom(...targets)
      .chain((target) =>
        fc.tuple(fc.constant(target), fc.constantFrom('replace', 'remove'), badFor(target)),
      );
    return broken.map(([target, how, value]) => {
      const body: Record<string, unknown> = { ...command, payload: { ...command.payload } };
      const payload = body.payload as Record<string, unknown>;
      const [head, tail] = target.split('.') as [string, string | undefined];
      const container = tail === undefined ? body : payload;
      const key = tail ?? head;
      const optional = tail !== undefined && FIELDS[command.type][tail]?.optional === true;
      const isExtra = key === 'extra';
      if (how === 'remove' && !isExtra && !optional) delete container[key];
      // An object in place of the payload is still "payload", only differently broken; a value
      // that happens to be valid where it lands (".." is a fine sessionId) is made invalid.
      else if (target === 'payload')
        container[key] =
          typeof value === 'object' && value !== null && !Array.isArray(value) ? [value] : value;
      else if (VALID[target]?.(value))
        // A number where numbers are fine (a generation, a count) is made a string instead.
        container[key] = VALID[target]?.(12345) ? 'not a number' : 12345;
      else container[key] = value;
      return { body: JSON.stringify(body), field: target };
    });
  },
);

const notACommand = fc.oneof(
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.constantFrom(
    '',
    ' ',
    '{',
    '{"type":',
    'null',
    '[]',
    '"session.assign"',
    '42',
    'true',
    '['.repeat(10_000) + ']'.repeat(10_000),
  ),
  fc
    .jsonValue({ maxDepth: 3 })
    .filter((v) => typeof v !== 'object' || v === null || Array.isArray(v))
    .map((v) => JSON.stringify(v)),
);

let deps: FakeCoreDeps<InMemoryStateStore>;
let handle: ReturnType<typeof createCommandHandler>;
let messageNumber = 0;

beforeEach(() => {
  deps = makeCoreDeps();
  const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
  handle = createCommandHandler({
    useCases: new UseCases({ ...deps, log: quiet }),
    publisher: deps.publisher,
    clock: deps.clock,
    log: quiet,
  });
});

/** Hands one body to the handler as the consumer would and returns what it published. */
async function deliver(body: string): Promise<{ outcome: string; events: BerthEvent[] }> {
  const before = deps.publisher.events.length;
  messageNumber += 1;
  const outcome = await handle({ body, messageId: `m-${messageNumber}`, receiveCount: 1 });
  const events = deps.publisher.events.slice(before);
  for (const event of events) expect(eventShape.check(event)).toBe(true);
  return { outcome, events };
}

function expectOneRejection(events: BerthEvent[]): Record<string, unknown> {
  expect(events.map((event) => event.type)).toEqual(['command.rejected']);
  const payload = events[0]!.payload;
  expect(typeof payload.reason).toBe('string');
  expect((payload.reason as string).length).toBeGreaterThan(0);
  expect((payload.reason as string).length).toBeLessThan(1000);
  return payload;
}

function expectNothingChanged(writesBefore: number, startsBefore: number): void {
  expect(deps.store.writes).toBe(writesBefore);
  expect(deps.runtime.startCalls).toHaveLength(startsBefore);
}

describe('the command handler under generated messages', () => {
  it('answers a body that is not a command object once, with a reason, and does not retry it', async () => {
    await fc.assert(
      fc.asyncProperty(notACommand, async (body) => {
        const writes = deps.store.writes;
        const starts = deps.runtime.startCalls.length;
        const { outcome, events } = await deliver(body);
        expect(outcome).toBe('done');
        expectOneRejection(events);
        expectNothingChanged(writes, starts);
      }),
      runs(200),
    );
  });

  it('answers a command with one bad, missing or extra field once, naming that field', async () => {
    await fc.assert(
      fc.asyncProperty(oneFieldBroken, async ({ body, field }) => {
        const writes = deps.store.writes;
        const starts = deps.runtime.startCalls.length;
        const { outcome, events } = await deliver(body);
        expect(outcome).toBe('done');
        const payload = expectOneRejection(events);
        // A bad element of an array field (`payload.files.0`) names the element.
        const named = String(payload.field);
        expect(named.startsWith(`${field}.`) ? field : named).toBe(field);
        const sent = JSON.parse(body) as { commandId?: unknown };
        if (field !== 'commandId') expect(events[0]!.commandId).toBe(sent.commandId);
        expectNothingChanged(writes, starts);
      }),
      runs(300),
    );
  });

  it('carries out every valid command without a retry, rejecting only a stop of a container that does not exist and agent reports (they have their own queue)', async () => {
    let sent = 0;
    await fc.assert(
      fc.asyncProperty(validCommand, async (generated) => {
        // Every command has its own commandId (the contract refuses one reused by another
        // type), and the store is shared by every run: numbered, so none repeats.
        sent += 1;
        const command = { ...generated, commandId: `${sent}-${generated.commandId}`.slice(0, 128) };
        const { outcome, events } = await deliver(JSON.stringify(command));
        expect(outcome).toBe('done');
        const rejected = events.filter((event) => event.type === 'command.rejected');
        const stoppingMissing =
          command.type === 'container.stop' &&
          !deps.store.allContainers().some((c) => c.containerId === command.payload.containerId);
        if (stoppingMissing) {
          expect(rejected).toHaveLength(1);
          expect(rejected[0]!.payload.reason).toMatch(/^not_found: /);
        } else if (isAgentReportType(command.type)) {
          expect(rejected).toHaveLength(1);
          expect(rejected[0]!.payload.reason).toMatch(/berth-agent-reports/);
        } else {
          expect(rejected).toEqual([]);
        }
      }),
      runs(200),
    );
  });

  it('keeps working after any mix of bad and good messages: a later valid assign still gets its container', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.oneof(
            notACommand,
            oneFieldBroken.map(({ body }) => body),
          ),
          { minLength: 1, maxLength: 10 },
        ),
        async (bodies) => {
          for (const body of bodies) expect((await deliver(body)).outcome).toBe('done');
          const sessionId = `s-${messageNumber}`;
          const userId = `u-${messageNumber}`;
          const { outcome, events } = await deliver(
            JSON.stringify({
              type: 'session.assign',
              commandId: `c-${messageNumber}`,
              payload: { sessionId, clientId: 'acme', projectId: 'web', userId },
            }),
          );
          expect(outcome).toBe('done');
          expect(
            events
              .filter((event) => event.type === 'session.assigned')
              .map((event) => event.sessionId),
          ).toEqual([sessionId]);
        },
      ),
      runs(50),
    );
  });
});
