/**
 * The two tables berth keeps its state in, and how to make sure they exist. The contract
 * fixes the table keys and the names of the public indexes; the sparse `idle-index` and
 * `active-index` exist so that the reaper's sweeps read only the items they act on.
 */
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  UpdateTimeToLiveCommand,
  type CreateTableCommandInput,
  type DynamoDBClient,
  type GlobalSecondaryIndex,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';
import { UnavailableError } from '@berth/domain';
import { setTimeout as delay } from 'node:timers/promises';
import { errorName, toDomainError } from './errors.ts';

export interface TableNames {
  containerTable: string;
  sessionTable: string;
}

export const CONTAINER_INDEXES = {
  byClient: 'clientId-index',
  byUser: 'userId-index',
  byClientProject: 'clientProject-index',
  byStatus: 'status-index',
  idle: 'idle-index',
  due: 'due-index',
} as const;

export const SESSION_INDEXES = {
  byContainer: 'container-index',
  byThread: 'thread-index',
  active: 'active-index',
} as const;

/** The webhook table's indexes (docs/design.md, "Signed webhooks"). */
export const WEBHOOK_INDEXES = {
  /** Every delivery of a client, by creation: the console's listing. */
  byClient: 'client-index',
  /** A client's deliveries of one status (`<clientId>#<status>`), by creation. */
  byClientStatus: 'clientStatus-index',
  /** Sparse: pending deliveries only (`dueKey = pending`), by `nextAttemptAt`. */
  due: 'due-index',
} as const;

/**
 * The lifecycle history's indexes (issue 18): each answers one listing newest first (`at`, the
 * event's occurredAt). `day-index` serves an admin's listing and usage across every client.
 */
export const HISTORY_INDEXES = {
  byContainer: 'container-index',
  bySession: 'session-index',
  byClient: 'client-index',
  byClientUser: 'clientUser-index',
  byDay: 'day-index',
  /** Sparse: the daily usage rollup only (`usageDay`, `usageKey` = `<clientId>/<projectId>`). */
  usage: 'usage-index',
} as const;

/** The attribute DynamoDB's TTL reads, in epoch seconds. */
export const TTL_ATTRIBUTE = 'expiresAt';

function index(name: string, partitionKey: string, sortKey: string): GlobalSecondaryIndex {
  return {
    IndexName: name,
    KeySchema: [
      { AttributeName: partitionKey, KeyType: 'HASH' },
      { AttributeName: sortKey, KeyType: 'RANGE' },
    ],
    Projection: { ProjectionType: 'ALL' },
  };
}

function stringAttributes(names: string[]): CreateTableCommandInput['AttributeDefinitions'] {
  return names.map((name) => ({ AttributeName: name, AttributeType: 'S' as const }));
}

/** A CreateTable request whose table name is known to be there. */
export type TableDefinition = CreateTableCommandInput & { TableName: string };

export function tableDefinitions(names: TableNames): {
  containerTable: TableDefinition;
  sessionTable: TableDefinition;
} {
  return {
    containerTable: {
      TableName: names.containerTable,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'containerId', KeyType: 'HASH' }],
      AttributeDefinitions: stringAttributes([
        'containerId',
        'clientId',
        'userId',
        'clientProject',
        'status',
        'idleKey',
        'idleSince',
        'dueKey',
        'dueAt',
      ]),
      GlobalSecondaryIndexes: [
        index(CONTAINER_INDEXES.byClient, 'clientId', 'containerId'),
        index(CONTAINER_INDEXES.byUser, 'userId', 'containerId'),
        index(CONTAINER_INDEXES.byClientProject, 'clientProject', 'userId'),
        index(CONTAINER_INDEXES.byStatus, 'status', 'containerId'),
        index(CONTAINER_INDEXES.idle, 'idleKey', 'idleSince'),
        index(CONTAINER_INDEXES.due, 'dueKey', 'dueAt'),
      ],
    },
    sessionTable: {
      TableName: names.sessionTable,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [{ AttributeName: 'sessionId', KeyType: 'HASH' }],
      AttributeDefinitions: stringAttributes([
        'sessionId',
        'containerId',
        'threadId',
        'activeKey',
        'lastActivityAt',
      ]),
      GlobalSecondaryIndexes: [
        index(SESSION_INDEXES.byContainer, 'containerId', 'sessionId'),
        index(SESSION_INDEXES.byThread, 'threadId', 'sessionId'),
        index(SESSION_INDEXES.active, 'activeKey', 'lastActivityAt'),
      ],
    },
  };
}

