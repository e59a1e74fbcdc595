/**
 * How `listContainers` reads: which index answers a filter best, what it still has to
 * filter, and the opaque cursor that resumes it. A containerId is `client.project.user`
 * and no part holds a dot, so a `begins_with` on containerId narrows by client (and
 * project) exactly. Every listing is a Query: one client's containers come from
 * `clientId-index`, and a listing with neither client, user nor status (an admin's) reads
 * `status-index` one status after the other, so no role needs dynamodb:Scan.
 */
import { createHash } from 'node:crypto';
import { CONTAINER_STATUSES, InvalidArgumentError, type ContainerFilter } from '@berth/domain';
import { clientProjectKey, type Item } from './items.ts';
import { CONTAINER_INDEXES } from './tables.ts';

export interface KeyCondition {
  name: string;
  value: string;
  /** `prefix` is begins_with on a sort key. */
  match: 'equals' | 'prefix';
}

export interface ContainerQueryPlan {
  index: string;
  /** The attributes of a LastEvaluatedKey: the table key plus the index keys. */
  keyAttributes: readonly string[];
  /** The index partitions read, one after the other, in this order (always `equals`). */
  partitions: readonly KeyCondition[];
  /** Only with a single partition. */
  sort: KeyCondition | undefined;
  /** Equality conditions the key cannot express, applied as a FilterExpression. */
  filters: ReadonlyArray<{ name: string; value: string }>;
}

const TABLE_KEY = 'containerId';

export function planContainerQuery(filter: ContainerFilter): ContainerQueryPlan {
  const { clientId, projectId, userId, status } = filter;
  const residual = (covered: ReadonlyArray<keyof ContainerFilter>) =>
    (['clientId', 'projectId', 'userId', 'status'] as const)
      .filter((name) => !covered.includes(name) && filter[name] !== undefined)
      .map((name) => ({ name, value: filter[name] as string }));
  const prefixOf = (...parts: string[]) => parts.map((part) => `${part}.`).join('');

  if (clientId !== undefined && projectId !== undefined) {
    return {
      index: CONTAINER_INDEXES.byClientProject,
      keyAttributes: [TABLE_KEY, 'clientProject', 'userId'],
      partitions: [
        {
          name: 'clientProject',
          value: clientProjectKey(clientId, projectId),
          match: 'equals',
        },
      ],
      sort: userId === undefined ? undefined : { name: 'userId', value: userId, match: 'equals' },
      filters: residual(['clientId', 'projectId', 'userId']),
    };
  }
  if (userId !== undefined) {
    return {
      index: CONTAINER_INDEXES.byUser,
      keyAttributes: [TABLE_KEY, 'userId'],
      partitions: [{ name: 'userId', value: userId, match: 'equals' }],
      sort:
        clientId === undefined
          ? undefined
          : { name: TABLE_KEY, value: prefixOf(clientId), match: 'prefix' },
      filters: residual(['userId', 'clientId']),
    };
  }
  if (status !== undefined) {
    return {
      index: CONTAINER_INDEXES.byStatus,
      keyAttributes: [TABLE_KEY, 'status'],
      partitions: [{ name: 'status', value: status, match: 'equals' }],
      sort:
        clientId === undefined
          ? undefined
          : { name: TABLE_KEY, value: prefixOf(clientId), match: 'prefix' },
      filters: residual(['status', 'clientId']),
    };
  }
  if (clientId !== undefined) {
    return {
      index: CONTAINER_INDEXES.byClient,
      keyAttributes: [TABLE_KEY, 'clientId'],
      partitions: [{ name: 'clientId', value: clientId, match: 'equals' }],
      sort: undefined,
      filters: residual(['clientId']),
    };
  }
  // Every container has a status: reading each status's partition reads every container once.
  return {
    index: CONTAINER_INDEXES.byStatus,
    keyAttributes: [TABLE_KEY, 'status'],
    partitions: CONTAINER_STATUSES.map((value) => ({ name: 'status', value, match: 'equals' })),
    sort: undefined,
    filters: residual([]),
  };
}

/** Binds a cursor to the query that made it, so it cannot resume a different one. */
function fingerprint(plan: ContainerQueryPlan): string {
  const identity = JSON.stringify([plan.index, plan.partitions, plan.sort ?? null, plan.filters]);
  return createHash('sha256').update(identity).digest('base64url').slice(0, 16);
}

export function keyOf(item: Item, plan: ContainerQueryPlan): Record<string, string> {
  const key: Record<string, string> = {};
  for (const name of plan.keyAttributes) key[name] = item[name] as string;
  return key;
}

export function encodeCursor(plan: ContainerQueryPlan, key: Record<string, unknown>): string {
  return Buffer.from(JSON.stringify({ q: fingerprint(plan), k: key }), 'utf8').toString(
    'base64url',
  );
}

function badCursor(reason: string): InvalidArgumentError {
  return new InvalidArgumentError(`cursor is not valid for this query: ${reason}`, 'cursor');
}

function matches(condition: KeyCondition, value: string): boolean {
  return condition.match === 'equals'
    ? value === condition.value
    : value.startsWith(condition.value);
}

export function decodeCursor(plan: ContainerQueryPlan, cursor: string): Record<string, string> {
  if (!/^[A-Za-z0-9_-]{1,4096}$/.test(cursor)) throw badCursor('not a cursor');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw badCursor('not a cursor');
  }
  if (typeof decoded !== 'object' || decoded === null) throw badCursor('not a cursor');
  const { q, k } = decoded as { q?: unknown; k?: unknown };
  if (q !== fingerprint(plan)) throw badCursor('it belongs to another query');
  if (typeof k !== 'object' || k === null || Array.isArray(k)) throw badCursor('no key');
  const key = k as Record<string, unknown>;
  const names = Object.keys(key);
  // No stored key is empty (DynamoDB refuses an empty key attribute, so it would answer 503).
  if (
    names.length !== plan.keyAttributes.length ||
    !plan.keyAttributes.every((name) => typeof key[name] === 'string' && key[name] !== '')
  ) {
    throw badCursor('wrong key');
  }
  const typed = key as Record<string, string>;
  if (partitionOf(plan, typed) === -1) throw badCursor('key outside the query');
  if (plan.sort && !matches(plan.sort, typed[plan.sort.name] ?? ''))
    throw badCursor('key outside the query');
  return typed;
}

/** Which of the plan's partitions a key (a cursor's, an item's) lies in; -1 for none. */
export function partitionOf(plan: ContainerQueryPlan, key: Record<string, unknown>): number {
  return plan.partitions.findIndex((partition) => {
    const value = key[partition.name];
    return typeof value === 'string' && matches(partition, value);
  });
}
