/**
 * parseCommand under generated input: every command type with each field valid, missing,
 * of the wrong type, hostile (path-like, unicode, huge, prototype names) or extra. The
 * generator knows which fields it broke, so a rejection must name one of them and a body
 * it did not break must be accepted unchanged.
 *
 * Reproduce a failure with the seed fast-check prints: BERTH_FUZZ_SEED=<seed> (and
 * BERTH_FUZZ_RUNS=<n> to run longer).
 */
import fc from 'fast-check';
import { COMMAND_TYPES, parseCommand, type ParsedCommand } from '../src/index.ts';

const seed =
  process.env.BERTH_FUZZ_SEED === undefined ? undefined : Number(process.env.BERTH_FUZZ_SEED);
const runs = (numRuns: number): fc.Parameters<unknown> => ({
  numRuns:
    process.env.BERTH_FUZZ_RUNS === undefined ? numRuns : Number(process.env.BERTH_FUZZ_RUNS),
  ...(seed === undefined ? {} : { seed }),
});

// The contract's rules, written out again here rather than imported, so the test does not
// share a mistake with the code under test.
const ID_PART = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
const OPAQUE = /^[A-Za-z0-9._:-]{1,128}$/;
const isIdPart = (v: unknown) => typeof v === 'string' && ID_PART.test(v);
const isOpaque = (v: unknown) => typeof v === 'string' && OPAQUE.test(v);
const isContainerId = (v: unknown) =>
  typeof v === 'string' && v.split('.').length === 3 && v.split('.').every((p) => ID_PART.test(p));
// Lengths count code points, as JSON Schema does.
const isReason = (v: unknown) =>
  typeof v === 'string' && [...v].length >= 1 && [...v].length <= 200;

/** Names an attacker or a careless client would try: path escapes, prototype keys, huge and odd strings. */
const HOSTILE_STRINGS = [
  '',
  ' ',
  '.',
  '..',
  '../',
  '../../etc/passwd',
  'a/b',
  'a\\b',
  '%2e%2e',
  '%2F',
  'a%2Fb',
  '\u0000',
  'a\u0000b',
  'A',
  'a.b',
  'a..b.c',
  '-a',
  'a-',
  'a_b',
  'ä',
  '😀',
  '\u202e',
  '\n',
  'a'.repeat(64),
  'x'.repeat(129),
  'y'.repeat(201),
  'z'.repeat(100_000),
  '__proto__',
  'constructor',
  'prototype',
  'toString',
  'hasOwnProperty',
  'valueOf',
  'null',
  'undefined',
  '{}',
  '[]',
  'session.assign ',
  'Session.Assign',
] as const;

const hostileString = fc.oneof(
  { arbitrary: fc.constantFrom(...HOSTILE_STRINGS), weight: 3 },
  { arbitrary: fc.string({ unit: 'binary', maxLength: 300 }), weight: 2 },
  { arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }), weight: 1 },
);
const wrongType = fc.oneof(
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string(), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 3 }),
  fc.jsonValue({ maxDepth: 4 }),
);

const idPart = fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/);
const opaqueId = fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/);
const containerId = fc.tuple(idPart, idPart, idPart).map((parts) => parts.join('.'));
const reason = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 });

type Plan =
  { kind: 'valid'; value: unknown } | { kind: 'missing' } | { kind: 'bad'; value: unknown };

interface FieldSpec {
  valid: fc.Arbitrary<unknown>;
  isValid: (value: unknown) => boolean;
  optional?: boolean;
}

