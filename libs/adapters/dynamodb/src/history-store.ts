/**
 * The HistoryStore port on DynamoDB (issue 18): one item per event in the history table, keyed
 * by eventId, so a redelivered event is one conditional put that changes nothing. Each listing
 * is a Query on one index sorted by `at` (occurredAt), read backwards: newest first. TTL deletes
 * an expired item up to days late, so every read also filters `expiresAt > now`.
 */
import { createHash } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import {
  InvalidArgumentError,
  dayOf,
  eventOwner,
  hours,
  systemClock,
  type BerthEvent,
  type Clock,
  type HistoryFilter,
  type HistoryStore,
  type Page,
  type UsageContribution,
  type UsageRow,
} from '@berth/domain';
import { errorName, toDomainError } from './errors.ts';
import { HISTORY_INDEXES, TTL_ATTRIBUTE } from './tables.ts';

export interface DynamoHistoryStoreOptions {
  client: DynamoDBClient;
  historyTable: string;
  /** Retention in ms: how many days an admin's listing walks back through `day-index`. */
  retentionMs: number;
  clock?: Clock;
}

/** How long a day of the usage rollup is kept (it outlives the history on purpose). */
export const USAGE_ROLLUP_RETENTION_DAYS = 400;

/** Days of the usage rollup read at once (one Query each). */
const ROLLUP_DAYS_AT_ONCE = 8;
/** Query calls one listing page may make before it answers a short page with a cursor. */
const MAX_READS_PER_PAGE = 20;
const DAY_MS = 86_400_000;

interface Plan {
  index: string;
  /** The index's partition key attribute. */
  partitionName: string;
  /** The partitions read one after the other (several only for `day-index`, newest day first). */
  partitions: string[];
  filters: Array<{ name: string; value: string }>;
}

interface Cursor {
  /** The partition to resume in. */
  p: string;
  /** The key to resume after, or null to start that partition from its newest item. */
  k: Record<string, string> | null;
}

type Item = Record<string, unknown>;

export class DynamoHistoryStore implements HistoryStore {
  readonly #documents: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #retentionMs: number;
  readonly #clock: Clock;

