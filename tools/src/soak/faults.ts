/** The soak's faults: the fault proxies, the planned crashes and fault windows, the agents' faults. */
import { AgentChaos, planAgentChaos, type AgentChaosPlanItem } from './agent-chaos.ts';
import { Chaos, planChaos, type ChaosPlanItem } from './chaos.ts';
import { FaultProxy } from './fault-proxy.ts';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STEP_FAULT_MESSAGE } from '@berth/platform';
import { SERVICES, type FaultTarget } from './options.ts';
import type { Random } from './random.ts';
import type { SoakState } from './state.ts';

/** The fault proxies the services reach DynamoDB and SQS/SNS through, one per target. */
export type FaultProxies = Record<FaultTarget, FaultProxy>;

/**
 * Starts a fault proxy in front of each engine. `jitter` is a random stream of its own: how
 * often latency draws from it depends on the traffic.
 */
export async function startFaultProxies(
  jitter: Random,
  ports: Record<FaultTarget, number>,
): Promise<FaultProxies> {
  return {
    dynamodb: await FaultProxy.start({
      name: 'dynamodb',
      targetPort: ports.dynamodb,
      random: () => jitter.next(),
    }),
    sqs: await FaultProxy.start({
      name: 'sqs',
      targetPort: ports.sqs,
      random: () => jitter.next(),
    }),
  };
}

/**
 * The faults of one run: service crashes and fault windows on the proxies (`Chaos`), and the
 * agents' own faults (`AgentChaos`), each planned up front from the run's seed.
 */
export class SoakFaults {
  readonly chaos: Chaos;
  readonly agentChaos: AgentChaos;
  readonly #plan: ChaosPlanItem[];
  readonly #agentPlan: AgentChaosPlanItem[];
  #runs: Promise<unknown>[] = [];

  /** Draws from the run's random stream in a fixed order, so a seed replays the same faults. */
  constructor(state: SoakState, proxies: FaultProxies) {
    const { options } = state;
    const log = (line: string) => state.say(`soak: ${line}`);
    this.chaos = new Chaos({
      dataDir: state.stack.dataDir,
      proxies,
      services: options.services,
      random: state.random.fork(),
      log,
    });
    this.#plan = planChaos(options, state.random.fork());
    this.agentChaos = new AgentChaos({
      dataDir: state.stack.dataDir,
      random: state.random.fork(),
      refuseMs: options.faultLengthMs,
      log,
    });
    this.#agentPlan = planAgentChaos(
      {
        durationMs: options.durationMs,
        faultsPerMinute: options.agentFaultsPerMinute,
        kinds: options.agentFaultKinds,
        refuseMs: options.faultLengthMs,
      },
      state.random.fork(),
    );
  }

  get crashesPlanned(): number {
    return this.#plan.filter((p) => p.action.kind === 'crash').length;
  }

  get faultWindowsPlanned(): number {
    return this.#plan.filter((p) => p.action.kind === 'fault').length;
  }

  /** Carries out both plans, timed from `startedAt` (when the load began). */
  start(startedAt: number): void {
    this.#runs = [
      this.chaos.run(this.#plan, startedAt),
      this.agentChaos.run(this.#agentPlan, startedAt),
    ];
  }

  /** Ends every fault (restarting what is down, closing open windows) and waits for both plans. */
  async stop(): Promise<void> {
    const [chaosRun, agentChaosRun] = this.#runs;
    await this.chaos.stop();
    await chaosRun;
    await this.agentChaos.stop();
    await agentChaosRun;
  }
}

/** Service exits the stack reported that were not our SIGKILLs. */
export function countExits(
  state: SoakState,
  chaos: Chaos | undefined,
  agentChaos: AgentChaos | undefined,
): void {
  const exits = [
    ...state.stack.output().matchAll(/berth: (\S+) exited \(code (\S+), signal (\S+)\)/g),
  ];
  const kills = new Map<string, number>();
  for (const crash of chaos?.crashes ?? [])
    kills.set(crash.service, (kills.get(crash.service) ?? 0) + 1);
  const runtimeKills = (agentChaos?.faults ?? []).filter((f) => f.kind === 'kill-runtime');
  if (runtimeKills.length > 0) kills.set('local-runtime', runtimeKills.length);
  // Step faults (BERTH_STEP_FAULT_RATE): each service logs one before it strikes; its kills
  // are the run's own doing too.
  for (const service of SERVICES) {
    for (const fault of stepFaultsLogged(state.stack.dataDir, service)) {
      increment(state.figures.stepFaultsByKind, `${fault.kind}@${fault.step}`);
      if (fault.kind.startsWith('kill')) kills.set(service, (kills.get(service) ?? 0) + 1);
    }
  }
  for (const [line, service = '', , signal] of exits) {
    const ours = kills.get(service) ?? 0;
    if (signal === 'SIGKILL' && ours > 0) kills.set(service, ours - 1);
    else state.unexpectedExits.push(line);
  }
  state.figures.unexpectedServiceExits = state.unexpectedExits.length;
}

/** The step faults a service logged, in order. */
function stepFaultsLogged(dataDir: string, service: string): { kind: string; step: string }[] {
  let text: string;
  try {
    text = readFileSync(join(dataDir, 'logs', `${service}.log`), 'utf8');
  } catch {
    return [];
  }
  const found: { kind: string; step: string }[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes(STEP_FAULT_MESSAGE)) continue;
    try {
      const entry = JSON.parse(line) as { msg?: string; stepFault?: string; step?: string };
      if (entry.msg === STEP_FAULT_MESSAGE && entry.stepFault && entry.step)
        found.push({ kind: entry.stepFault, step: entry.step });
    } catch {
      // a line cut short by a kill
    }
  }
  return found;
}

function increment(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}
