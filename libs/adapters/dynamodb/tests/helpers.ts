import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  containerIdOf,
  newContainerRecord,
  type ContainerKey,
  type ContainerRecord,
  type SessionRecord,
} from '@berth/domain';
import { randomUUID } from 'node:crypto';
import {
  DynamoStateStore,
  ensureTables,
  type ConsumedCapacityListener,
  type TableNames,
} from '../src/index.ts';

const clients: DynamoDBClient[] = [];

/** A client that `destroyClients` closes, so no keep-alive socket outlives the tests. */
export function newClient(
  config: ConstructorParameters<typeof DynamoDBClient>[0] = {},
): DynamoDBClient {
  const client = new DynamoDBClient(config);
  clients.push(client);
  return client;
}

export function destroyClients(): void {
  for (const client of clients.splice(0)) client.destroy();
}

/** Table names of their own for each test file, so files can share one DynamoDB Local. */
export function uniqueTableNames(prefix: string): TableNames {
  const suffix = randomUUID().slice(0, 8);
  return {
    containerTable: `${prefix}-containers-${suffix}`,
    sessionTable: `${prefix}-sessions-${suffix}`,
  };
}

export async function storeWithTables(
  prefix: string,
  options: { onConsumedCapacity?: ConsumedCapacityListener } = {},
): Promise<{ store: DynamoStateStore; client: DynamoDBClient; names: TableNames }> {
  const client = newClient();
  const names = uniqueTableNames(prefix);
  await ensureTables(client, names);
  const store = new DynamoStateStore({ client, ...names, ...options });
  return { store, client, names };
}

export const T0 = '2026-01-01T00:00:00.000Z';

export function at(minutes: number): string {
  return new Date(Date.parse(T0) + minutes * 60_000).toISOString();
}

export function containerFixture(
  key: ContainerKey,
  generation = 1,
  overrides: Partial<ContainerRecord> = {},
): ContainerRecord {
  return {
    ...newContainerRecord({ ...key, containerId: containerIdOf(key) }, generation, T0),
    ...overrides,
  };
}

export function sessionFixture(
  sessionId: string,
  overrides: Partial<SessionRecord> = {},
): SessionRecord {
  return {
    sessionId,
    containerId: null,
    generation: null,
    threadId: null,
    status: 'active',
    inputQueueUrl: null,
    outputQueueUrl: null,
    worktreePath: null,
    assignedAt: T0,
    lastActivityAt: T0,
    releasedAt: null,
    releaseReason: null,
    ...overrides,
  };
}
