/** The soak's step faults (pure logic over the in-memory ports): before/after, fail/kill. */
import { describe, expect, it, jest } from '@jest/globals';
import { UnavailableError, type BerthEvent } from '@berth/domain';
import { makeCoreDeps } from '@berth/testing';
import { STEP_FAULT_MESSAGE, withStepFaults } from '../src/step-faults.ts';

const event = { eventId: 'e1', type: 'container.idle' } as unknown as BerthEvent;

/** Draws in order: fault?, kill?, after? (each below 0.5 means yes here). */
function faulty(draws: number[], uptimeS = 60) {
  const deps = makeCoreDeps();
  const warn = jest.fn();
  const kill = jest.fn();
  const written: string[] = [];
  const log = { info: jest.fn(), warn, error: jest.fn(), debug: jest.fn() };
  const wrapped = withStepFaults(deps, {
    rate: 0.5,
    log,
    random: () => draws.shift() ?? 0.9,
    kill,
    uptimeS: () => uptimeS,
    writeNow: (line) => void written.push(line),
  });
  return { deps, wrapped, warn, kill, written };
}

describe('withStepFaults', () => {
  it('fails a publish before the step: nothing is published', async () => {
    const { deps, wrapped, warn, kill } = faulty([0.1, 0.9, 0.9]);
    await expect(wrapped.publisher.publish([event])).rejects.toBeInstanceOf(UnavailableError);
    expect(deps.publisher.events).toEqual([]);
    expect(kill).not.toHaveBeenCalled();
    expect(warn).toHaveBeenCalledWith(
      { stepFault: 'fail-before', step: 'publisher.publish' },
      STEP_FAULT_MESSAGE,
    );
  });

  it('fails a publish after the step: published, and the caller sees a failure', async () => {
    const { deps, wrapped } = faulty([0.1, 0.9, 0.1]);
    await expect(wrapped.publisher.publish([event])).rejects.toBeInstanceOf(UnavailableError);
    expect(deps.publisher.events.map((e) => e.eventId)).toEqual(['e1']);
  });

  it('kills the process right after the step once it has been up long enough', async () => {
    const { deps, wrapped, kill, written } = faulty([0.1, 0.1, 0.1]);
    await wrapped.publisher.publish([event]).catch(() => undefined);
    expect(deps.publisher.events.map((e) => e.eventId)).toEqual(['e1']);
    expect(kill).toHaveBeenCalledTimes(1);
    expect(written.map((line) => JSON.parse(line) as unknown)).toEqual([
      { level: 40, msg: STEP_FAULT_MESSAGE, stepFault: 'kill-after', step: 'publisher.publish' },
    ]);
  });

  it('never kills a process younger than ten seconds, and leaves reads alone', async () => {
    const { wrapped, kill } = faulty([0.1, 0.1, 0.1], 2);
    await wrapped.publisher.publish([event]).catch(() => undefined);
    expect(kill).not.toHaveBeenCalled();
    expect(await wrapped.store.getContainer('none')).toBeUndefined();
  });

  it('changes nothing at rate 0', () => {
    const deps = makeCoreDeps();
    expect(withStepFaults(deps, { rate: 0, log: console })).toBe(deps);
  });
});
