/**
 * What the core's unit tests share: the fakes of the ports, wired into the core's use cases,
 * and builders for commands.
 */
// The core (type:application) may depend on the domain only; these tests are the exception,
// for the in-memory fakes of the domain's ports. Nothing under src/ imports the testing lib.
import {
  makeCoreDeps,
  type FakeCoreDeps as AnyStoreDeps,
  type FakeCoreDepsOverrides,
  type InMemoryStateStore,
} from '@berth/testing';
import {
  containerIdOf,
  type ContainerKey,
  type ContainerRecord,
  type SessionAssign,
  type SessionRelease,
  type SessionTouch,
} from '@berth/domain';
import { UseCases } from '../src/index.ts';

/** The fakes, the store included. */
export type FakeCoreDeps = AnyStoreDeps<InMemoryStateStore>;

export const KEY: ContainerKey = { clientId: 'acme', projectId: 'web', userId: 'john' };
export const OTHER_KEY: ContainerKey = { clientId: 'acme', projectId: 'web', userId: 'mary' };
export const CONTAINER_ID = containerIdOf(KEY);

let commandSequence = 0;
const nextCommandId = () => `cmd-${(commandSequence += 1)}`;

export function assignCommand(
  sessionId: string,
  key: ContainerKey = KEY,
  options: { threadId?: string; commandId?: string } = {},
): SessionAssign {
  return {
    type: 'session.assign',
    commandId: options.commandId ?? nextCommandId(),
    payload: {
      sessionId,
      ...key,
      ...(options.threadId ? { threadId: options.threadId } : {}),
    },
  };
}

export function releaseCommand(sessionId: string, commandId = nextCommandId()): SessionRelease {
  return { type: 'session.release', commandId, payload: { sessionId } };
}

export function touchCommand(sessionId: string, commandId = nextCommandId()): SessionTouch {
  return { type: 'session.touch', commandId, payload: { sessionId } };
}

export interface World {
  deps: FakeCoreDeps;
  useCases: UseCases;
}

/** Fresh fakes and the core wired on them, as each process wires it. */
export function world(overrides: FakeCoreDepsOverrides = {}): World {
  const deps = makeCoreDeps(overrides);
  return { deps, useCases: new UseCases(deps) };
}

/** A container that has started and whose task reported RUNNING. */
export async function runningContainer(
  { deps, useCases }: World,
  key: ContainerKey = KEY,
): Promise<ContainerRecord> {
  const { container } = await useCases.containers.findOrStart(key);
  if (!container.taskArn) throw new Error('the container has no task');
  await useCases.taskEvents.handle(
    deps.runtime.change(container.taskArn, { lastStatus: 'RUNNING' }),
  );
  return stored(deps, containerIdOf(key));
}

/** The container as the store holds it now. */
export async function stored(
  deps: FakeCoreDeps,
  containerId: string = CONTAINER_ID,
): Promise<ContainerRecord> {
  const record = await deps.store.getContainer(containerId);
  if (!record) throw new Error(`no record for ${containerId}`);
  return record;
}

/** Runs `count` copies of `task` at once. */
export function concurrently<T>(count: number, task: (index: number) => Promise<T>): Promise<T[]> {
  return Promise.all(Array.from({ length: count }, (_, index) => task(index)));
}

/** The outcome of a promise, resolved or rejected, without throwing. */
export async function settle<T>(promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  try {
    return { value: await promise };
  } catch (error) {
    return { error };
  }
}
