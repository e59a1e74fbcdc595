/**
 * The warm pool (docs/design.md, "The warm pool"): generic agents started ahead of demand and
 * claimed by a miss. Slots and members are kept in the containers table under keys no
 * containerId can take, without any attribute an index keys on, so they are never a user's
 * container and never appear in a list.
 */
import type { ContainerRecord } from './model.ts';
import type { ContainerWrite, StoreChange } from './ports.ts';

/**
 * `starting`: its task was asked for; `free`: its task runs and waits for an identity;
 * `claimed`: a container took it (one transaction with that container's record); `handed`:
 * its identity was sent and its container marked running; `retired`: too old, of an old task
 * definition, dead or never started: it is (being) stopped and its slot refilled.
 */
export const POOL_MEMBER_STATES = ['starting', 'free', 'claimed', 'handed', 'retired'] as const;
export type PoolMemberState = (typeof POOL_MEMBER_STATES)[number];

/** One place in the pool; `generation` is the member that holds it now. */
export interface PoolSlotRecord {
  slot: number;
  generation: number;
  version: number;
}

export interface PoolMemberRecord {
  slot: number;
  generation: number;
  state: PoolMemberState;
  taskArn: string | null;
  /** Its task's address (the RUNNING event's), which the container claiming it takes. */
  endpoint?: string | null;
  /** Its own queue, on which it waits for the identity of the container it becomes. */
  controlQueueUrl: string | null;
  /** The task definition it was started from: members of another one are drained. */
  taskDefinition: string | null;
  createdAt: string;
  /** When its task was seen running (it became `free`). */
  readyAt: string | null;
  claimedAt: string | null;
  /** The container it became, and that container's generation. */
  claimedBy: string | null;
  claimedGeneration: number | null;
  /** Why it was retired: `max_age`, `task_definition`, `start_timeout`, `ended`. */
  retiredReason: string | null;
  version: number;
}

/** `family:revision` of a task definition ARN or name; undefined for a bare family name. */
function revisionOf(taskDefinition: string): { family: string; revision: number } | undefined {
  const marker = 'task-definition/';
  const at = taskDefinition.indexOf(marker);
  const name = at >= 0 ? taskDefinition.slice(at + marker.length) : taskDefinition;
  const match = /^(.+):(\d+)$/.exec(name);
  return match ? { family: match[1] ?? '', revision: Number(match[2]) } : undefined;
}

/**
 * Whether a member started from `member`'s task definition is to be drained now that new
 * tasks start from `current`: of the same family, when its revision is older; otherwise when
 * it is another one. A newer revision is kept: during a rolling deploy a service not yet
 * redeployed must not retire the members an already redeployed one started (and vice versa
 * would ping-pong). A member with no recorded task definition is never drained for it.
 */
export function isSupersededTaskDefinition(member: string | null, current: string): boolean {
  if (member === null || member === current) return false;
  const [of, now] = [revisionOf(member), revisionOf(current)];
  if (of && now && of.family === now.family) return of.revision < now.revision;
  return true;
}

/** The message a claimed member receives on its control queue: who it is from now on. */
export interface PoolIdentityMessage {
  type: 'pool.identity';
  containerId: string;
  generation: number;
  workspacePath: string;
  repoUrl: string | undefined;
  inputQueueUrl: string;
  outputQueueUrl: string;
}

/** Task tag naming a pool member's slot; with `Generation`, the member itself. */
export const POOL_SLOT_TAG = 'PoolSlot';

/** Where a member's items live in the containers table: `~` is not in the containerId alphabet. */
export function poolSlotKey(slot: number): string {
  return `~pool#${slot}`;
}

export function poolMemberKey(slot: number, generation: number): string {
  return `~pool#${slot}.${generation}`;
}

/** True for a key of the containers table that holds pool bookkeeping, not a container. */
export function isPoolKey(key: string): boolean {
  return key.startsWith('~pool#');
}

export function newPoolMember(slot: number, generation: number, now: string): PoolMemberRecord {
  return {
    slot,
    generation,
    state: 'starting',
    taskArn: null,
    controlQueueUrl: null,
    taskDefinition: null,
    createdAt: now,
    readyAt: null,
    claimedAt: null,
    claimedBy: null,
    claimedGeneration: null,
    retiredReason: null,
    version: 1,
  };
}

/** A pool write is guarded by the stored version, or by the item being absent (null). */
export interface PoolSlotWrite {
  record: PoolSlotRecord;
  expectVersion: number | null;
}

export interface PoolMemberWrite {
  record: PoolMemberRecord;
  expectVersion: number | null;
}

/** The pool's items, on the same store as the containers (the claim is one transaction). */
export interface PoolStore {
  /** Slots 0..size-1 and, for each, its current member (undefined when absent). */
  readPool(
    size: number,
  ): Promise<{ slot: PoolSlotRecord | undefined; member: PoolMemberRecord | undefined }[]>;
  getPoolMember(slot: number, generation: number): Promise<PoolMemberRecord | undefined>;
  /**
   * Every write or none, in one transaction: slots, members, containers and the quota
   * counters (a claim is counted like a cold start). StaleWriteError when any guard does not
   * hold; CapacityExceededError naming the quota when a charged counter is full.
   */
  writePool(change: {
    slots?: PoolSlotWrite[];
    members?: PoolMemberWrite[];
    containers?: ContainerWrite[];
    quota?: StoreChange['quota'];
  }): Promise<void>;
}

/** The members' control queues. */
export interface PoolControlQueues {
  /** Idempotent per (slot, generation). */
  createControl(slot: number, generation: number): Promise<string>;
  deleteControl(queueUrl: string): Promise<void>;
  send(queueUrl: string, body: object): Promise<void>;
}

/** A pool member's task: no containerId, no workspace yet. */
export interface PoolTaskSpec {
  slot: number;
  generation: number;
  environment: Record<string, string>;
}

/** What a runtime that can start pool members offers besides the Runtime port. */
export interface PoolRuntime {
  /** Idempotent per (slot, generation), as startTask is per (containerId, generation). */
  startPoolMember(spec: PoolTaskSpec): Promise<{ taskArn: string }>;
  /** The task definition new tasks are started from; members of another one are drained. */
  readonly taskDefinition: string;
}

/** The container record a claim writes: a new generation that already has the member's task. */
export type ClaimedContainer = ContainerRecord & { fromPool: true };
