import fc from 'fast-check';
import { InvalidArgumentError, formatDuration, parseDuration } from '../src/index.ts';

describe('parseDuration', () => {
  it.each([
    ['250ms', 250],
    ['5s', 5_000],
    ['20m', 1_200_000],
    ['2h', 7_200_000],
    ['1d', 86_400_000],
    ['0s', 0],
    [' 5s ', 5_000],
  ])('reads %j as %d ms', (text, ms) => {
    expect(parseDuration(text)).toBe(ms);
  });

  it.each(['', '5', '1.5h', '20 minutes', '20 m', '-5s', '5S', 'm', '5sec', '5s5m', 'ten'])(
    'refuses %j, naming the field',
    (text) => {
      // Prepare
      let caught: unknown;

      // Act
      try {
        parseDuration(text, 'BERTH_IDLE_TIMEOUT');
      } catch (error) {
        caught = error;
      }

      // Assess
      expect(caught).toBeInstanceOf(InvalidArgumentError);
      expect((caught as InvalidArgumentError).field).toBe('BERTH_IDLE_TIMEOUT');
      expect((caught as InvalidArgumentError).message).toContain('BERTH_IDLE_TIMEOUT');
    },
  );

  it('refuses a duration too large to count in milliseconds', () => {
    expect(() => parseDuration('99999999999999d', 'BERTH_SESSION_TTL')).toThrow(
      expect.objectContaining({ field: 'BERTH_SESSION_TTL' }) as Error,
    );
  });

  it('reads back what formatDuration writes', () => {
    fc.assert(
      fc.property(fc.nat({ max: 10 * 365 * 86_400_000 }), (ms) => {
        expect(parseDuration(formatDuration(ms))).toBe(ms);
      }),
    );
  });

  it('formats with the largest whole unit', () => {
    expect([
      formatDuration(0),
      formatDuration(1500),
      formatDuration(60_000),
      formatDuration(7_200_000),
    ]).toEqual(['0ms', '1500ms', '1m', '2h']);
  });
});
