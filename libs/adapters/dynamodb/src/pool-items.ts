/**
 * The warm pool's items in the containers table (docs/design.md, "The warm pool"). Their keys
 * begin with `~pool#`, which no containerId can, and they hold none of the attributes an index
 * keys on (`status`, `clientId`, `userId`, `clientProject`, `idleKey`): no query of a user's containers,
 * no gauge and no idle stop ever reads them.
 */
import {
  POOL_MEMBER_STATES,
  UnavailableError,
  poolMemberKey,
  poolSlotKey,
  type PoolMemberRecord,
  type PoolSlotRecord,
} from '@berth/domain';
import type { Item } from './items.ts';
import { TTL_ATTRIBUTE } from './tables.ts';

const MEMBER_FIELDS = [
  'taskArn',
  'endpoint',
  'controlQueueUrl',
  'taskDefinition',
  'createdAt',
  'readyAt',
  'claimedAt',
  'claimedBy',
  'claimedGeneration',
  'retiredReason',
] as const satisfies readonly (keyof PoolMemberRecord)[];

export function toSlotItem(record: PoolSlotRecord): Item {
  return {
    containerId: poolSlotKey(record.slot),
    poolSlot: record.slot,
    poolGeneration: record.generation,
    version: record.version,
  };
}

const MEMBER_RETENTION_SECONDS = 90 * 24 * 60 * 60;

export function toMemberItem(record: PoolMemberRecord, now: Date): Item {
  const item: Item = {
    containerId: poolMemberKey(record.slot, record.generation),
    poolSlot: record.slot,
    poolGeneration: record.generation,
    // Not `status`: status-index would list it among the containers.
    memberState: record.state,
    version: record.version,
  };
  for (const field of MEMBER_FIELDS) {
    const value = record[field];
    if (value !== null && value !== undefined) item[field] = value;
  }
  // A member that left the pool is kept only so its task's late events find the container it
  // became; 90 days outlive any container a person keeps busy, and TTL removes it after.
  if (record.state === 'handed' || record.state === 'retired') {
    item[TTL_ATTRIBUTE] = Math.floor(now.getTime() / 1000) + MEMBER_RETENTION_SECONDS;
  }
  return item;
}

function bad(item: Item, field: string): UnavailableError {
  return new UnavailableError(
    `stored pool item ${String(item.containerId)} is malformed: bad ${field}`,
  );
}

function integer(item: Item, field: string): number {
  const value = item[field];
  if (typeof value !== 'number' || !Number.isInteger(value)) throw bad(item, field);
  return value;
}

function optional<T>(item: Item, field: string): T | null {
  const value = item[field];
  return value === undefined || value === null ? null : (value as T);
}

export function fromSlotItem(item: Item): PoolSlotRecord {
  return {
    slot: integer(item, 'poolSlot'),
    generation: integer(item, 'poolGeneration'),
    version: integer(item, 'version'),
  };
}

export function fromMemberItem(item: Item): PoolMemberRecord {
  const state = item.memberState;
  if (typeof state !== 'string' || !(POOL_MEMBER_STATES as readonly string[]).includes(state)) {
    throw bad(item, 'memberState');
  }
  const createdAt = item.createdAt;
  if (typeof createdAt !== 'string') throw bad(item, 'createdAt');
  return {
    slot: integer(item, 'poolSlot'),
    generation: integer(item, 'poolGeneration'),
    state: state as PoolMemberRecord['state'],
    taskArn: optional(item, 'taskArn'),
    ...(typeof item.endpoint === 'string' ? { endpoint: item.endpoint } : {}),
    controlQueueUrl: optional(item, 'controlQueueUrl'),
    taskDefinition: optional(item, 'taskDefinition'),
    createdAt,
    readyAt: optional(item, 'readyAt'),
    claimedAt: optional(item, 'claimedAt'),
    claimedBy: optional(item, 'claimedBy'),
    claimedGeneration: optional(item, 'claimedGeneration'),
    retiredReason: optional(item, 'retiredReason'),
    version: integer(item, 'version'),
  };
}

/** A pool write's guard: the stored version, or no item yet. */
export function versionCondition(expectVersion: number | null): {
  ConditionExpression: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, unknown>;
} {
  if (expectVersion === null) return { ConditionExpression: 'attribute_not_exists(containerId)' };
  return {
    ConditionExpression: '#version = :version',
    ExpressionAttributeNames: { '#version': 'version' },
    ExpressionAttributeValues: { ':version': expectVersion },
  };
}
