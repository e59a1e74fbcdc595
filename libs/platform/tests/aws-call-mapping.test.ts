/**
 * One case per SDK command a berth process sends: the IAM actions and resource ARNs AWS
 * authorizes for it, written with the deployed stack's account and region whatever the
 * emulator answered with. Each expected check is also run through iam-simulate, which
 * refuses an unknown action or a resource ARN of a type the action does not take, and its
 * service-specific condition keys are checked against the ones the action has.
 */
import { allowedContextKeysForRequest, runSimulation } from '@cloud-copilot/iam-simulate';
import { readFileSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describeAwsCall, type DeployTarget, type IamCheck } from '../src/index.ts';

const target: DeployTarget = { partition: 'aws', region: 'eu-west-1', account: '123456789012' };
const ACCOUNT = target.account;
const R = `${target.region}:${ACCOUNT}`;
const FAUXQS_QUEUE = (name: string): string =>
  `http://sqs.us-east-1.localhost:4566/000000000000/${name}`;
const FAUXQS_TOPIC = 'arn:aws:sns:us-east-1:000000000000:berth-lifecycle-events';
const TOPIC = `arn:aws:sns:${R}:berth-lifecycle-events`;
const CONTAINERS = `arn:aws:dynamodb:${R}:table/berth-containers`;
const SESSIONS = `arn:aws:dynamodb:${R}:table/berth-sessions`;
const CLUSTER = `arn:aws:ecs:${R}:cluster/berth`;
const LOCAL_TASK = 'arn:aws:ecs:us-east-1:000000000000:task/berth/0123abcd';

interface Case {
  client: 'DynamoDBClient' | 'SQSClient' | 'SNSClient' | 'ECSClient';
  command: string;
  input: Record<string, unknown>;
  output?: Record<string, unknown>;
  expected: IamCheck[];
}

const queue = (name: string): string => `arn:aws:sqs:${R}:${name}`;

