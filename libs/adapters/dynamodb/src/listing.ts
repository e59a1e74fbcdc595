/**
 * How `listContainers` reads: which index answers a filter best, what it still has to
 * filter, and the opaque cursor that resumes it. A containerId is `client.project.user`
 * and no part holds a dot, so a `begins_with` on containerId narrows by client (and
 * project) exactly.
 */
import { createHash } from 'node:crypto';
import { InvalidArgumentError, type ContainerFilter } from '@berth/domain';
import { clientProjectKey, type Item } from './items.ts';
import { CONTAINER_INDEXES } from './tables.ts';

export interface KeyCondition {
  name: string;
  value: string;
  /** `prefix` is begins_with on a sort key. */
  match: 'equals' | 'prefix';
}

export interface ContainerQueryPlan {
  /** Undefined: a Scan of the table. */
  index: string | undefined;
  /** The attributes of a LastEvaluatedKey: the table key plus the index keys. */
  keyAttributes: readonly string[];
  partition: KeyCondition | undefined;
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
      partition: {
        name: 'clientProject',
        value: clientProjectKey(clientId, projectId),
        match: 'equals',
      },
      sort: userId === undefined ? undefined : { name: 'userId', value: userId, match: 'equals' },
      filters: residual(['clientId', 'projectId', 'userId']),
    };
  }
  if (userId !== undefined) {
    return {
      index: CONTAINER_INDEXES.byUser,
      keyAttributes: [TABLE_KEY, 'userId'],
      partition: { name: 'userId', value: userId, match: 'equals' },
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
      partition: { name: 'status', value: status, match: 'equals' },
      sort:
        clientId === undefined
          ? undefined
          : { name: TABLE_KEY, value: prefixOf(clientId), match: 'prefix' },
      filters: residual(['status', 'clientId']),
    };
  }
  return {
    index: undefined,
    keyAttributes: [TABLE_KEY],
    partition: undefined,
    sort: undefined,
    filters: residual([]),
  };
}

/** Binds a cursor to the query that made it, so it cannot resume a different one. */
function fingerprint(plan: ContainerQueryPlan): string {
  const identity = JSON.stringify([
    plan.index ?? null,
    plan.partition ?? null,
    plan.sort ?? null,
    plan.filters,
  ]);
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
  if (
    names.length !== plan.keyAttributes.length ||
    !plan.keyAttributes.every((name) => typeof key[name] === 'string')
  ) {
    throw badCursor('wrong key');
  }
  const typed = key as Record<string, string>;
  for (const condition of [plan.partition, plan.sort]) {
    if (condition && !matches(condition, typed[condition.name] ?? ''))
      throw badCursor('key outside the query');
  }
  return typed;
}
