import { ConflictError } from './errors.ts';

export const CONTAINER_STATUSES = [
  'starting',
  'running',
  'terminating',
  'stopped',
  'failed',
] as const;
export type ContainerStatus = (typeof CONTAINER_STATUSES)[number];

/**
 * `starting → running → terminating → stopped`; `starting|running → failed`. Nothing else:
 * a container stopped before it ever ran has no work to save (its agent takes no message
 * before it is ready), so it goes straight to `failed` with the stop's reason (e.g.
 * `manual`), and its task is stopped.
 */
export const TRANSITIONS: Readonly<Record<ContainerStatus, readonly ContainerStatus[]>> = {
  starting: ['running', 'failed'],
  running: ['terminating', 'failed'],
  terminating: ['stopped'],
  stopped: [],
  failed: [],
};

export const LIVE_STATUSES: readonly ContainerStatus[] = ['starting', 'running', 'terminating'];
export const FINAL_STATUSES: readonly ContainerStatus[] = ['stopped', 'failed'];

export function canTransition(from: ContainerStatus, to: ContainerStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/**
 * Every status change of a container's record is checked here (the core's ContainerRecords
 * calls it on each write), so a use case that decided an illegal one fails instead of
 * storing it.
 */
export function assertTransition(from: ContainerStatus, to: ContainerStatus): void {
  if (!canTransition(from, to)) {
    throw new ConflictError(`a container cannot go from ${from} to ${to}`);
  }
}

export function isLive(status: ContainerStatus): boolean {
  return LIVE_STATUSES.includes(status);
}

/** Whether new sessions may join: a terminating container is on its way out. */
export function acceptsSessions(status: ContainerStatus): boolean {
  return status === 'starting' || status === 'running';
}
