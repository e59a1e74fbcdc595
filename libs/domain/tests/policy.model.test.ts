import fc from 'fast-check';
import {
  CLIENT_ONLY_FIELDS,
  InvalidArgumentError,
  changedContainerPolicy,
  containerPolicyOf,
  formatDuration,
  idleDueAt,
  parsePolicy,
  resolvePolicy,
  type Policy,
  type PolicyDefaults,
} from '../src/index.ts';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const defaultsArb: fc.Arbitrary<PolicyDefaults> = fc
  .tuple(
    fc.integer({ min: 1, max: 60 }),
    fc.integer({ min: 1, max: 600 }),
    fc.integer({ min: 1, max: 600 }),
    fc.integer({ min: 1, max: 1000 }),
  )
  .map(([minMinutes, spanMinutes, defaultMinutes, maxSessions]) => ({
    idleTimeoutMinMs: minMinutes * MINUTE,
    idleTimeoutMaxMs: (minMinutes + spanMinutes) * MINUTE,
    idleTimeoutMs: defaultMinutes * MINUTE,
    maxSessions,
  }));

const policyArb: fc.Arbitrary<Policy> = fc.record(
  {
    idleTimeoutMs: fc.integer({ min: 1, max: 900 }).map((m) => m * MINUTE),
    maxLifetimeMs: fc.integer({ min: 1, max: 48 }).map((h) => h * HOUR),
    maxSessions: fc.integer({ min: 1, max: 1000 }),
    maxLiveContainersPerUser: fc.integer({ min: 1, max: 100 }),
    maxLiveContainersPerClient: fc.integer({ min: 1, max: 100 }),
    maxProjectsPerClient: fc.integer({ min: 1, max: 100 }),
  },
  { requiredKeys: [] },
);

/** The model: each field is the first of (project, client, default) that sets it. */
function modelValue<T>(project: T | undefined, client: T | undefined, fallback: T) {
  if (project !== undefined) return { value: project, source: 'project' };
  if (client !== undefined) return { value: client, source: 'client' };
  return { value: fallback, source: 'default' };
}

describe('resolvePolicy (model)', () => {
  it('takes each field from the project, else the client, else the default; quotas from the client only; idle timeout within the bounds', () => {
    fc.assert(
      fc.property(
        defaultsArb,
        fc.option(policyArb, { nil: undefined }),
        fc.option(policyArb, { nil: undefined }),
        (defaults, client, project) => {
          // Act
          const effective = resolvePolicy(client, project, defaults);

          // Assess
          const idle = modelValue(
            project?.idleTimeoutMs,
            client?.idleTimeoutMs,
            defaults.idleTimeoutMs,
          );
          expect(effective.idleTimeoutMs.source).toBe(idle.source);
          if (idle.source === 'default') {
            expect(effective.idleTimeoutMs.value).toBe(defaults.idleTimeoutMs);
          } else {
            expect(effective.idleTimeoutMs.value).toBeGreaterThanOrEqual(defaults.idleTimeoutMinMs);
            expect(effective.idleTimeoutMs.value).toBeLessThanOrEqual(defaults.idleTimeoutMaxMs);
            const inBounds =
              idle.value >= defaults.idleTimeoutMinMs && idle.value <= defaults.idleTimeoutMaxMs;
            if (inBounds) expect(effective.idleTimeoutMs.value).toBe(idle.value);
          }
          expect(effective.maxLifetimeMs).toEqual(
            modelValue(project?.maxLifetimeMs, client?.maxLifetimeMs, null),
          );
          expect(effective.maxSessions).toEqual(
            modelValue(project?.maxSessions, client?.maxSessions, defaults.maxSessions),
          );
          for (const field of CLIENT_ONLY_FIELDS) {
            expect(effective[field]).toEqual(modelValue(undefined, client?.[field], null));
          }
        },
      ),
    );
  });
});