const CASES: Case[] = [
  // DynamoDB: the state store, and the local stack's table bootstrap.
  {
    client: 'DynamoDBClient',
    command: 'GetItemCommand',
    input: { TableName: 'berth-containers', Key: { pk: { S: 'c#acme.web.ann' } } },
    expected: [{ action: 'dynamodb:GetItem', resource: CONTAINERS }],
  },
  {
    client: 'DynamoDBClient',
    command: 'PutItemCommand',
    input: { TableName: 'berth-sessions', Item: {} },
    expected: [{ action: 'dynamodb:PutItem', resource: SESSIONS }],
  },
  {
    client: 'DynamoDBClient',
    command: 'UpdateItemCommand',
    input: { TableName: 'berth-containers', Key: { pk: { S: '~quota#acme' } } },
    expected: [{ action: 'dynamodb:UpdateItem', resource: CONTAINERS }],
  },
  {
    client: 'DynamoDBClient',
    command: 'DeleteItemCommand',
    input: { TableName: 'berth-webhooks', Key: { pk: { S: 'hook#acme' } } },
    expected: [
      { action: 'dynamodb:DeleteItem', resource: `arn:aws:dynamodb:${R}:table/berth-webhooks` },
    ],
  },
  {
    client: 'DynamoDBClient',
    command: 'QueryCommand',
    input: { TableName: 'berth-containers', IndexName: 'by-status' },
    expected: [{ action: 'dynamodb:Query', resource: `${CONTAINERS}/index/by-status` }],
  },
  {
    client: 'DynamoDBClient',
    command: 'QueryCommand',
    input: { TableName: 'berth-sessions' },
    expected: [{ action: 'dynamodb:Query', resource: SESSIONS }],
  },
  {
    client: 'DynamoDBClient',
    command: 'ScanCommand',
    input: { TableName: 'berth-containers' },
    expected: [{ action: 'dynamodb:Scan', resource: CONTAINERS }],
  },
  {
    client: 'DynamoDBClient',
    command: 'TransactWriteItemsCommand',
    input: {
      TransactItems: [
        { Put: { TableName: 'berth-containers', Item: {} } },
        { Update: { TableName: 'berth-sessions', Key: {} } },
        { ConditionCheck: { TableName: 'berth-containers', Key: {} } },
        { Delete: { TableName: 'berth-sessions', Key: {} } },
      ],
    },
    expected: [
      { action: 'dynamodb:PutItem', resource: CONTAINERS },
      { action: 'dynamodb:UpdateItem', resource: SESSIONS },
      { action: 'dynamodb:ConditionCheckItem', resource: CONTAINERS },
      { action: 'dynamodb:DeleteItem', resource: SESSIONS },
    ],
  },
  {
    client: 'DynamoDBClient',
    command: 'DescribeTableCommand',
    input: { TableName: 'berth-sessions' },
    expected: [{ action: 'dynamodb:DescribeTable', resource: SESSIONS }],
  },
  {
    client: 'DynamoDBClient',
    command: 'CreateTableCommand',
    input: { TableName: 'berth-sessions' },
    expected: [{ action: 'dynamodb:CreateTable', resource: SESSIONS }],
  },
  {
    client: 'DynamoDBClient',
    command: 'DescribeTimeToLiveCommand',
    input: { TableName: 'berth-sessions' },
    expected: [{ action: 'dynamodb:DescribeTimeToLive', resource: SESSIONS }],
  },
  {
    client: 'DynamoDBClient',
    command: 'UpdateTimeToLiveCommand',
    input: { TableName: 'berth-sessions' },
    expected: [{ action: 'dynamodb:UpdateTimeToLive', resource: SESSIONS }],
  },
  {
    client: 'DynamoDBClient',
    command: 'ListTablesCommand',
    input: {},
    expected: [{ action: 'dynamodb:ListTables', resource: '*' }],
  },
  // SQS: the shared queues, per-container queues, consumers (sqs-consumer) and subscriptions.
  {
    client: 'SQSClient',
    command: 'GetQueueUrlCommand',
    input: { QueueName: 'berth-task-events' },
    expected: [{ action: 'sqs:GetQueueUrl', resource: queue('berth-task-events') }],
  },
  {
    client: 'SQSClient',
    command: 'CreateQueueCommand',
    input: { QueueName: 'berth-c1-g1-in', tags: { ManagedBy: 'berth', ContainerId: 'c1' } },
    expected: [
      {
        action: 'sqs:CreateQueue',
        resource: queue('berth-c1-g1-in'),
        context: {
          'aws:TagKeys': ['ManagedBy', 'ContainerId'],
          'aws:RequestTag/ManagedBy': 'berth',
          'aws:RequestTag/ContainerId': 'c1',
        },
      },
      {
        action: 'sqs:TagQueue',
        resource: queue('berth-c1-g1-in'),
        context: {
          'aws:TagKeys': ['ManagedBy', 'ContainerId'],
          'aws:RequestTag/ManagedBy': 'berth',
          'aws:RequestTag/ContainerId': 'c1',
        },
      },
    ],
  },
  {
    client: 'SQSClient',
    command: 'CreateQueueCommand',
    input: { QueueName: 'berth-lifecycle-commands' },
    expected: [{ action: 'sqs:CreateQueue', resource: queue('berth-lifecycle-commands') }],
  },
  ...(
    [
      ['ReceiveMessageCommand', 'sqs:ReceiveMessage'],
      ['SendMessageCommand', 'sqs:SendMessage'],
      ['SendMessageBatchCommand', 'sqs:SendMessage'],
      ['DeleteMessageCommand', 'sqs:DeleteMessage'],
      ['DeleteMessageBatchCommand', 'sqs:DeleteMessage'],
      ['ChangeMessageVisibilityCommand', 'sqs:ChangeMessageVisibility'],
      ['ChangeMessageVisibilityBatchCommand', 'sqs:ChangeMessageVisibility'],
      ['GetQueueAttributesCommand', 'sqs:GetQueueAttributes'],
      ['SetQueueAttributesCommand', 'sqs:SetQueueAttributes'],
      ['DeleteQueueCommand', 'sqs:DeleteQueue'],
      ['ListQueueTagsCommand', 'sqs:ListQueueTags'],
    ] as const
  ).map(([command, action]): Case => ({
    client: 'SQSClient',
    command,
    input: { QueueUrl: FAUXQS_QUEUE('berth-lifecycle-commands') },
    expected: [{ action, resource: queue('berth-lifecycle-commands') }],
  })),
  // Discovery renews its subscription queue's heartbeat tag (owned-subscriptions.ts).
  {
    client: 'SQSClient',
    command: 'TagQueueCommand',
    input: {
      QueueUrl: FAUXQS_QUEUE('discovery-invalidations-vm-1'),
      Tags: { BerthHeartbeat: '2026-12-01T10:00:00.000Z' },
    },
    expected: [
      {
        action: 'sqs:TagQueue',
        resource: queue('discovery-invalidations-vm-1'),
        context: {
          'aws:TagKeys': ['BerthHeartbeat'],
          'aws:RequestTag/BerthHeartbeat': '2026-12-01T10:00:00.000Z',
        },
      },
    ],
  },
  {
    client: 'SQSClient',
    command: 'ListQueuesCommand',
    input: { QueueNamePrefix: 'berth-' },
    expected: [{ action: 'sqs:ListQueues', resource: '*' }],
  },
  // SNS: the lifecycle topic.
  {
    client: 'SNSClient',
    command: 'PublishBatchCommand',
    input: { TopicArn: FAUXQS_TOPIC, PublishBatchRequestEntries: [] },
    expected: [{ action: 'sns:Publish', resource: TOPIC }],
  },
  {
    client: 'SNSClient',
    command: 'PublishCommand',
    input: { TopicArn: FAUXQS_TOPIC, Message: '{}' },
    expected: [{ action: 'sns:Publish', resource: TOPIC }],
  },
  {
    client: 'SNSClient',
    command: 'GetTopicAttributesCommand',
    input: { TopicArn: FAUXQS_TOPIC },
    expected: [{ action: 'sns:GetTopicAttributes', resource: TOPIC }],
  },
  {
    client: 'SNSClient',
    command: 'CreateTopicCommand',
    input: { Name: 'berth-lifecycle-events' },
    expected: [{ action: 'sns:CreateTopic', resource: TOPIC }],
  },
  {
    client: 'SNSClient',
    command: 'DeleteTopicCommand',
    input: { TopicArn: FAUXQS_TOPIC },
    expected: [{ action: 'sns:DeleteTopic', resource: TOPIC }],
  },
  {
    client: 'SNSClient',
    command: 'SubscribeCommand',
    input: {
      TopicArn: FAUXQS_TOPIC,
      Protocol: 'sqs',
      Endpoint: 'arn:aws:sqs:us-east-1:000000000000:berth-discovery-sub-1',
    },
    expected: [
      {
        action: 'sns:Subscribe',
        resource: TOPIC,
        context: { 'sns:Protocol': 'sqs', 'sns:Endpoint': queue('berth-discovery-sub-1') },
      },
    ],
  },
  {
    client: 'SNSClient',
    command: 'UnsubscribeCommand',
    input: { SubscriptionArn: `${FAUXQS_TOPIC}:5f0c3e2a-0000-4000-8000-000000000000` },
    expected: [{ action: 'sns:Unsubscribe', resource: TOPIC }],
  },
  {
    client: 'SNSClient',
    command: 'ListTopicsCommand',
    input: {},
    expected: [{ action: 'sns:ListTopics', resource: '*' }],
  },
  // ECS: the runtime adapter (the local runtime answers with its own account and region).
  {
    client: 'ECSClient',
    command: 'RunTaskCommand',
    input: {
      cluster: 'berth',
      taskDefinition: 'berth-workspace',
      overrides: { containerOverrides: [{ name: 'workspace', environment: [] }] },
      tags: [
        { key: 'ContainerId', value: 'acme.web.ann' },
        { key: 'ManagedBy', value: 'berth' },
      ],
      enableECSManagedTags: true,
    },
    output: { tasks: [{ taskArn: LOCAL_TASK }] },
    expected: [
      {
        action: 'ecs:RunTask',
        resource: `arn:aws:ecs:${R}:task-definition/berth-workspace:latest`,
        context: {
          'ecs:cluster': CLUSTER,
          'aws:TagKeys': ['ContainerId', 'ManagedBy'],
          'aws:RequestTag/ContainerId': 'acme.web.ann',
          'aws:RequestTag/ManagedBy': 'berth',
        },
      },
      {
        action: 'ecs:TagResource',
        resource: `arn:aws:ecs:${R}:task/berth/0123abcd`,
        context: {
          'ecs:CreateAction': 'RunTask',
          'aws:TagKeys': ['ContainerId', 'ManagedBy'],
          'aws:RequestTag/ContainerId': 'acme.web.ann',
          'aws:RequestTag/ManagedBy': 'berth',
        },
      },
    ],
  },
  {
    client: 'ECSClient',
    command: 'RunTaskCommand',
    input: {
      cluster: `arn:aws:ecs:us-east-1:000000000000:cluster/berth`,
      taskDefinition: 'arn:aws:ecs:us-east-1:000000000000:task-definition/berth-workspace:7',
      enableExecuteCommand: false,
      overrides: {
        cpu: '2048',
        memory: '4096',
        taskRoleArn: 'arn:aws:iam::000000000000:role/other',
      },
    },
    expected: [
      {
        action: 'ecs:RunTask',
        resource: `arn:aws:ecs:${R}:task-definition/berth-workspace:7`,
        context: {
          'ecs:cluster': CLUSTER,
          'ecs:enable-execute-command': 'false',
          'ecs:task-cpu': '2048',
          'ecs:task-memory': '4096',
        },
      },
      {
        action: 'iam:PassRole',
        resource: `arn:aws:iam::${ACCOUNT}:role/other`,
        context: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' },
      },
    ],
  },
  {
    client: 'ECSClient',
    command: 'StopTaskCommand',
    input: { cluster: 'berth', task: LOCAL_TASK, reason: 'idle' },
    expected: [
      {
        action: 'ecs:StopTask',
        resource: `arn:aws:ecs:${R}:task/berth/0123abcd`,
        context: { 'ecs:cluster': CLUSTER },
      },
    ],
  },
  {
    client: 'ECSClient',
    command: 'DescribeTasksCommand',
    input: { cluster: 'berth', tasks: [LOCAL_TASK, 'ffff'], include: ['TAGS'] },
    expected: [
      {
        action: 'ecs:DescribeTasks',
        resource: `arn:aws:ecs:${R}:task/berth/0123abcd`,
        context: { 'ecs:cluster': CLUSTER },
      },
      {
        action: 'ecs:DescribeTasks',
        resource: `arn:aws:ecs:${R}:task/berth/ffff`,
        context: { 'ecs:cluster': CLUSTER },
      },
    ],
  },
  {
    client: 'ECSClient',
    command: 'ListTasksCommand',
    input: { cluster: 'berth', startedBy: 'berth', desiredStatus: 'RUNNING' },
    expected: [{ action: 'ecs:ListTasks', resource: '*', context: { 'ecs:cluster': CLUSTER } }],
  },
];

