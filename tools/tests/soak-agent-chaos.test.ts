import type { BerthEvent } from '@berth/domain';
import { AGENT_FAULT_KINDS, planAgentChaos } from '../src/soak/agent-chaos.ts';
import { fallbackRefsFor, reportedFallbacks } from '../src/soak/fallback-refs.ts';
import { parseSoakOptions } from '../src/soak/options.ts';
import { Random } from '../src/soak/random.ts';

function stopped(containerId: string, savedElsewhere?: unknown): BerthEvent {
  return {
    type: 'container.stopped',
    eventId: `${containerId}#1/container.stopped`,
    occurredAt: '2026-12-01T00:00:00.000Z',
    containerId,
    payload: { container: {}, ...(savedElsewhere === undefined ? {} : { savedElsewhere }) },
  };
}

describe('planAgentChaos', () => {
  it('brings every kind round within the load, and plans nothing at rate 0', () => {
    const options = {
      durationMs: 120_000,
      faultsPerMinute: 3,
      kinds: AGENT_FAULT_KINDS,
      refuseMs: 5000,
    };

    const plan = planAgentChaos(options, new Random(5));

    expect(plan).toHaveLength(6);
    expect(new Set(plan.map((item) => item.kind))).toEqual(new Set(AGENT_FAULT_KINDS));
    expect(plan.every((item) => item.atMs >= 0 && item.atMs <= options.durationMs)).toBe(true);
    expect(planAgentChaos({ ...options, faultsPerMinute: 0 }, new Random(5))).toEqual([]);
    expect(planAgentChaos(options, new Random(5))).toEqual(plan);
  });
});

describe('fallback refs reported in container.stopped', () => {
  it('counts only refs an event reported, per container, and every branch under an incomplete report', () => {
    const prefix = 'refs/berth/conflicts/acme.web.u1/3/';
    const events = [
      stopped('acme.web.u1', { refPrefix: prefix, branches: ['thread/a'], complete: true }),
      stopped('acme.web.u2', {
        refPrefix: 'refs/berth/conflicts/acme.web.u2/1/',
        branches: [],
        complete: false,
      }),
      stopped('acme.web.u3'),
    ];

    const fallbacks = reportedFallbacks(events);

    expect(fallbackRefsFor(fallbacks, 'acme.web.u1', 'thread/a')).toEqual([`${prefix}thread/a`]);
    expect(fallbackRefsFor(fallbacks, 'acme.web.u1', 'thread/b')).toEqual([]);
    expect(fallbackRefsFor(fallbacks, 'acme.web.u2', 'thread/z')).toEqual([
      'refs/berth/conflicts/acme.web.u2/1/thread/z',
    ]);
    expect(fallbackRefsFor(fallbacks, 'acme.web.u3', 'thread/a')).toEqual([]);
  });
});

describe('parseSoakOptions, agent faults', () => {
  it('reads the agent fault rate and kinds, off by default, and names a bad kind', () => {
    const defaults = parseSoakOptions([], {});
    const chosen = parseSoakOptions(['--agent-fault-rate', '2'], {
      SOAK_AGENT_FAULT_KINDS: 'kill-agent,remote-moved',
    });

    expect(defaults !== 'help' && defaults.agentFaultsPerMinute).toBe(0);
    expect(chosen).toMatchObject({
      agentFaultsPerMinute: 2,
      agentFaultKinds: ['kill-agent', 'remote-moved'],
    });
    expect(() => parseSoakOptions(['--agent-fault-kinds', 'kill-agent,flood'], {})).toThrow(
      /--agent-fault-kinds/,
    );
  });
});