  constructor(options: DynamoHistoryStoreOptions) {
    this.#documents = DynamoDBDocumentClient.from(options.client, {
      marshallOptions: { removeUndefinedValues: true },
    });
    this.#table = options.historyTable;
    this.#retentionMs = options.retentionMs;
    this.#clock = options.clock ?? systemClock;
  }

  async record(
    event: BerthEvent,
    expiresAtMs: number,
    usage: readonly UsageContribution[] = [],
  ): Promise<'stored' | 'duplicate'> {
    const owner = eventOwner(event);
    const item: Item = {
      eventId: event.eventId,
      type: event.type,
      at: event.occurredAt,
      day: dayOf(event.occurredAt),
      containerId: owner ? `${owner.clientId}.${owner.projectId}.${owner.userId}` : undefined,
      sessionId: event.sessionId,
      clientId: owner?.clientId,
      userId: owner?.userId,
      projectId: owner?.projectId,
      clientUser: owner ? clientUserKey(owner.clientId, owner.userId) : undefined,
      [TTL_ATTRIBUTE]: Math.ceil(expiresAtMs / 1000),
      event,
    };
    const put = {
      TableName: this.#table,
      Item: item,
      ConditionExpression: 'attribute_not_exists(eventId)',
    };
    try {
      if (usage.length === 0) {
        await this.#documents.send(new PutCommand(put));
      } else {
        // One transaction: the rollup grows exactly when the event is kept for the first time.
        await this.#documents.send(
          new TransactWriteCommand({
            TransactItems: [
              { Put: put },
              ...usage.map((share) => ({ Update: this.#rollup(share) })),
            ],
          }),
        );
      }
      return 'stored';
    } catch (error) {
      if (isLostCondition(error)) return 'duplicate';
      throw toDomainError(error, { operation: 'PutItem (history)', table: this.#table });
    }
  }

  /** `ADD` of one contribution to its day's rollup item (kept USAGE_ROLLUP_RETENTION_DAYS). */
  #rollup(share: UsageContribution) {
    const usageKey = `${share.clientId}/${share.projectId}`;
    const expires =
      Date.parse(`${share.day}T00:00:00.000Z`) / 1000 + USAGE_ROLLUP_RETENTION_DAYS * 86_400;
    return {
      TableName: this.#table,
      Key: { eventId: `${ROLLUP_PREFIX}${usageKey}/${share.day}` },
      UpdateExpression:
        'SET usageDay = :day, usageKey = :key, usageClient = :client, usageProject = :project, #ttl = :ttl ADD containerMs :ms, sessions :sessions, generations :generations',
      ExpressionAttributeNames: { '#ttl': TTL_ATTRIBUTE },
      ExpressionAttributeValues: {
        ':day': share.day,
        ':key': usageKey,
        ':client': share.clientId,
        ':project': share.projectId,
        ':ttl': expires,
        ':ms': share.containerMs ?? 0,
        ':sessions': share.sessions ?? 0,
        ':generations': share.generations ?? 0,
      },
    };
  }

  async usageRollup(
    clientId: string | undefined,
    fromDay: string,
    toDay: string,
  ): Promise<UsageRow[]> {
    const days: string[] = [];
    for (
      let day = Date.parse(`${fromDay}T00:00:00.000Z`);
      day <= Date.parse(`${toDay}T00:00:00.000Z`);
      day += DAY_MS
    ) {
      days.push(dayOf(day));
    }
    // One Query per day (the index's partition), a few days at once: a year of rollup days
    // read one after another would keep the request waiting on hundreds of round trips.
    const rows: UsageRow[] = [];
    for (let index = 0; index < days.length; index += ROLLUP_DAYS_AT_ONCE) {
      const batch = days.slice(index, index + ROLLUP_DAYS_AT_ONCE);
      for (const dayRows of await Promise.all(batch.map((day) => this.#rollupDay(clientId, day)))) {
        rows.push(...dayRows);
      }
    }
    return rows;
  }

  /** One day of the rollup: every client's, or one client's (`usageKey` begins `client/`). */
  async #rollupDay(clientId: string | undefined, day: string): Promise<UsageRow[]> {
    const rows: UsageRow[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const output = await this.#query({
        TableName: this.#table,
        IndexName: HISTORY_INDEXES.usage,
        KeyConditionExpression:
          clientId === undefined ? '#day = :day' : '#day = :day AND begins_with(#key, :client)',
        ExpressionAttributeNames: {
          '#day': 'usageDay',
          ...(clientId === undefined ? {} : { '#key': 'usageKey' }),
        },
        ExpressionAttributeValues: {
          ':day': day,
          ...(clientId === undefined ? {} : { ':client': `${clientId}/` }),
        },
        ...(start ? { ExclusiveStartKey: start } : {}),
      });
      for (const item of output.Items ?? []) {
        rows.push({
          clientId: item['usageClient'] as string,
          projectId: item['usageProject'] as string,
          day: item['usageDay'] as string,
          containerHours: hours(Number(item['containerMs'] ?? 0)),
          sessions: Number(item['sessions'] ?? 0),
          generations: Number(item['generations'] ?? 0),
        });
      }
      start = output.LastEvaluatedKey;
    } while (start);
    return rows;
  }

  async list(filter: HistoryFilter, limit: number, cursor?: string): Promise<Page<BerthEvent>> {
    const plan = this.#plan(filter);
    let position: Cursor | undefined = cursor
      ? decodeCursor(plan, cursor)
      : plan.partitions[0] !== undefined
        ? { p: plan.partitions[0], k: null }
        : undefined;
    const items: BerthEvent[] = [];
    for (let reads = 0; position && reads < MAX_READS_PER_PAGE; reads += 1) {
      const remaining = limit - items.length;
      const output = await this.#query({
        ...this.#queryInput(plan, position.p, filter),
        Limit: Math.max(remaining, 25),
        ...(position.k ? { ExclusiveStartKey: position.k } : {}),
      });
      const page = output.Items ?? [];
      for (const [index, item] of page.entries()) {
        items.push(item['event'] as BerthEvent);
        if (items.length === limit) {
          // Full mid-page: resume right after this item, unless it was the very last one.
          const more = index < page.length - 1 || output.LastEvaluatedKey !== undefined;
          const next = more
            ? { p: position.p, k: keyOf(item, plan) }
            : this.#nextPartition(plan, position.p);
          return { items, nextCursor: next ? encodeCursor(plan, next) : null };
        }
      }
      position = output.LastEvaluatedKey
        ? { p: position.p, k: output.LastEvaluatedKey as Record<string, string> }
        : this.#nextPartition(plan, position.p);
    }
    return { items, nextCursor: position ? encodeCursor(plan, position) : null };
  }

  async usageEvents(clientId: string | undefined, from: string, to: string): Promise<BerthEvent[]> {
    const plan = this.#plan(clientId !== undefined ? { clientId } : {}, from);
    const events: BerthEvent[] = [];
    for (const partition of plan.partitions) {
      let start: Record<string, unknown> | undefined;
      do {
        const output = await this.#query({
          TableName: this.#table,
          IndexName: plan.index,
          KeyConditionExpression: '#p = :p AND #at BETWEEN :from AND :to',
          FilterExpression: '#ttl > :now AND (begins_with(#type, :container) OR #type = :assigned)',
          ExpressionAttributeNames: {
            '#p': plan.partitionName,
            '#at': 'at',
            '#ttl': TTL_ATTRIBUTE,
            '#type': 'type',
          },
          ExpressionAttributeValues: {
            ':p': partition,
            ':from': from,
            ':to': to,
            ':now': this.#nowSeconds(),
            ':container': 'container.',
            ':assigned': 'session.assigned',
          },
          ...(start ? { ExclusiveStartKey: start } : {}),
        });
        for (const item of output.Items ?? []) events.push(item['event'] as BerthEvent);
        start = output.LastEvaluatedKey;
      } while (start);
    }
    return events;
  }

  #nowSeconds(): number {
    return Math.floor(this.#clock.now().getTime() / 1000);
  }

  /** Which index answers a filter; `since` (or the retention) bounds the days an admin walks. */
  #plan(filter: HistoryFilter, since = filter.since): Plan {
    const scope = [
      ...(filter.clientId !== undefined && (filter.containerId ?? filter.sessionId) !== undefined
        ? [{ name: 'clientId', value: filter.clientId }]
        : []),
      ...(filter.userId !== undefined && (filter.containerId ?? filter.sessionId) !== undefined
        ? [{ name: 'userId', value: filter.userId }]
        : []),
    ];
    if (filter.containerId !== undefined) {
      return {
        index: HISTORY_INDEXES.byContainer,
        partitionName: 'containerId',
        partitions: [filter.containerId],
        filters: scope,
      };
    }
    if (filter.sessionId !== undefined) {
      return {
        index: HISTORY_INDEXES.bySession,
        partitionName: 'sessionId',
        partitions: [filter.sessionId],
        filters: scope,
      };
    }
    if (filter.clientId !== undefined && filter.userId !== undefined) {
      return {
        index: HISTORY_INDEXES.byClientUser,
        partitionName: 'clientUser',
        partitions: [clientUserKey(filter.clientId, filter.userId)],
        filters: [],
      };
    }
    if (filter.clientId !== undefined) {
      return {
        index: HISTORY_INDEXES.byClient,
        partitionName: 'clientId',
        partitions: [filter.clientId],
        filters: [],
      };
    }
    const now = this.#clock.now().getTime();
    const oldest = Math.max(now - this.#retentionMs, since ? Date.parse(since) : 0);
    const days: string[] = [];
    for (let day = Date.parse(`${dayOf(now)}T00:00:00.000Z`); day + DAY_MS > oldest; day -= DAY_MS)
      days.push(dayOf(day));
    return { index: HISTORY_INDEXES.byDay, partitionName: 'day', partitions: days, filters: [] };
  }

  #queryInput(plan: Plan, partition: string, filter: HistoryFilter): QueryCommandInput {
    const names: Record<string, string> = { '#p': plan.partitionName, '#ttl': TTL_ATTRIBUTE };
    const values: Record<string, unknown> = { ':p': partition, ':now': this.#nowSeconds() };
    const conditions = ['#ttl > :now'];
    let keyCondition = '#p = :p';
    if (filter.since !== undefined) {
      names['#at'] = 'at';
      values[':since'] = filter.since;
      keyCondition += ' AND #at >= :since';
    }
    if (filter.type !== undefined) {
      names['#type'] = 'type';
      if ('exact' in filter.type) {
        values[':type'] = filter.type.exact;
        conditions.push('#type = :type');
      } else {
        values[':type'] = filter.type.prefix;
        conditions.push('begins_with(#type, :type)');
      }
    }
    plan.filters.forEach((residual, index) => {
      names[`#f${index}`] = residual.name;
      values[`:f${index}`] = residual.value;
      conditions.push(`#f${index} = :f${index}`);
    });
    return {
      TableName: this.#table,
      IndexName: plan.index,
      KeyConditionExpression: keyCondition,
      FilterExpression: conditions.join(' AND '),
      ExpressionAttributeNames: names,
      ExpressionAttributeValues: values,
      ScanIndexForward: false,
    };
  }

  #nextPartition(plan: Plan, current: string): Cursor | undefined {
    const index = plan.partitions.indexOf(current);
    const next = index === -1 ? undefined : plan.partitions[index + 1];
    return next === undefined ? undefined : { p: next, k: null };
  }

  async #query(input: QueryCommandInput) {
    try {
      return await this.#documents.send(new QueryCommand(input));
    } catch (error) {
      throw toDomainError(error, {
        operation: `Query (${input.IndexName ?? 'table'})`,
        table: this.#table,
      });
    }
  }
}

