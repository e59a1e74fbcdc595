import {
  arrayField,
  objectField,
  stringField,
  type IamCheck,
  type OperationMapper,
} from './call.ts';
import { arnOf, lastSegment, type DeployTarget } from './target.ts';

function tableArn(target: DeployTarget, tableName: string): string {
  // TableName may be an ARN (the SDK accepts both): the name is what the stack deploys.
  return arnOf(target, 'dynamodb', `table/${lastSegment(tableName)}`);
}

function onTable(action: string, target: DeployTarget, tableName: string | undefined): IamCheck[] {
  return [{ action, resource: tableArn(target, tableName ?? '') }];
}

/** TransactWriteItems has no IAM action of its own: each item is authorized as its own write. */
const TRANSACT_ITEM_ACTIONS: Readonly<Record<string, string>> = {
  Put: 'dynamodb:PutItem',
  Update: 'dynamodb:UpdateItem',
  Delete: 'dynamodb:DeleteItem',
  ConditionCheck: 'dynamodb:ConditionCheckItem',
};

const TABLE_OPERATIONS = new Set([
  'GetItem',
  'PutItem',
  'UpdateItem',
  'DeleteItem',
  'DescribeTable',
  'CreateTable',
  'DeleteTable',
  'UpdateTable',
  'DescribeTimeToLive',
  'UpdateTimeToLive',
]);

export const mapDynamoDb: OperationMapper = (operation, input, _output, target) => {
  const tableName = stringField(input, 'TableName');
  if (TABLE_OPERATIONS.has(operation)) return onTable(`dynamodb:${operation}`, target, tableName);
  switch (operation) {
    case 'Query':
    case 'Scan': {
      const index = stringField(input, 'IndexName');
      const table = tableArn(target, tableName ?? '');
      return [
        {
          action: `dynamodb:${operation}`,
          resource: index === undefined ? table : `${table}/index/${index}`,
        },
      ];
    }
    case 'TransactWriteItems':
      return arrayField(input, 'TransactItems').flatMap((item) =>
        Object.entries(TRANSACT_ITEM_ACTIONS).flatMap(([kind, action]) => {
          const write = objectField(item, kind);
          return write ? onTable(action, target, stringField(write, 'TableName')) : [];
        }),
      );
    case 'TransactGetItems':
      return arrayField(input, 'TransactItems').flatMap((item) =>
        onTable('dynamodb:GetItem', target, stringField(objectField(item, 'Get'), 'TableName')),
      );
    case 'BatchGetItem':
      return Object.keys(objectField(input, 'RequestItems') ?? {}).flatMap((table) =>
        onTable('dynamodb:BatchGetItem', target, table),
      );
    case 'BatchWriteItem':
      return Object.keys(objectField(input, 'RequestItems') ?? {}).flatMap((table) =>
        onTable('dynamodb:BatchWriteItem', target, table),
      );
    case 'ListTables':
      return [{ action: 'dynamodb:ListTables', resource: '*' }];
    default:
      return undefined;
  }
};
