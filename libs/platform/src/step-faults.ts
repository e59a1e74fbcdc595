/**
 * Step faults for the soak (BERTH_STEP_FAULT_RATE): every side effect the core performs
 * through its ports — a store write, RunTask, StopTask, a queue created or deleted, a publish —
 * may fault, right before or right after the step: it fails (an UnavailableError, as a lost
 * connection gives) or the process is SIGKILLed there, the crash windows issue 12 is about.
 * Reads are left alone: a failed read changes nothing worth finding. Off unless the rate is set.
 */
import { writeSync } from 'node:fs';
import { UnavailableError, type Logger } from '@berth/domain';
import type { CoreDeps } from '@berth/core';

export const STEP_FAULT_KINDS = ['fail-before', 'fail-after', 'kill-before', 'kill-after'] as const;
export type StepFaultKind = (typeof STEP_FAULT_KINDS)[number];

/** What is logged (pino `msg`) before each fault, so the soak can count them in the logs. */
export const STEP_FAULT_MESSAGE = 'step fault';

/** A process younger than this is never killed: the stack gives up on quick deaths. */
const MIN_UPTIME_FOR_KILL_S = 10;
/** Of the faults, this share kills the process; the rest fail the step. */
const KILL_SHARE = 0.25;

export interface StepFaultOptions {
  rate: number;
  log: Logger;
  random?: () => number;
  /** How a kill is carried out (SIGKILL of this process by default). */
  kill?: () => void;
  uptimeS?: () => number;
  /** Writes a line before a kill, synchronously (to standard output by default). */
  writeNow?: (line: string) => void;
}

function writeToStdout(line: string): void {
  writeSync(process.stdout.fd, line);
}

export function withStepFaults(deps: CoreDeps, options: StepFaultOptions): CoreDeps {
  if (options.rate <= 0) return deps;
  const random = options.random ?? Math.random;
  const kill = options.kill ?? (() => process.kill(process.pid, 'SIGKILL'));
  const uptimeS = options.uptimeS ?? (() => process.uptime());
  const draw = (): StepFaultKind | undefined => {
    if (random() >= options.rate) return undefined;
    const killing = random() < KILL_SHARE && uptimeS() >= MIN_UPTIME_FOR_KILL_S;
    const after = random() < 0.5;
    return `${killing ? 'kill' : 'fail'}-${after ? 'after' : 'before'}`;
  };
  const strike = (kind: StepFaultKind, step: string): never => {
    if (kind.startsWith('kill')) {
      // Written synchronously: a logger's buffered line would die with the process.
      (options.writeNow ?? writeToStdout)(
        `${JSON.stringify({ level: 40, msg: STEP_FAULT_MESSAGE, stepFault: kind, step })}\n`,
      );
      kill();
    } else {
      options.log.warn({ stepFault: kind, step }, STEP_FAULT_MESSAGE);
    }
    throw new UnavailableError(`step fault (${kind}) at ${step}`);
  };
  const step =
    <A extends unknown[], R>(name: string, call: (...args: A) => Promise<R>) =>
    async (...args: A): Promise<R> => {
      const kind = draw();
      if (kind?.endsWith('before')) strike(kind, name);
      const result = await call(...args);
      if (kind?.endsWith('after')) strike(kind, name);
      return result;
    };
  const { store, runtime, queues, publisher } = deps;
  return {
    ...deps,
    store: intercept(store, { write: step('store.write', store.write.bind(store)) }),
    runtime: intercept(runtime, {
      startTask: step('runtime.startTask', runtime.startTask.bind(runtime)),
      stopTask: step('runtime.stopTask', runtime.stopTask.bind(runtime)),
    }),
    queues: intercept(queues, {
      create: step('queues.create', queues.create.bind(queues)),
      delete: step('queues.delete', queues.delete.bind(queues)),
    }),
    publisher: intercept(publisher, {
      publish: step('publisher.publish', publisher.publish.bind(publisher)),
    }),
  };
}

/** The port with some methods replaced; every other one called on the port itself. */
function intercept<T extends object>(port: T, overrides: Partial<T>): T {
  return new Proxy(port, {
    get(target, property) {
      if (Object.hasOwn(overrides, property)) return overrides[property as keyof T];
      const value: unknown = Reflect.get(target, property, target);
      return typeof value === 'function'
        ? (value as (...args: unknown[]) => unknown).bind(target)
        : value;
    },
  });
}
