import fc from 'fast-check';
import {
  STOPPED_REASON_LIMIT,
  fallbackRefPrefix,
  formatSavedElsewhere,
  parseSavedElsewhere,
} from '../src/index.ts';

const branch = fc.stringMatching(/^(thread|workspace)\/[a-z0-9-]{1,40}$/);

describe('saved_elsewhere stop reasons', () => {
  it('reads back what the agent wrote: every branch, or the ones that fit and a count', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.uniqueArray(branch, { maxLength: 30 }),
        (generation, branches) => {
          const prefix = fallbackRefPrefix('acme.website.john', generation);
          const reason = formatSavedElsewhere(prefix, branches);
          expect(reason.length).toBeLessThanOrEqual(STOPPED_REASON_LIMIT);
          const parsed = parseSavedElsewhere(reason);
          expect(parsed?.refPrefix).toBe(prefix);
          expect(parsed?.branches).toEqual(branches.slice(0, parsed?.branches.length));
          expect(parsed?.complete).toBe(parsed?.branches.length === branches.length);
          expect(parsed?.refs).toEqual(parsed?.branches.map((b) => `${prefix}${b}`));
        },
      ),
    );
  });

  it('is undefined for any other reason', () => {
    expect(parseSavedElsewhere(undefined)).toBeUndefined();
    expect(parseSavedElsewhere('save_failed:push')).toBeUndefined();
    expect(parseSavedElsewhere('saved_elsewhere:refs/heads/x/ a')).toBeUndefined();
  });
});
