/**
 * The WebhookStore port on DynamoDB, in the webhook table (docs/design.md, "Signed webhooks"):
 *
 * - a subscription: `pk = subscription#<clientId>`, `sk = -` (holds the secret; nothing but
 *   the delivery worker's signing reads it back out);
 * - a pending delivery: `pk = stream#<containerId>`, `sk = <occurredAt>#<eventId>`, so a
 *   container's stream holds only what is still to send, oldest first, and its head is one
 *   consistent Query of one item; sparse `due-index` (`dueKey = pending`, `nextAttemptAt`);
 * - a finished one (delivered or dead), moved in one transaction to
 *   `pk = done#<clientId>#<eventId>`, which also stops a redelivered event from being queued
 *   twice; deleted by TTL (`expiresAt`) after its retention.
 *
 * Every delivery carries `clientId`, `clientStatus` and `createdKey` for the console's listings.
 */
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DeleteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import {
  InvalidArgumentError,
  StaleWriteError,
  type DeliveryStatus,
  type EventType,
  type Page,
  type WebhookDelivery,
  type WebhookStore,
  type WebhookSubscription,
} from '@berth/domain';
import { toDomainError } from './errors.ts';
import { WEBHOOK_INDEXES } from './tables.ts';

export interface DynamoWebhookStoreOptions {
  client?: DynamoDBClient;
  table: string;
  /** How long a delivered delivery is kept for the console; default 7 days. */
  deliveredRetentionSeconds?: number;
  /** How long a dead letter is kept; default 14 days (SQS's longest retention). */
  deadRetentionSeconds?: number;
}

const PENDING = 'pending';
/** `due-index` partition of deliveries waiting behind their stream's head. */
const PARKED = 'parked';
const subscriptionKey = (clientId: string) => ({ pk: `subscription#${clientId}`, sk: '-' });
const pendingKey = (d: Pick<WebhookDelivery, 'containerId' | 'occurredAt' | 'eventId'>) => ({
  pk: `stream#${d.containerId}`,
  sk: `${d.occurredAt}#${d.eventId}`,
});
const doneKey = (d: Pick<WebhookDelivery, 'clientId' | 'eventId'>) => ({
  pk: `done#${d.clientId}#${d.eventId}`,
  sk: '-',
});

type Item = Record<string, unknown>;

function str(item: Item, name: string): string {
  const value = item[name];
  if (typeof value !== 'string') throw new Error(`webhook item lacks ${name}`);
  return value;
}
const strOrNull = (item: Item, name: string): string | null =>
  typeof item[name] === 'string' ? item[name] : null;

function toDeliveryItem(delivery: WebhookDelivery, key: { pk: string; sk: string }): Item {
  return {
    ...key,
    clientId: delivery.clientId,
    clientStatus: `${delivery.clientId}#${delivery.status}`,
    createdKey: `${delivery.createdAt}#${delivery.containerId}#${delivery.eventId}`,
    containerId: delivery.containerId,
    eventId: delivery.eventId,
    eventType: delivery.eventType,
    occurredAt: delivery.occurredAt,
    body: delivery.body,
    status: delivery.status,
    attempts: delivery.attempts,
    createdAt: delivery.createdAt,
    nextAttemptAt: delivery.nextAttemptAt ?? undefined,
    lastAttemptAt: delivery.lastAttemptAt ?? undefined,
    lastError: delivery.lastError ?? undefined,
    lastStatusCode: delivery.lastStatusCode ?? undefined,
    deliveredAt: delivery.deliveredAt ?? undefined,
    deadAt: delivery.deadAt ?? undefined,
    ...(delivery.status === 'pending' ? { dueKey: PENDING } : {}),
  };
}

function fromDeliveryItem(item: Item): WebhookDelivery {
  return {
    clientId: str(item, 'clientId'),
    containerId: str(item, 'containerId'),
    eventId: str(item, 'eventId'),
    eventType: str(item, 'eventType') as EventType,
    occurredAt: str(item, 'occurredAt'),
    body: str(item, 'body'),
    status: str(item, 'status') as DeliveryStatus,
    attempts: typeof item['attempts'] === 'number' ? item['attempts'] : 0,
    createdAt: str(item, 'createdAt'),
    nextAttemptAt: strOrNull(item, 'nextAttemptAt'),
    lastAttemptAt: strOrNull(item, 'lastAttemptAt'),
    lastError: strOrNull(item, 'lastError'),
    lastStatusCode: typeof item['lastStatusCode'] === 'number' ? item['lastStatusCode'] : null,
    deliveredAt: strOrNull(item, 'deliveredAt'),
    deadAt: strOrNull(item, 'deadAt'),
  };
}

function encodeCursor(key: Record<string, unknown> | undefined): string | null {
  return key === undefined ? null : Buffer.from(JSON.stringify(key)).toString('base64url');
}

function decodeCursor(cursor: string, clientId: string): Record<string, unknown> {
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    const item = key as Item | null;
    if (
      typeof item === 'object' &&
      item !== null &&
      (item['clientId'] === clientId ||
        (typeof item['clientStatus'] === 'string' &&
          item['clientStatus'].startsWith(`${clientId}#`)))
    ) {
      return key as Record<string, unknown>;
    }
  } catch {
    // Falls through to the refusal below.
  }
  throw new InvalidArgumentError('cursor is not valid for this listing', 'cursor');
}

