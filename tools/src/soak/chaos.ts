/**
 * The soak test's troublemaker: SIGKILLs berth's service processes at planned moments (the
 * stack restarts them) and opens fault windows on the proxies in front of DynamoDB Local and
 * fauxqs.
 */
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import type { Fault, FaultProxy } from './fault-proxy.ts';
import type { FaultKind, FaultTarget, ServiceName } from './options.ts';
import type { Random } from './random.ts';

export interface CrashRecord {
  service: ServiceName;
  pid: number;
  at: number;
  /** How long until the stack had a new process running; undefined if it had none in time. */
  restartedAfterMs: number | undefined;
}

export interface FaultWindowRecord {
  target: FaultTarget;
  fault: Fault;
  from: number;
  to: number | undefined;
}

export interface SkippedAction {
  what: string;
  why: string;
}

export interface ChaosPlanItem {
  /** Offset from the start of the load. */
  atMs: number;
  action:
    { kind: 'crash' } | { kind: 'fault'; target: FaultTarget; fault: Fault; lengthMs: number };
}

export interface ChaosOptions {
  durationMs: number;
  crashesPerMinute: number;
  faultsPerMinute: number;
  faultLengthMs: number;
  faultKinds: readonly FaultKind[];
  faultTargets: readonly FaultTarget[];
}

/**
 * A service that starts while connections fail exits (it bootstraps through the proxy), and
 * the stack gives up on a service after five quick deaths. So no kill while a reset/refuse
 * window is open, and no such window until every service has said it is ready; this is the
 * longest a window waits for that before it is skipped.
 */
const READY_WAIT_MS = 90_000;
/** A process younger than this is left alone: the stack counts quick deaths. */
const MIN_PROCESS_AGE_MS = 6_000;

/**
 * What each service logs once it is wired and working: the start of its pino `msg` (a service
 * may say more after it, as the task watcher does since it also keeps the history).
 */
const READY_MESSAGE: Record<ServiceName, string> = {
  session: 'session service consuming commands',
  reaper: 'reaper running',
  'task-watcher': 'task watcher consuming task events',
  discovery: 'discovery listening',
};
const ALL_SERVICES = Object.keys(READY_MESSAGE) as ServiceName[];

/**
 * `count` moments, one in each equal slot of the load, at `phase` of the slot give or take 15%
 * of it. Fault windows sit early in their slots and crashes late, so that they take turns: a
 * reset/refuse window waits for services a crash has just restarted.
 */
function spread(count: number, durationMs: number, random: Random, phase: number): number[] {
  const slot = durationMs / count;
  return Array.from({ length: count }, (_, i) =>
    Math.round(slot * (i + phase + (random.next() - 0.5) * 0.3)),
  );
}

function faultOf(kind: FaultKind, random: Random): Fault {
  switch (kind) {
    case 'latency':
      return { kind, ms: random.int(150, 1200), jitterMs: random.int(0, 300) };
    case 'reset':
      return { kind };
    case 'refuse':
      return { kind };
  }
}

/**
 * Evenly spread with jitter (not a Poisson process): a short run with a rate of one per minute
 * still gets its crash and its fault window, and at least one of each when the rate is above 0.
 */
export function planChaos(options: ChaosOptions, random: Random): ChaosPlanItem[] {
  const minutes = options.durationMs / 60_000;
  const crashes =
    options.crashesPerMinute > 0 ? Math.max(1, Math.round(options.crashesPerMinute * minutes)) : 0;
  const faults =
    options.faultsPerMinute > 0 && options.faultKinds.length > 0 && options.faultTargets.length > 0
      ? Math.max(1, Math.round(options.faultsPerMinute * minutes))
      : 0;
  const plan: ChaosPlanItem[] = spread(crashes, options.durationMs, random, 0.65).map((atMs) => ({
    atMs,
    action: { kind: 'crash' },
  }));
  const window = Math.min(
    options.faultLengthMs,
    Math.max(1000, Math.floor(options.durationMs / (faults + 1))),
  );
  // Every (kind, target) pair comes round in turn, in an order drawn from the seed, so a
  // longer run sees each of them.
  const pairs = options.faultKinds.flatMap((kind) =>
    options.faultTargets.map((target) => ({ kind, target })),
  );
  for (let i = pairs.length - 1; i > 0; i -= 1) {
    const j = random.int(0, i);
    const [a, b] = [pairs[i], pairs[j]];
    if (a && b) [pairs[i], pairs[j]] = [b, a];
  }
  spread(faults, options.durationMs, random, 0.3).forEach((atMs, i) => {
    const { kind, target } = pairs[i % pairs.length] ?? {
      kind: 'latency' as const,
      target: 'dynamodb' as const,
    };
    plan.push({
      atMs: Math.min(atMs, Math.max(options.durationMs - window, 0)),
      action: { kind: 'fault', target, fault: faultOf(kind, random), lengthMs: window },
    });
  });
  return plan.sort((a, b) => a.atMs - b.atMs);
}

function isDisruptive(fault: Fault): boolean {
  return fault.kind === 'reset' || fault.kind === 'refuse';
}

export class Chaos {
  readonly crashes: CrashRecord[] = [];
  readonly windows: FaultWindowRecord[] = [];
  readonly skipped: SkippedAction[] = [];
  readonly #dataDir: string;
  readonly #proxies: Record<FaultTarget, FaultProxy>;
  readonly #services: readonly ServiceName[];
  readonly #random: Random;
  readonly #log: (line: string) => void;
  readonly #abort = new AbortController();
  readonly #openWindows = new Set<Promise<void>>();
  #disruptiveOpen = 0;
  readonly #readyPids = new Set<number>();