const PAYLOADS: Record<(typeof COMMAND_TYPES)[number], Record<string, FieldSpec>> = {
  'session.assign': {
    sessionId: { valid: opaqueId, isValid: isOpaque },
    clientId: { valid: idPart, isValid: isIdPart },
    projectId: { valid: idPart, isValid: isIdPart },
    userId: { valid: idPart, isValid: isIdPart },
    threadId: { valid: opaqueId, isValid: isOpaque, optional: true },
  },
  'session.release': { sessionId: { valid: opaqueId, isValid: isOpaque } },
  'session.touch': { sessionId: { valid: opaqueId, isValid: isOpaque } },
  'container.stop': {
    containerId: { valid: containerId, isValid: isContainerId },
    reason: { valid: reason, isValid: isReason, optional: true },
  },
  'thread.ready': {
    sessionId: { valid: opaqueId, isValid: isOpaque },
    threadId: { valid: opaqueId, isValid: isOpaque },
    containerId: { valid: containerId, isValid: isContainerId },
    generation: {
      valid: fc.integer({ min: 1, max: 1_000_000 }),
      isValid: (v) => Number.isInteger(v) && (v as number) >= 1,
    },
    worktreePath: {
      valid: fc.string({ minLength: 1, maxLength: 50 }),
      isValid: (v) => typeof v === 'string' && [...v].length >= 1 && [...v].length <= 4096,
    },
    head: {
      valid: fc.stringMatching(/^[0-9a-f]{40}$/),
      isValid: (v) => typeof v === 'string' && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(v),
    },
  },
  'checkpoint.record': {
    sessionId: { valid: opaqueId, isValid: isOpaque },
    threadId: { valid: opaqueId, isValid: isOpaque },
    containerId: { valid: containerId, isValid: isContainerId },
    generation: {
      valid: fc.integer({ min: 1, max: 1_000_000 }),
      isValid: (v) => Number.isInteger(v) && (v as number) >= 1,
    },
    commit: {
      valid: fc.stringMatching(/^[0-9a-f]{40}$/),
      isValid: (v) => typeof v === 'string' && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(v),
    },
    messageId: {
      valid: fc.string({ minLength: 1, maxLength: 64 }),
      isValid: (v) => typeof v === 'string' && [...v].length >= 1 && [...v].length <= 128,
    },
    files: {
      valid: fc.array(fc.string({ maxLength: 20 }), { maxLength: 5 }),
      isValid: (v) =>
        Array.isArray(v) &&
        v.length <= 100 &&
        v.every((f) => typeof f === 'string' && [...f].length <= 4096),
    },
    filesTotal: {
      valid: fc.integer({ min: 0, max: 1000 }),
      isValid: (v) => Number.isInteger(v) && (v as number) >= 0,
    },
    revertOf: {
      valid: fc.stringMatching(/^[0-9a-f]{40}$/),
      isValid: (v) => typeof v === 'string' && /^[0-9a-f]{40}([0-9a-f]{24})?$/.test(v),
      optional: true,
    },
    createdAt: {
      valid: fc
        .date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true })
        .map((d) => d.toISOString()),
      isValid: (v) =>
        typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/.test(v),
    },
  },
  'devserver.state': {
    containerId: { valid: containerId, isValid: isContainerId },
    generation: {
      valid: fc.integer({ min: 1, max: 1_000_000 }),
      isValid: (v) => Number.isInteger(v) && (v as number) >= 1,
    },
    state: {
      valid: fc.constantFrom('starting', 'up', 'crashed'),
      isValid: (v) => v === 'starting' || v === 'up' || v === 'crashed',
    },
    port: {
      valid: fc.integer({ min: 1, max: 65535 }),
      isValid: (v) => Number.isInteger(v) && (v as number) >= 1 && (v as number) <= 65535,
    },
    restarts: {
      valid: fc.integer({ min: 0, max: 1000 }),
      isValid: (v) => Number.isInteger(v) && (v as number) >= 0,
    },
    since: {
      valid: fc
        .date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true })
        .map((d) => d.toISOString()),
      isValid: (v) =>
        typeof v === 'string' && /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z$/.test(v),
    },
    sequence: {
      valid: fc.integer({ min: 1, max: 1_000_000 }),
      isValid: (v) => Number.isInteger(v) && (v as number) >= 1,
    },
  },
};

/** Mostly valid, so a body usually breaks one or two fields and the parser must find which. */
const plan = (spec: FieldSpec): fc.Arbitrary<Plan> =>
  fc.oneof(
    { arbitrary: spec.valid.map((value): Plan => ({ kind: 'valid', value })), weight: 6 },
    { arbitrary: fc.constant<Plan>({ kind: 'missing' }), weight: 1 },
    {
      arbitrary: fc
        .oneof(hostileString, wrongType)
        .filter((value) => !spec.isValid(value))
        .map((value): Plan => ({ kind: 'bad', value })),
      weight: 2,
    },
  );

/** Extra keys, prototype names among them; none may be accepted. */
const extraKeys = (known: readonly string[]) =>
  fc.oneof(
    { arbitrary: fc.constant<[string, unknown][]>([]), weight: 6 },
    {
      arbitrary: fc
        .array(
          fc.tuple(
            fc.oneof(
              fc.constantFrom('__proto__', 'constructor', 'prototype', 'extra', 'field'),
              fc.string({ minLength: 1, maxLength: 20 }),
            ),
            fc.jsonValue({ maxDepth: 2 }),
          ),
          { minLength: 1, maxLength: 3 },
        )
        .map((pairs) => pairs.filter(([key]) => !known.includes(key))),
      weight: 1,
    },
  );