/** A cursor this store made for its own worker's paging (never from a request). */
function internalCursor(cursor: string): Item {
  return JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Item;
}

export class DynamoWebhookStore implements WebhookStore {
  readonly #documents: DynamoDBDocumentClient;
  readonly #table: string;
  readonly #deliveredRetentionSeconds: number;
  readonly #deadRetentionSeconds: number;

  constructor(options: DynamoWebhookStoreOptions) {
    this.#documents = DynamoDBDocumentClient.from(options.client ?? new DynamoDBClient({}), {
      marshallOptions: { removeUndefinedValues: true },
    });
    this.#table = options.table;
    this.#deliveredRetentionSeconds = options.deliveredRetentionSeconds ?? 7 * 24 * 3600;
    this.#deadRetentionSeconds = options.deadRetentionSeconds ?? 14 * 24 * 3600;
  }

  async #send<T>(operation: string, run: () => Promise<T>): Promise<T> {
    try {
      return await run();
    } catch (error) {
      throw toDomainError(error, { operation, table: this.#table });
    }
  }

  async getSubscription(clientId: string): Promise<WebhookSubscription | null> {
    const { Item } = await this.#send('GetItem', () =>
      this.#documents.send(
        new GetCommand({
          TableName: this.#table,
          Key: subscriptionKey(clientId),
          ConsistentRead: true,
        }),
      ),
    );
    if (Item === undefined) return null;
    return {
      clientId,
      url: str(Item, 'url'),
      events: Array.isArray(Item['events']) ? (Item['events'] as string[]) : [],
      secret: str(Item, 'secret'),
      createdAt: str(Item, 'createdAt'),
      updatedAt: str(Item, 'updatedAt'),
    };
  }

  async putSubscription(subscription: WebhookSubscription): Promise<void> {
    await this.#send('PutItem', () =>
      this.#documents.send(
        new PutCommand({
          TableName: this.#table,
          Item: {
            ...subscriptionKey(subscription.clientId),
            // Not `clientId`: a subscription is in none of the delivery indexes.
            owner: subscription.clientId,
            url: subscription.url,
            events: subscription.events,
            secret: subscription.secret,
            createdAt: subscription.createdAt,
            updatedAt: subscription.updatedAt,
          },
        }),
      ),
    );
  }

  async deleteSubscription(clientId: string): Promise<boolean> {
    const { Attributes } = await this.#send('DeleteItem', () =>
      this.#documents.send(
        new DeleteCommand({
          TableName: this.#table,
          Key: subscriptionKey(clientId),
          ReturnValues: 'ALL_OLD',
        }),
      ),
    );
    return Attributes !== undefined;
  }

  async addDelivery(delivery: WebhookDelivery): Promise<boolean> {
    try {
      await this.#send('TransactWriteItems', () =>
        this.#documents.send(
          new TransactWriteCommand({
            TransactItems: [
              {
                ConditionCheck: {
                  TableName: this.#table,
                  Key: doneKey(delivery),
                  ConditionExpression: 'attribute_not_exists(pk)',
                },
              },
              {
                Put: {
                  TableName: this.#table,
                  Item: toDeliveryItem(delivery, pendingKey(delivery)),
                  ConditionExpression: 'attribute_not_exists(pk)',
                },
              },
            ],
          }),
        ),
      );
      return true;
    } catch (error) {
      if (error instanceof StaleWriteError) return false;
      throw error;
    }
  }

  async dueDeliveries(now: string, limit: number, cursor?: string): Promise<Page<WebhookDelivery>> {
    const { Items, LastEvaluatedKey } = await this.#send('Query', () =>
      this.#documents.send(
        new QueryCommand({
          TableName: this.#table,
          IndexName: WEBHOOK_INDEXES.due,
          KeyConditionExpression: 'dueKey = :pending AND nextAttemptAt <= :now',
          ExpressionAttributeValues: { ':pending': PENDING, ':now': now },
          Limit: limit,
          ...(cursor ? { ExclusiveStartKey: internalCursor(cursor) } : {}),
        }),
      ),
    );
    return {
      items: (Items ?? []).map(fromDeliveryItem),
      nextCursor: encodeCursor(LastEvaluatedKey),
    };
  }

  async streamHead(containerId: string): Promise<WebhookDelivery | null> {
    const { Items } = await this.#send('Query', () =>
      this.#documents.send(
        new QueryCommand({
          TableName: this.#table,
          KeyConditionExpression: 'pk = :stream',
          ExpressionAttributeValues: { ':stream': `stream#${containerId}` },
          ConsistentRead: true,
          Limit: 1,
        }),
      ),
    );
    const head = Items?.[0];
    return head === undefined ? null : fromDeliveryItem(head);
  }

  async parkDelivery(delivery: WebhookDelivery): Promise<boolean> {
    try {
      await this.#send('UpdateItem', () =>
        this.#documents.send(
          new UpdateCommand({
            TableName: this.#table,
            Key: pendingKey(delivery),
            UpdateExpression: 'SET dueKey = :parked',
            ConditionExpression: 'attribute_exists(pk) AND attribute_not_exists(promoted)',
            ExpressionAttributeValues: { ':parked': PARKED },
          }),
        ),
      );
      return true;
    } catch (error) {
      if (error instanceof StaleWriteError) return false;
      throw error;
    }
  }

  async promoteDelivery(delivery: WebhookDelivery, now: string): Promise<void> {
    try {
      await this.#send('UpdateItem', () =>
        this.#documents.send(
          new UpdateCommand({
            TableName: this.#table,
            Key: pendingKey(delivery),
            UpdateExpression: 'SET dueKey = :pending, promoted = :yes, nextAttemptAt = :now',
            ConditionExpression: 'attribute_exists(pk) AND dueKey = :parked',
            ExpressionAttributeValues: {
              ':pending': PENDING,
              ':parked': PARKED,
              ':yes': true,
              ':now': now,
            },
          }),
        ),
      );
    } catch (error) {
      // Not parked (never was, or promoted by another worker): it is due already.
      if (!(error instanceof StaleWriteError)) throw error;
    }
  }

  async parkedDeliveries(limit: number, cursor?: string): Promise<Page<WebhookDelivery>> {
    const { Items, LastEvaluatedKey } = await this.#send('Query', () =>
      this.#documents.send(
        new QueryCommand({
          TableName: this.#table,
          IndexName: WEBHOOK_INDEXES.due,
          KeyConditionExpression: 'dueKey = :parked',
          ExpressionAttributeValues: { ':parked': PARKED },
          Limit: limit,
          ...(cursor
            ? {
                ExclusiveStartKey: JSON.parse(
                  Buffer.from(cursor, 'base64url').toString('utf8'),
                ) as Item,
              }
            : {}),
        }),
      ),
    );
    return {
      items: (Items ?? []).map(fromDeliveryItem),
      nextCursor: encodeCursor(LastEvaluatedKey),
    };
  }

  async claimDelivery(delivery: WebhookDelivery, leaseUntil: string): Promise<boolean> {
    try {
      await this.#send('UpdateItem', () =>
        this.#documents.send(
          new UpdateCommand({
            TableName: this.#table,
            Key: pendingKey(delivery),
            UpdateExpression: 'SET nextAttemptAt = :lease',
            ConditionExpression: 'attempts = :attempts AND nextAttemptAt = :due',
            ExpressionAttributeValues: {
              ':lease': leaseUntil,
              ':attempts': delivery.attempts,
              ':due': delivery.nextAttemptAt,
            },
          }),
        ),
      );
      return true;
    } catch (error) {
      if (error instanceof StaleWriteError) return false;
      throw error;
    }
  }

  async recordAttempt(delivery: WebhookDelivery): Promise<void> {
    if (delivery.status === 'pending') {
      await this.#send('PutItem', () =>
        this.#documents.send(
          new PutCommand({
            TableName: this.#table,
            Item: toDeliveryItem(delivery, pendingKey(delivery)),
            ConditionExpression: 'attribute_exists(pk)',
          }),
        ),
      );
      return;
    }
    const retention =
      delivery.status === 'delivered'
        ? this.#deliveredRetentionSeconds
        : this.#deadRetentionSeconds;
    const finishedAt = Date.parse(delivery.deliveredAt ?? delivery.deadAt ?? delivery.createdAt);
    await this.#send('TransactWriteItems', () =>
      this.#documents.send(
        new TransactWriteCommand({
          TransactItems: [
            { Delete: { TableName: this.#table, Key: pendingKey(delivery) } },
            {
              Put: {
                TableName: this.#table,
                Item: {
                  ...toDeliveryItem(delivery, doneKey(delivery)),
                  expiresAt: Math.floor(finishedAt / 1000) + retention,
                },
              },
            },
          ],
        }),
      ),
    );
  }

  async listDeliveries(
    clientId: string,
    options: { status?: DeliveryStatus; limit: number; cursor?: string },
  ): Promise<Page<WebhookDelivery>> {
    const input: QueryCommandInput = options.status
      ? {
          TableName: this.#table,
          IndexName: WEBHOOK_INDEXES.byClientStatus,
          KeyConditionExpression: 'clientStatus = :key',
          ExpressionAttributeValues: { ':key': `${clientId}#${options.status}` },
        }
      : {
          TableName: this.#table,
          IndexName: WEBHOOK_INDEXES.byClient,
          KeyConditionExpression: 'clientId = :key',
          ExpressionAttributeValues: { ':key': clientId },
        };
    const { Items, LastEvaluatedKey } = await this.#send('Query', () =>
      this.#documents.send(
        new QueryCommand({
          ...input,
          ScanIndexForward: false,
          Limit: options.limit,
          ...(options.cursor ? { ExclusiveStartKey: decodeCursor(options.cursor, clientId) } : {}),
        }),
      ),
    );
    return {
      items: (Items ?? []).map(fromDeliveryItem),
      nextCursor: encodeCursor(LastEvaluatedKey),
    };
  }
}