describe('parsePolicy bounds', () => {
  it('accepts an idle timeout within the bounds and refuses one outside, naming the field and the bound', () => {
    fc.assert(
      fc.property(defaultsArb, fc.integer({ min: 1, max: 1000 }), (defaults, minutes) => {
        // Arrange
        const ms = minutes * MINUTE;
        const body = { idleTimeout: formatDuration(ms) };
        const inBounds = ms >= defaults.idleTimeoutMinMs && ms <= defaults.idleTimeoutMaxMs;

        // Act
        let error: unknown;
        let parsed: Policy | undefined;
        try {
          parsed = parsePolicy(body, defaults, 'client');
        } catch (caught) {
          error = caught;
        }

        // Assess
        if (inBounds) {
          expect(parsed).toEqual({ idleTimeoutMs: ms });
        } else {
          expect(error).toBeInstanceOf(InvalidArgumentError);
          expect((error as InvalidArgumentError).field).toBe('idleTimeout');
          expect((error as InvalidArgumentError).message).toContain(
            ms < defaults.idleTimeoutMinMs
              ? formatDuration(defaults.idleTimeoutMinMs)
              : formatDuration(defaults.idleTimeoutMaxMs),
          );
        }
      }),
    );
  });

  it.each([
    [{ maxSessions: 0 }, 'maxSessions'],
    [{ maxSessions: 1001 }, 'maxSessions'],
    [{ maxLifetime: '500ms' }, 'maxLifetime'],
    [{ maxLifetime: 'forever' }, 'maxLifetime'],
    [{ maxLiveContainersPerUser: -1 }, 'maxLiveContainersPerUser'],
    [{ colour: 'blue' }, 'colour'],
  ])('refuses %j naming %s', (body, field) => {
    // Arrange
    const defaults = {
      idleTimeoutMinMs: MINUTE,
      idleTimeoutMaxMs: 8 * HOUR,
      idleTimeoutMs: 20 * MINUTE,
      maxSessions: 10,
    };

    // Act
    const attempt = () => parsePolicy(body, defaults, 'client');

    // Assess
    expect(attempt).toThrow(InvalidArgumentError);
    try {
      attempt();
    } catch (error) {
      expect((error as InvalidArgumentError).field).toBe(field);
    }
  });

  it("refuses a client's quota on a project's policy", () => {
    // Arrange
    const defaults = {
      idleTimeoutMinMs: MINUTE,
      idleTimeoutMaxMs: 8 * HOUR,
      idleTimeoutMs: 20 * MINUTE,
      maxSessions: 10,
    };

    // Act
    const attempt = () => parsePolicy({ maxProjectsPerClient: 3 }, defaults, 'project');

    // Assess
    expect(attempt).toThrow(/maxProjectsPerClient is a quota of the whole client/);
  });
});

describe('idle timeout changes', () => {
  it('never makes an idle stop due before the change plus the new timeout, nor later than the old rule allowed when lengthened', () => {
    const defaults = {
      idleTimeoutMinMs: MINUTE,
      idleTimeoutMaxMs: 8 * HOUR,
      idleTimeoutMs: 20 * MINUTE,
      maxSessions: 10,
    };
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 480 }),
        fc.integer({ min: 1, max: 480 }),
        fc.integer({ min: 0, max: 600 }),
        (beforeMinutes, afterMinutes, idleForMinutes) => {
          // Arrange
          const idleSince = '2026-01-01T00:00:00.000Z';
          const changedAt = new Date(Date.parse(idleSince) + idleForMinutes * MINUTE).toISOString();
          const before = containerPolicyOf(
            resolvePolicy({ idleTimeoutMs: beforeMinutes * MINUTE }, undefined, defaults),
            5 * MINUTE,
          );

          // Act
          const after = changedContainerPolicy(
            before,
            resolvePolicy({ idleTimeoutMs: afterMinutes * MINUTE }, undefined, defaults),
            changedAt,
          );
          const due = Date.parse(idleDueAt(idleSince, after));

          // Assess
          if (afterMinutes < beforeMinutes) {
            expect(due).toBe(Date.parse(changedAt) + afterMinutes * MINUTE);
          } else {
            expect(due).toBe(Date.parse(idleSince) + afterMinutes * MINUTE);
          }
        },
      ),
    );
  });
});