interface Generated {
  body: string;
  /** Fields the generator broke, as the rejection names them (`payload.sessionId`). */
  bad: Set<string>;
}

/** Builds an object whose keys are all own properties, `__proto__` included. */
const objectOf = (entries: [string, unknown][]) =>
  Object.fromEntries(entries) as Record<string, unknown>;

function apply(
  entries: [string, unknown][],
  bad: Set<string>,
  name: string,
  field: Plan,
  optional: boolean,
): void {
  if (field.kind === 'valid' || field.kind === 'bad') entries.push([name, field.value]);
  if (field.kind === 'bad' || (field.kind === 'missing' && !optional)) bad.add(name);
}

const payloadOf = (type: (typeof COMMAND_TYPES)[number]) => {
  const specs = PAYLOADS[type];
  const names = Object.keys(specs);
  return fc.oneof(
    {
      arbitrary: fc
        .tuple(fc.tuple(...names.map((name) => plan(specs[name] as FieldSpec))), extraKeys(names))
        .map(([plans, extras]) => {
          const entries: [string, unknown][] = [];
          const bad = new Set<string>();
          names.forEach((name, i) =>
            apply(entries, bad, name, plans[i] as Plan, specs[name]?.optional === true),
          );
          for (const [key, value] of extras) {
            entries.push([key, value]);
            bad.add(key);
          }
          return { kind: 'object' as const, value: objectOf(entries), bad };
        }),
      weight: 8,
    },
    { arbitrary: fc.constant({ kind: 'missing' as const }), weight: 1 },
    {
      arbitrary: wrongType
        .filter((v) => typeof v !== 'object' || v === null || Array.isArray(v))
        .map((value) => ({ kind: 'bad' as const, value })),
      weight: 1,
    },
  );
};

const knownType = fc.constantFrom(...COMMAND_TYPES);
const command: fc.Arbitrary<Generated> = knownType.chain((type) =>
  fc
    .tuple(
      fc.oneof(
        { arbitrary: fc.constant<Plan>({ kind: 'valid', value: type }), weight: 8 },
        { arbitrary: fc.constant<Plan>({ kind: 'missing' }), weight: 1 },
        {
          arbitrary: fc
            .oneof(hostileString, wrongType)
            .filter((v) => !(COMMAND_TYPES as readonly unknown[]).includes(v))
            .map((value): Plan => ({ kind: 'bad', value })),
          weight: 2,
        },
      ),
      plan({ valid: opaqueId, isValid: isOpaque }),
      payloadOf(type),
      extraKeys(['type', 'commandId', 'payload']),
    )
    .map(([typePlan, commandIdPlan, payload, extras]) => {
      const entries: [string, unknown][] = [];
      const bad = new Set<string>();
      apply(entries, bad, 'type', typePlan, false);
      apply(entries, bad, 'commandId', commandIdPlan, false);
      if (payload.kind === 'object') {
        entries.push(['payload', payload.value]);
        for (const field of payload.bad) bad.add(`payload.${field}`);
      } else {
        if (payload.kind === 'bad') entries.push(['payload', payload.value]);
        bad.add('payload');
      }
      for (const [key, value] of extras) {
        entries.push([key, value]);
        bad.add(key);
      }
      return { body: JSON.stringify(objectOf(entries)), bad };
    }),
);

function parseSafely(body: string): ParsedCommand {
  try {
    return parseCommand(body);
  } catch (error) {
    throw new Error(`parseCommand threw for ${body.slice(0, 200)}: ${String(error)}`);
  }
}

function expectWellFormedRejection(
  parsed: ParsedCommand,
): asserts parsed is Extract<ParsedCommand, { ok: false }> {
  expect(parsed.ok).toBe(false);
  if (parsed.ok) return;
  expect(typeof parsed.rejection.reason).toBe('string');
  expect(parsed.rejection.reason.length).toBeGreaterThan(0);
  // The reason is read by people and logged: it may quote a bad value, but never a huge one.
  expect(parsed.rejection.reason.length).toBeLessThan(1000);
  if (parsed.rejection.commandId !== undefined) expect(parsed.rejection.commandId).toMatch(OPAQUE);
}