/** Rollup items' keys: no eventId begins with `~` (ids are derived from ids and types). */
const ROLLUP_PREFIX = '~usage/';

/** The event was kept before: its conditional put lost, alone or in its transaction. */
function isLostCondition(error: unknown): boolean {
  if (errorName(error) === 'ConditionalCheckFailedException') return true;
  if (errorName(error) !== 'TransactionCanceledException') return false;
  const reasons = (error as { CancellationReasons?: Array<{ Code?: string }> }).CancellationReasons;
  return reasons?.[0]?.Code === 'ConditionalCheckFailed';
}

/** `clientUser-index`'s partition: ids hold no `/`, so two pairs never share one. */
function clientUserKey(clientId: string, userId: string): string {
  return `${clientId}/${userId}`;
}

function keyOf(item: Item, plan: Plan): Record<string, string> {
  return {
    eventId: item['eventId'] as string,
    [plan.partitionName]: item[plan.partitionName] as string,
    at: item['at'] as string,
  };
}

/** Binds a cursor to its query (index, filters), so it cannot resume another. */
function fingerprint(plan: Plan): string {
  const identity = JSON.stringify([
    plan.index,
    plan.partitionName === 'day' ? 'day' : plan.partitions,
    plan.filters,
  ]);
  return createHash('sha256').update(identity).digest('base64url').slice(0, 16);
}