/**
 * The webhook table: subscriptions and deliveries under a generic `pk`/`sk` key (docs/design.md,
 * "Signed webhooks"), TTL on `expiresAt` for finished deliveries.
 */
export function webhookTableDefinition(tableName: string): TableDefinition {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ],
    AttributeDefinitions: stringAttributes([
      'pk',
      'sk',
      'clientId',
      'clientStatus',
      'createdKey',
      'dueKey',
      'nextAttemptAt',
    ]),
    GlobalSecondaryIndexes: [
      index(WEBHOOK_INDEXES.byClient, 'clientId', 'createdKey'),
      index(WEBHOOK_INDEXES.byClientStatus, 'clientStatus', 'createdKey'),
      index(WEBHOOK_INDEXES.due, 'dueKey', 'nextAttemptAt'),
    ],
  };
}

/** Creates the webhook table when missing, as `ensureTables` does berth's two others. */
export async function ensureWebhookTable(
  client: DynamoDBClient,
  tableName: string,
  options: EnsureTablesOptions = {},
): Promise<void> {
  await ensureTable(
    client,
    webhookTableDefinition(tableName),
    Date.now() + (options.timeoutMs ?? 120_000),
  );
}

/** The lifecycle history's table: one item per eventId (the key makes writes idempotent). */
export function historyTableDefinition(tableName: string): TableDefinition {
  return {
    TableName: tableName,
    BillingMode: 'PAY_PER_REQUEST',
    KeySchema: [{ AttributeName: 'eventId', KeyType: 'HASH' }],
    AttributeDefinitions: stringAttributes([
      'eventId',
      'containerId',
      'sessionId',
      'clientId',
      'clientUser',
      'day',
      'at',
      'usageDay',
      'usageKey',
    ]),
    GlobalSecondaryIndexes: [
      index(HISTORY_INDEXES.byContainer, 'containerId', 'at'),
      index(HISTORY_INDEXES.bySession, 'sessionId', 'at'),
      index(HISTORY_INDEXES.byClient, 'clientId', 'at'),
      index(HISTORY_INDEXES.byClientUser, 'clientUser', 'at'),
      index(HISTORY_INDEXES.byDay, 'day', 'at'),
      index(HISTORY_INDEXES.usage, 'usageDay', 'usageKey'),
    ],
  };
}

/** Creates the history table when missing, waits until it is ACTIVE, and turns TTL on. */
export async function ensureHistoryTable(
  client: DynamoDBClient,
  tableName: string,
  options: EnsureTablesOptions = {},
): Promise<void> {
  await ensureTable(
    client,
    historyTableDefinition(tableName),
    Date.now() + (options.timeoutMs ?? 120_000),
  );
}

export interface EnsureTablesOptions {
  /** How long to wait for a table (and its indexes) to become ACTIVE. */
  timeoutMs?: number;
}

/**
 * Creates whichever table is missing, waits until both are ACTIVE with every index,
 * and turns TTL on. Several processes may run it at once (every replica of
 * the local stack does on start): each step accepts that another process got there first.
 */
export async function ensureTables(
  client: DynamoDBClient,
  names: TableNames,
  options: EnsureTablesOptions = {},
): Promise<void> {
  const definitions = tableDefinitions(names);
  const timeoutMs = options.timeoutMs ?? 120_000;
  await Promise.all(
    [definitions.containerTable, definitions.sessionTable].map((definition) =>
      ensureTable(client, definition, Date.now() + timeoutMs),
    ),
  );
}