describe('parseCommand under generated commands', () => {
  it('accepts exactly the bodies with no broken field, unchanged, and otherwise names a broken field', () => {
    fc.assert(
      fc.property(command, ({ body, bad }) => {
        const parsed = parseSafely(body);
        if (bad.size === 0) {
          expect(parsed).toEqual({ ok: true, command: JSON.parse(body) });
          return;
        }
        expectWellFormedRejection(parsed);
        // A bad element of an array field (`payload.files.0`) names the element.
        const named = parsed.rejection.field ?? '';
        const field = [...bad].find((f) => named === f || named.startsWith(`${f}.`)) ?? named;
        expect([...bad]).toContain(field);
      }),
      runs(400),
    );
  });

  it('round-trips every valid command through JSON', () => {
    fc.assert(
      fc.property(
        command.filter(({ bad }) => bad.size === 0),
        ({ body }) => {
          const parsed = parseSafely(body);
          expect(parsed.ok).toBe(true);
          if (!parsed.ok) return;
          expect(parseSafely(JSON.stringify(parsed.command))).toEqual(parsed);
        },
      ),
      runs(200),
    );
  });

  it('keeps the commandId and type of a rejected command when they are usable, for correlation', () => {
    fc.assert(
      fc.property(
        command.filter(({ bad }) => bad.size > 0),
        ({ body }) => {
          const parsed = parseSafely(body);
          expectWellFormedRejection(parsed);
          const sent = JSON.parse(body) as Record<string, unknown>;
          if (isOpaque(sent.commandId)) expect(parsed.rejection.commandId).toBe(sent.commandId);
          else expect(parsed.rejection.commandId).toBeUndefined();
          if (typeof sent.type === 'string' && sent.type !== '')
            expect(parsed.rejection.type).toBe(sent.type.slice(0, 64));
        },
      ),
      runs(200),
    );
  });
});

describe('parseCommand under arbitrary text', () => {
  it('never throws on any string, and rejects what is not a command with a reason', () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: 'binary', maxLength: 500 }),
          fc.json({ maxDepth: 4 }),
          hostileString,
        ),
        (body) => {
          const parsed = parseSafely(body);
          if (!parsed.ok) expectWellFormedRejection(parsed);
        },
      ),
      runs(300),
    );
  });

  it('never throws on a valid command cut short or with a character changed', () => {
    fc.assert(
      fc.property(
        command.filter(({ bad }) => bad.size === 0),
        fc.nat(),
        fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
        ({ body }, at, replacement) => {
          const index = at % body.length;
          for (const mangled of [
            body.slice(0, index),
            body.slice(0, index) + replacement + body.slice(index + 1),
          ]) {
            const parsed = parseSafely(mangled);
            if (!parsed.ok) expectWellFormedRejection(parsed);
          }
        },
      ),
      runs(200),
    );
  });

  it.each(['__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf'])(
    'rejects the type %s, a name every object inherits, naming the type',
    (type) => {
      const parsed = parseSafely(
        JSON.stringify({ type, commandId: 'c-1', payload: { sessionId: 's' } }),
      );
      expectWellFormedRejection(parsed);
      expect(parsed.rejection).toMatchObject({ field: 'type', commandId: 'c-1' });
    },
  );

  const deep = (open: string, close: string, depth: number, inner = '1') =>
    open.repeat(depth) + inner + close.repeat(depth);
  it.each([
    ['a 10 000-level array as the body', deep('[', ']', 10_000), undefined],
    ['a 10 000-level object as the body', deep('{"a":', '}', 10_000), 'type'],
    [
      'a 10 000-level payload',
      `{"type":"session.touch","commandId":"c","payload":${deep('[', ']', 10_000)}}`,
      'payload',
    ],
    [
      'a 10 000-level sessionId',
      `{"type":"session.touch","commandId":"c","payload":{"sessionId":${deep('{"a":', '}', 10_000)}}}`,
      'payload.sessionId',
    ],
    [
      'a 10 000-level extra field',
      `{"type":"session.touch","commandId":"c","payload":{"sessionId":"s"},"x":${deep('[', ']', 10_000)}}`,
      'x',
    ],
    [
      'a 10 000-level type',
      `{"type":${deep('[', ']', 10_000)},"commandId":"c","payload":{}}`,
      'type',
    ],
  ])('rejects %s without exhausting the stack', (_label, body, field) => {
    const parsed = parseSafely(body);
    expectWellFormedRejection(parsed);
    expect(parsed.rejection.field).toBe(field);
  });
});