function encodeCursor(plan: Plan, cursor: Cursor): string {
  return Buffer.from(JSON.stringify({ q: fingerprint(plan), ...cursor }), 'utf8').toString(
    'base64url',
  );
}

function badCursor(reason: string): InvalidArgumentError {
  return new InvalidArgumentError(`cursor is not valid for this query: ${reason}`, 'cursor');
}

function decodeCursor(plan: Plan, cursor: string): Cursor {
  if (!/^[A-Za-z0-9_-]{1,4096}$/.test(cursor)) throw badCursor('not a cursor');
  let decoded: unknown;
  try {
    decoded = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw badCursor('not a cursor');
  }
  if (typeof decoded !== 'object' || decoded === null) throw badCursor('not a cursor');
  const { q, p, k } = decoded as { q?: unknown; p?: unknown; k?: unknown };
  if (q !== fingerprint(plan)) throw badCursor('it belongs to another query');
  if (typeof p !== 'string' || p === '') throw badCursor('no partition');
  if (plan.partitionName === 'day' ? !/^\d{4}-\d{2}-\d{2}$/.test(p) : p !== plan.partitions[0])
    throw badCursor('partition outside the query');
  if (k === null) return { p, k: null };
  const names = ['eventId', plan.partitionName, 'at'];
  if (
    typeof k !== 'object' ||
    Array.isArray(k) ||
    Object.keys(k).length !== names.length ||
    !names.every((name) => {
      const value = (k as Record<string, unknown>)[name];
      return typeof value === 'string' && value !== '';
    }) ||
    (k as Record<string, string>)[plan.partitionName] !== p
  ) {
    throw badCursor('wrong key');
  }
  return { p, k: k as Record<string, string> };
}
