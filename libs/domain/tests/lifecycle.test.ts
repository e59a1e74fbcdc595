import fc from 'fast-check';
import {
  CONTAINER_STATUSES,
  ConflictError,
  acceptsSessions,
  assertTransition,
  canTransition,
  isLive,
  stopReason,
  STOP_REASON_KINDS,
  formatStopReason,
  parseStopReason,
  type ContainerStatus,
} from '../src/index.ts';

/** The contract: `starting → running → terminating → stopped`; `starting|running → failed`. */
const LEGAL = new Set([
  'starting→running',
  'running→terminating',
  'terminating→stopped',
  'starting→failed',
  'running→failed',
]);

const status = fc.constantFrom(...CONTAINER_STATUSES);

describe('container transitions', () => {
  it('allows exactly the transitions of the contract', () => {
    fc.assert(
      fc.property(status, status, (from, to) => {
        expect(canTransition(from, to)).toBe(LEGAL.has(`${from}→${to}`));
      }),
    );
  });

  it('covers every pair', () => {
    const allowed = CONTAINER_STATUSES.flatMap((from) =>
      CONTAINER_STATUSES.filter((to) => canTransition(from, to)).map((to) => `${from}→${to}`),
    );
    expect(new Set(allowed)).toEqual(LEGAL);
  });

  it('throws a ConflictError for an illegal one', () => {
    fc.assert(
      fc.property(status, status, (from, to) => {
        fc.pre(!LEGAL.has(`${from}→${to}`));
        expect(() => assertTransition(from, to)).toThrow(ConflictError);
      }),
    );
  });

  it('lets no final status go anywhere', () => {
    for (const to of CONTAINER_STATUSES) {
      expect(canTransition('stopped', to)).toBe(false);
      expect(canTransition('failed', to)).toBe(false);
    }
  });
});

describe('status predicates', () => {
  it.each<[ContainerStatus, boolean, boolean]>([
    ['starting', true, true],
    ['running', true, true],
    ['terminating', true, false],
    ['stopped', false, false],
    ['failed', false, false],
  ])('%s: live %s, accepts sessions %s', (s, live, accepts) => {
    expect(isLive(s)).toBe(live);
    expect(acceptsSessions(s)).toBe(accepts);
  });
});

describe('stop reasons', () => {
  it('is the kind alone without detail', () => {
    expect(formatStopReason(stopReason('idle'))).toBe('idle');
    expect(formatStopReason(stopReason('manual', '   '))).toBe('manual');
    expect(stopReason('manual', '   ')).toEqual({ kind: 'manual' });
  });

  it('adds detail after a colon, on one line, at most 200 characters', () => {
    // Act
    const reason = formatStopReason(
      stopReason('crashed', `exit code 137\r\nkilled ${'x'.repeat(500)}`),
    );

    // Assess
    expect(reason.startsWith('crashed:exit code 137 killed ')).toBe(true);
    expect(reason).not.toMatch(/[\r\n]/);
    expect(reason.length).toBe('crashed:'.length + 200);
  });

  it('reads the kind and detail back', () => {
    expect(parseStopReason('save_failed:push rejected')).toEqual({
      kind: 'save_failed',
      detail: 'push rejected',
    });
    expect(parseStopReason('manual:at 10:30: maintenance')).toEqual({
      kind: 'manual',
      detail: 'at 10:30: maintenance',
    });
    expect(parseStopReason('lost')).toEqual({ kind: 'lost' });
    expect(parseStopReason('exploded:boom')).toBeUndefined();
    expect(parseStopReason(null)).toBeUndefined();
    expect(parseStopReason('')).toBeUndefined();
  });

  it('parses what it formats, and formats what it parses, unchanged', () => {
    fc.assert(
      fc.property(fc.constantFrom(...STOP_REASON_KINDS), fc.string(), (kind, detail) => {
        const reason = stopReason(kind, detail);
        expect(parseStopReason(formatStopReason(reason))).toEqual(reason);
        const text = detail ? `${kind}:${detail}` : kind;
        expect(formatStopReason(parseStopReason(text) ?? { kind: 'manual' })).toBe(text);
      }),
    );
  });
});