/** Allows everything: a valid request is Allowed, an invalid one is a validation error. */
const ALLOW_ALL = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }],
};

describe('SDK command → IAM authorizations', () => {
  it.each(CASES.map((c) => [`${c.client} ${c.command}`, c] as const))('%s', async (_name, c) => {
    const record = describeAwsCall(
      {
        service: 'discovery',
        clientName: c.client,
        commandName: c.command,
        input: c.input,
        output: c.output,
      },
      target,
    );
    expect(record.unmapped).toBeUndefined();
    expect(record.operation).toBe(
      `${c.client.replace(/Client$/, '').toLowerCase()}:${c.command.replace(/Command$/, '')}`,
    );
    expect(record.iam).toEqual(c.expected);
    for (const check of record.iam) {
      const result = await runSimulation(
        {
          request: {
            principal: `arn:aws:iam::${ACCOUNT}:role/berth-discovery-task`,
            action: check.action,
            resource: { resource: check.resource, accountId: ACCOUNT },
            contextVariables: check.context ?? {},
          },
          identityPolicies: [{ name: 'allow-all', policy: ALLOW_ALL }],
          serviceControlPolicies: [],
          resourceControlPolicies: [],
        },
        {},
      );
      expect(result.resultType === 'error' ? result.errors : result.overallResult).toBe('Allowed');
      const [service = '', action = ''] = check.action.split(':');
      const allowed = await allowedContextKeysForRequest(
        service,
        action,
        check.resource,
        false,
        undefined,
      );
      const serviceKeys = Object.keys(check.context ?? {})
        .filter((key) => !key.startsWith('aws:'))
        .map((key) => key.toLowerCase());
      expect(serviceKeys.filter((key) => !allowed.includes(key))).toEqual([]);
    }
  });

  it('has a case for every SDK command the source of apps/ and libs/ sends', () => {
    // The document client's commands reach the recorder as the low-level ones they become.
    const DOCUMENT_COMMANDS: Record<string, string> = {
      GetCommand: 'GetItemCommand',
      PutCommand: 'PutItemCommand',
      UpdateCommand: 'UpdateItemCommand',
      DeleteCommand: 'DeleteItemCommand',
      QueryCommand: 'QueryCommand',
      TransactWriteCommand: 'TransactWriteItemsCommand',
    };
    const root = resolve(import.meta.dirname, '../../..');
    const sources = ['apps', 'libs'].flatMap((top) =>
      readdirSync(join(root, top), { recursive: true, encoding: 'utf8' })
        .filter((file) => /(^|\/)src\/.*\.ts$/.test(file) && !file.includes('node_modules'))
        .map((file) => join(root, top, file)),
    );
    const sent = new Set(
      sources.flatMap((file) =>
        [...readFileSync(file, 'utf8').matchAll(/new ([A-Z][A-Za-z]+Command)\(/g)].map(
          ([, name = '']) => DOCUMENT_COMMANDS[name] ?? name,
        ),
      ),
    );
    const covered = new Set(CASES.map((c) => c.command));
    expect(sent.size).toBeGreaterThan(20);
    expect([...sent].filter((command) => !covered.has(command)).sort()).toEqual([]);
  });

  it('records an operation it has no mapping for as unmapped, never as an empty success', () => {
    const record = describeAwsCall(
      {
        service: 'reaper',
        clientName: 'SQSClient',
        commandName: 'AddPermissionCommand',
        input: {},
      },
      target,
    );
    expect(record).toEqual({
      service: 'reaper',
      operation: 'sqs:AddPermission',
      iam: [],
      unmapped: true,
    });
    const unknownClient = describeAwsCall(
      {
        service: 'reaper',
        clientName: 'STSClient',
        commandName: 'GetCallerIdentityCommand',
        input: {},
      },
      target,
    );
    expect(unknownClient).toMatchObject({ operation: 'sts:GetCallerIdentity', unmapped: true });
  });

  it('keeps the error name of a failed call: it was authorized all the same', () => {
    const record = describeAwsCall(
      {
        service: 'session',
        clientName: 'DynamoDBClient',
        commandName: 'PutItemCommand',
        input: { TableName: 'berth-sessions' },
        error: 'ConditionalCheckFailedException',
      },
      target,
    );
    expect(record).toMatchObject({
      error: 'ConditionalCheckFailedException',
      iam: [{ action: 'dynamodb:PutItem' }],
    });
  });
});