  constructor(options: {
    dataDir: string;
    proxies: Record<FaultTarget, FaultProxy>;
    services: readonly ServiceName[];
    random: Random;
    log: (line: string) => void;
  }) {
    this.#dataDir = options.dataDir;
    this.#proxies = options.proxies;
    this.#services = options.services;
    this.#random = options.random;
    this.#log = options.log;
  }

  /** Carries out the plan from `startedAt` until it is done or `stop()` is called. */
  async run(plan: readonly ChaosPlanItem[], startedAt: number): Promise<void> {
    const signal = this.#abort.signal;
    for (const item of plan) {
      const wait = startedAt + item.atMs - Date.now();
      if (wait > 0) await delay(wait, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) break;
      if (item.action.kind === 'crash') await this.#crash();
      else await this.#openWindow(item.action.target, item.action.fault, item.action.lengthMs);
    }
  }

  /** Ends the plan and closes every fault window now. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.all(this.#openWindows);
    await Promise.all(Object.values(this.#proxies).map((proxy) => proxy.setFault(undefined)));
  }

  async #openWindow(target: FaultTarget, fault: Fault, lengthMs: number): Promise<void> {
    const signal = this.#abort.signal;
    if (isDisruptive(fault)) {
      const deadline = Date.now() + READY_WAIT_MS;
      while (!signal.aborted && !ALL_SERVICES.every((service) => this.#readyProcessOf(service))) {
        if (Date.now() >= deadline) {
          this.skipped.push({
            what: `${target} ${describeFault(fault)}`,
            why: 'not every service was ready',
          });
          return;
        }
        await delay(500, undefined, { signal }).catch(() => undefined);
      }
      if (signal.aborted) {
        this.skipped.push({
          what: `${target} ${describeFault(fault)}`,
          why: 'the load ended while it waited for every service to be ready',
        });
        return;
      }
      this.#disruptiveOpen += 1;
    }
    const record: FaultWindowRecord = { target, fault, from: Date.now(), to: undefined };
    this.windows.push(record);
    this.#log(`fault window: ${target} ${describeFault(fault)} for ${lengthMs} ms`);
    const open = this.#proxies[target]
      .window(fault, lengthMs, signal)
      .catch((error: unknown) => this.#log(`fault window on ${target} failed: ${String(error)}`))
      .finally(() => {
        record.to = Date.now();
        if (isDisruptive(fault)) this.#disruptiveOpen -= 1;
        this.#openWindows.delete(open);
      });
    this.#openWindows.add(open);
  }

  async #crash(): Promise<void> {
    const signal = this.#abort.signal;
    const deadline = Date.now() + 30_000;
    while (!signal.aborted && Date.now() < deadline) {
      if (this.#disruptiveOpen === 0) {
        const candidates = this.#services
          .map((service) => ({ service, process: this.#readyProcessOf(service) }))
          .filter(
            ({ process }) =>
              process !== undefined && Date.now() - process.startedAt >= MIN_PROCESS_AGE_MS,
          );
        const chosen = this.#random.pick(candidates);
        if (chosen?.process) {
          await this.#kill(chosen.service, chosen.process.pid);
          return;
        }
      }
      await delay(500, undefined, { signal }).catch(() => undefined);
    }
    if (!signal.aborted)
      this.skipped.push({ what: 'crash', why: 'no service was ready to be killed' });
  }

  async #kill(service: ServiceName, pid: number): Promise<void> {
    const at = Date.now();
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      return;
    }
    const record: CrashRecord = { service, pid, at, restartedAfterMs: undefined };
    this.crashes.push(record);
    this.#log(`crash: SIGKILL ${service} (pid ${pid})`);
    const deadline = at + 30_000;
    while (Date.now() < deadline) {
      const next = this.#processOf(service);
      if (next && next.pid !== pid) {
        record.restartedAfterMs = Date.now() - at;
        return;
      }
      await delay(200);
    }
  }

  /** The service's live process, from the stack's pid file, checked against its command line. */
  #processOf(service: ServiceName): { pid: number; startedAt: number } | undefined {
    const pidFile = join(this.#dataDir, 'run', `${service}.pid`);
    try {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (!Number.isInteger(pid) || pid <= 0) return undefined;
      // A pid can be reused by an unrelated process once the service is gone.
      const commandLine = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (!commandLine.includes(`apps/${service}/src/main.ts`)) return undefined;
      return { pid, startedAt: statSync(pidFile).mtimeMs };
    } catch {
      return undefined;
    }
  }

  /** The live process of the service once it has logged that it is ready. */
  #readyProcessOf(service: ServiceName): { pid: number; startedAt: number } | undefined {
    const process = this.#processOf(service);
    if (!process) return undefined;
    if (this.#readyPids.has(process.pid)) return process;
    try {
      const log = readFileSync(join(this.#dataDir, 'logs', `${service}.log`), 'utf8');
      const ready = log
        .split('\n')
        .some(
          (line) =>
            line.includes(`"pid":${process.pid},`) &&
            line.includes(`"msg":"${READY_MESSAGE[service]}`),
        );
      if (!ready) return undefined;
    } catch {
      return undefined;
    }
    this.#readyPids.add(process.pid);
    return process;
  }

  /** Every service runs and has said it is ready (the stack restarted what was killed). */
  allServicesReady(): boolean {
    return ALL_SERVICES.every((service) => this.#readyProcessOf(service) !== undefined);
  }
}

export function describeFault(fault: Fault): string {
  return fault.kind === 'latency' ? `latency ${fault.ms}+${fault.jitterMs ?? 0} ms` : fault.kind;
}