async function ensureTable(
  client: DynamoDBClient,
  definition: TableDefinition,
  deadline: number,
): Promise<void> {
  const table = definition.TableName;
  try {
    let description = await describe(client, table);
    if (!description) {
      await create(client, definition);
    }
    description = await waitUntilActive(client, table, deadline);
    assertIndexes(definition, description);
    await enableTtl(client, table);
  } catch (error) {
    throw toDomainError(error, { operation: 'ensureTables', table });
  }
}

async function describe(
  client: DynamoDBClient,
  table: string,
): Promise<TableDescription | undefined> {
  try {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: table }));
    return Table;
  } catch (error) {
    if (errorName(error) === 'ResourceNotFoundException') return undefined;
    throw error;
  }
}

async function create(client: DynamoDBClient, definition: CreateTableCommandInput): Promise<void> {
  try {
    await client.send(new CreateTableCommand(definition));
  } catch (error) {
    // Another process created it between our describe and our create.
    if (errorName(error) !== 'ResourceInUseException') throw error;
  }
}

function isActive(description: TableDescription | undefined): boolean {
  return (
    description?.TableStatus === 'ACTIVE' &&
    (description.GlobalSecondaryIndexes ?? []).every((gsi) => gsi.IndexStatus === 'ACTIVE')
  );
}

/** Polls: the SDK's waiter starts at a 20 s delay, far too slow for a local engine. */
async function waitUntilActive(
  client: DynamoDBClient,
  table: string,
  deadline: number,
): Promise<TableDescription> {
  let wait = 100;
  for (;;) {
    const description = await describe(client, table);
    if (description && isActive(description)) return description;
    if (Date.now() + wait > deadline) {
      throw new UnavailableError(
        `DynamoDB table ${table} did not become ACTIVE in time (status ${description?.TableStatus ?? 'missing'})`,
      );
    }
    await delay(wait);
    wait = Math.min(wait * 2, 2000);
  }
}

/**
 * A table made by an older berth may lack an index added since. Building one is an online
 * schema change better left to the infrastructure stack (DynamoDB Local's backfill can
 * stall), so this only says precisely what is missing.
 */
function assertIndexes(definition: TableDefinition, description: TableDescription): void {
  const present = new Set((description.GlobalSecondaryIndexes ?? []).map((gsi) => gsi.IndexName));
  const missing = (definition.GlobalSecondaryIndexes ?? [])
    .map((gsi) => gsi.IndexName)
    .filter((name) => !present.has(name));
  if (missing.length > 0) {
    throw new UnavailableError(
      `DynamoDB table ${definition.TableName} lacks the index(es) ${missing.join(', ')}; ` +
        'add them (or recreate the table) before starting berth',
    );
  }
}

async function ttlOf(client: DynamoDBClient, table: string) {
  const { TimeToLiveDescription } = await client.send(
    new DescribeTimeToLiveCommand({ TableName: table }),
  );
  const status = TimeToLiveDescription?.TimeToLiveStatus;
  return {
    on: status === 'ENABLED' || status === 'ENABLING',
    attribute: TimeToLiveDescription?.AttributeName,
  };
}

async function enableTtl(client: DynamoDBClient, table: string): Promise<void> {
  const before = await ttlOf(client, table);
  if (!before.on) {
    try {
      await client.send(
        new UpdateTimeToLiveCommand({
          TableName: table,
          TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
        }),
      );
      return;
    } catch (error) {
      // A concurrent caller may have turned it on first; only then is the refusal fine.
      if (errorName(error) !== 'ValidationException') throw error;
      const after = await ttlOf(client, table);
      if (!after.on) throw error;
      before.attribute = after.attribute;
    }
  }
  if (before.attribute !== TTL_ATTRIBUTE) {
    throw new UnavailableError(
      `DynamoDB table ${table} has TTL on ${before.attribute}, not ${TTL_ATTRIBUTE}`,
    );
  }
}
