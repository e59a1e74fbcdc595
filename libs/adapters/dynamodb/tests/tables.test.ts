import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  type TableDescription,
} from '@aws-sdk/client-dynamodb';
import { UnavailableError } from '@berth/domain';
import { afterAll, describe, expect, it } from '@jest/globals';
import { ensureTables, tableDefinitions, type TableNames } from '../src/index.ts';
import { destroyClients, newClient, uniqueTableNames } from './helpers.ts';

afterAll(destroyClients);

const client = newClient({});

async function describeTable(name: string): Promise<TableDescription> {
  const { Table } = await client.send(new DescribeTableCommand({ TableName: name }));
  if (!Table) throw new Error(`no description of ${name}`);
  return Table;
}

function indexKeys(table: TableDescription): Record<string, string[]> {
  return Object.fromEntries(
    (table.GlobalSecondaryIndexes ?? []).map((index): [string, string[]] => [
      index.IndexName ?? '',
      (index.KeySchema ?? []).map((key) => `${key.KeyType}:${key.AttributeName}`),
    ]),
  );
}

async function assertReady(names: TableNames): Promise<void> {
  const containers = await describeTable(names.containerTable);
  const sessions = await describeTable(names.sessionTable);
  expect(containers.TableStatus).toBe('ACTIVE');
  expect(sessions.TableStatus).toBe('ACTIVE');
  expect(containers.KeySchema).toEqual([{ AttributeName: 'containerId', KeyType: 'HASH' }]);
  expect(sessions.KeySchema).toEqual([{ AttributeName: 'sessionId', KeyType: 'HASH' }]);
  expect(indexKeys(containers)).toEqual({
    'clientId-index': ['HASH:clientId', 'RANGE:containerId'],
    'userId-index': ['HASH:userId', 'RANGE:containerId'],
    'clientProject-index': ['HASH:clientProject', 'RANGE:userId'],
    'status-index': ['HASH:status', 'RANGE:containerId'],
    'idle-index': ['HASH:idleKey', 'RANGE:idleSince'],
    'due-index': ['HASH:dueKey', 'RANGE:dueAt'],
  });
  expect(indexKeys(sessions)).toEqual({
    'container-index': ['HASH:containerId', 'RANGE:sessionId'],
    'thread-index': ['HASH:threadId', 'RANGE:sessionId'],
    'active-index': ['HASH:activeKey', 'RANGE:lastActivityAt'],
  });
  for (const table of [containers, sessions]) {
    expect(table.GlobalSecondaryIndexes?.every((index) => index.IndexStatus === 'ACTIVE')).toBe(
      true,
    );
    expect(
      table.GlobalSecondaryIndexes?.every((index) => index.Projection?.ProjectionType === 'ALL'),
    ).toBe(true);
    const { TimeToLiveDescription } = await client.send(
      new DescribeTimeToLiveCommand({ TableName: table.TableName }),
    );
    expect(TimeToLiveDescription).toEqual({
      TimeToLiveStatus: 'ENABLED',
      AttributeName: 'expiresAt',
    });
  }
}

describe('tableDefinitions', () => {
  it('asks for on-demand tables with the contract names', () => {
    const { containerTable, sessionTable } = tableDefinitions({
      containerTable: 'c',
      sessionTable: 's',
    });
    expect(containerTable.TableName).toBe('c');
    expect(sessionTable.TableName).toBe('s');
    expect(containerTable.BillingMode).toBe('PAY_PER_REQUEST');
    expect(sessionTable.BillingMode).toBe('PAY_PER_REQUEST');
  });
});

describe('ensureTables', () => {
  it('creates both tables with their indexes and TTL, and is idempotent', async () => {
    const names = uniqueTableNames('ensure');
    await ensureTables(client, names);
    await assertReady(names);
    await ensureTables(client, names);
    await assertReady(names);
  });

  it('is safe when several callers race to create the same tables', async () => {
    const names = uniqueTableNames('race');
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => ensureTables(newClient({}), names)),
    );
    expect(results.filter((result) => result.status === 'rejected')).toEqual([]);
    await assertReady(names);
  });

  it('refuses a table that lacks an index, naming it', async () => {
    // Prepare: a container table made before idle-index existed.
    const names = uniqueTableNames('older');
    const { containerTable } = tableDefinitions(names);
    await client.send(
      new CreateTableCommand({
        ...containerTable,
        AttributeDefinitions: containerTable.AttributeDefinitions?.filter(
          (attribute) =>
            attribute.AttributeName !== 'idleKey' && attribute.AttributeName !== 'idleSince',
        ),
        GlobalSecondaryIndexes: containerTable.GlobalSecondaryIndexes?.filter(
          (index) => index.IndexName !== 'idle-index',
        ),
      }),
    );

    // Act
    const attempt = ensureTables(client, names);

    // Assess
    await expect(attempt).rejects.toBeInstanceOf(UnavailableError);
    await expect(attempt).rejects.toThrow(new RegExp(`${names.containerTable} lacks .*idle-index`));
  });
});
