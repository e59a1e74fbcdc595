import type { Template } from 'aws-cdk-lib/assertions';
import { render, renderDeep, renderStatements, resourcesOf, synthesize } from './fixture.ts';
import type { Synthesized } from './fixture.ts';

let app: Synthesized;
let template: Template;

beforeAll(() => {
  app = synthesize();
  template = app.template(app.stacks.data);
});
afterAll(() => app.cleanup());

const ACCOUNT = '<AWS::AccountId>';

function logicalIdOf(type: string, name: string, nameProperty: string): string {
  const found = resourcesOf(template, type).find(([, props]) => props[nameProperty] === name);
  if (found === undefined) throw new Error(`no ${type} named ${name}`);
  return found[0];
}

describe('BerthDataStack', () => {
  test('holds exactly the stateful resources', () => {
    template.resourceCountIs('AWS::DynamoDB::Table', 4);
    template.resourceCountIs('AWS::SQS::Queue', 10);
    // The history's queue and the webhook service's follow the topic.
    template.resourceCountIs('AWS::SNS::Subscription', 2);
    template.resourceCountIs('AWS::SNS::Topic', 1);
    template.resourceCountIs('AWS::KMS::Key', 1);
    template.resourceCountIs('AWS::SecretsManager::Secret', 2);
    template.resourceCountIs('AWS::Events::Rule', 1);
    // Stateful resources only: no compute, no roles.
    template.resourceCountIs('AWS::IAM::Role', 0);
    template.resourceCountIs('AWS::ECS::Service', 0);
    template.resourceCountIs('AWS::Lambda::Function', 0);
  });

  test.each([
    [
      'berth-containers',
      'containerId',
      [
        ['clientId-index', 'clientId', 'containerId'],
        ['userId-index', 'userId', 'containerId'],
        ['clientProject-index', 'clientProject', 'userId'],
        ['status-index', 'status', 'containerId'],
        ['idle-index', 'idleKey', 'idleSince'],
        ['due-index', 'dueKey', 'dueAt'],
      ],
    ],
    [
      'berth-sessions',
      'sessionId',
      [
        ['container-index', 'containerId', 'sessionId'],
        ['thread-index', 'threadId', 'sessionId'],
        ['active-index', 'activeKey', 'lastActivityAt'],
      ],
    ],
    [
      'berth-history',
      'eventId',
      [
        ['container-index', 'containerId', 'at'],
        ['session-index', 'sessionId', 'at'],
        ['client-index', 'clientId', 'at'],
        ['clientUser-index', 'clientUser', 'at'],
        ['day-index', 'day', 'at'],
        ['usage-index', 'usageDay', 'usageKey'],
      ],
    ],
  ])(
    'table %s: key, indexes, TTL, PITR, deletion protection, retained',
    (tableName, key, indexes) => {
      const id = logicalIdOf('AWS::DynamoDB::Table', tableName, 'TableName');
      const resource = template.toJSON()['Resources'][id] as Record<string, unknown>;
      expect(resource['DeletionPolicy']).toBe('Retain');
      expect(resource['UpdateReplacePolicy']).toBe('Retain');
      const props = resource['Properties'] as Record<string, unknown>;
      expect(props['KeySchema']).toEqual([{ AttributeName: key, KeyType: 'HASH' }]);
      expect(props['BillingMode']).toBe('PAY_PER_REQUEST');
      expect(props['TimeToLiveSpecification']).toEqual({
        AttributeName: 'expiresAt',
        Enabled: true,
      });
      expect(props['PointInTimeRecoverySpecification']).toEqual({
        PointInTimeRecoveryEnabled: true,
      });
      expect(props['DeletionProtectionEnabled']).toBe(true);
      expect(props['GlobalSecondaryIndexes']).toEqual(
        indexes.map(([indexName, partition, sort]) => ({
          IndexName: indexName,
          KeySchema: [
            { AttributeName: partition, KeyType: 'HASH' },
            { AttributeName: sort, KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        })),
      );
      const attributes = new Set([
        key,
        ...indexes.flatMap(([, partition, sort]) => [partition, sort]),
      ]);
      expect(props['AttributeDefinitions']).toEqual(
        expect.arrayContaining(
          [...attributes].map((name) => ({ AttributeName: name, AttributeType: 'S' })),
        ),
      );
      expect((props['AttributeDefinitions'] as unknown[]).length).toBe(attributes.size);
    },
  );

  test.each([
    ['berth-lifecycle-commands', 'berth-lifecycle-commands-dlq'],
    ['berth-agent-reports', 'berth-agent-reports-dlq'],
    ['berth-task-events', 'berth-task-events-dlq'],
    ['berth-history-events', 'berth-history-events-dlq'],
    ['berth-webhook-events', 'berth-webhook-events-dlq'],
  ])(
    'queue %s: dead letters to %s after 5 receives, encrypted, TLS only, retained',
    (queueName, dlqName) => {
      const queueId = logicalIdOf('AWS::SQS::Queue', queueName, 'QueueName');
      const dlqId = logicalIdOf('AWS::SQS::Queue', dlqName, 'QueueName');
      const resources = template.toJSON()['Resources'] as Record<string, Record<string, unknown>>;
      for (const id of [queueId, dlqId]) {
        expect(resources[id]!['DeletionPolicy']).toBe('Retain');
        expect(
          (resources[id]!['Properties'] as Record<string, unknown>)['SqsManagedSseEnabled'],
        ).toBe(true);
        const policies = resourcesOf(template, 'AWS::SQS::QueuePolicy').filter(([, props]) =>
          (props['Queues'] as unknown[]).some((queue) => render(queue) === `<${id}>`),
        );
        expect(policies).toHaveLength(1);
        const statements = renderStatements(
          (policies[0]![1]['PolicyDocument'] as { Statement: unknown[] }).Statement,
        );
        expect(statements).toContainEqual(
          expect.objectContaining({
            Effect: 'Deny',
            Action: ['sqs:*'],
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          }),
        );
      }
      const props = resources[queueId]!['Properties'] as Record<string, unknown>;
      expect(renderDeep(props['RedrivePolicy'])).toEqual({
        deadLetterTargetArn: `<${dlqId}.Arn>`,
        maxReceiveCount: 5,
      });
      expect(
        (resources[dlqId]!['Properties'] as Record<string, unknown>)['RedrivePolicy'],
      ).toBeUndefined();
      expect(
        (resources[dlqId]!['Properties'] as Record<string, unknown>)['MessageRetentionPeriod'],
      ).toBe(14 * 24 * 3600);
    },
  );

  test('no sweep queue and no sweep schedule: the reaper sweeps on its own timer', () => {
    const queueNames = resourcesOf(template, 'AWS::SQS::Queue').map(
      ([, props]) => props['QueueName'],
    );
    expect(queueNames.sort()).toEqual([
      'berth-agent-reports',
      'berth-agent-reports-dlq',
      'berth-history-events',
      'berth-history-events-dlq',
      'berth-lifecycle-commands',
      'berth-lifecycle-commands-dlq',
      'berth-task-events',
      'berth-task-events-dlq',
      'berth-webhook-events',
      'berth-webhook-events-dlq',
    ]);
    const rules = resourcesOf(template, 'AWS::Events::Rule');
    expect(rules.map(([, props]) => props['Name'])).toEqual(['berth-task-state-changes']);
  });

  test('lifecycle topic: encrypted with a rotating customer key, TLS-only policy', () => {
    const keyId = resourcesOf(template, 'AWS::KMS::Key')[0]![0];
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
    template.hasResourceProperties('AWS::SNS::Topic', {
      TopicName: 'berth-lifecycle-events',
      KmsMasterKeyId: { 'Fn::GetAtt': [keyId, 'Arn'] },
    });
    const [, policy] = resourcesOf(template, 'AWS::SNS::TopicPolicy')[0]!;
    expect(
      renderStatements((policy['PolicyDocument'] as { Statement: unknown[] }).Statement),
    ).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Action: ['sns:Publish'],
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
  });

  test.each(['berth-history-events', 'berth-webhook-events'])(
    'the lifecycle topic delivers raw to %s (its only subscriptions are these two)',
    (queueName) => {
      const queueId = logicalIdOf('AWS::SQS::Queue', queueName, 'QueueName');
      const subscriptions = resourcesOf(template, 'AWS::SNS::Subscription');
      expect(subscriptions).toHaveLength(2);
      const [, subscription] = subscriptions.find(
        ([, props]) => render(props['Endpoint']) === `<${queueId}.Arn>`,
      )!;
      expect(subscription['Protocol']).toBe('sqs');
      expect(subscription['RawMessageDelivery']).toBe(true);
      expect(render(subscription['Endpoint'])).toBe(`<${queueId}.Arn>`);
      const policies = resourcesOf(template, 'AWS::SQS::QueuePolicy').filter(([, props]) =>
        (props['Queues'] as unknown[]).some((queue) => render(queue) === `<${queueId}>`),
      );
      expect(
        renderStatements((policies[0]![1]['PolicyDocument'] as { Statement: unknown[] }).Statement),
      ).toContainEqual(
        expect.objectContaining({
          Effect: 'Allow',
          Action: ['sqs:SendMessage'],
        }),
      );
    },
  );

  test('ECS task state changes of the berth cluster only go to berth-task-events', () => {
    const queueId = logicalIdOf('AWS::SQS::Queue', 'berth-task-events', 'QueueName');
    const [, rule] = resourcesOf(template, 'AWS::Events::Rule').find(
      ([, props]) => props['Name'] === 'berth-task-state-changes',
    )!;
    expect(renderDeep(rule['EventPattern'])).toEqual({
      source: ['aws.ecs'],
      'detail-type': ['ECS Task State Change'],
      detail: { clusterArn: [`arn:aws:ecs:us-east-1:${ACCOUNT}:cluster/berth`] },
    });
    expect(renderDeep(rule['Targets'])).toEqual([{ Arn: `<${queueId}.Arn>`, Id: 'Target0' }]);
    // EventBridge may send to the queue, and only for this rule.
    const [, queuePolicy] = resourcesOf(template, 'AWS::SQS::QueuePolicy').find(([, props]) =>
      (props['Queues'] as unknown[]).some((queue) => render(queue) === `<${queueId}>`),
    )!;
    const ruleId = logicalIdOf('AWS::Events::Rule', 'berth-task-state-changes', 'Name');
    expect(
      renderStatements((queuePolicy['PolicyDocument'] as { Statement: unknown[] }).Statement),
    ).toContainEqual(
      expect.objectContaining({
        Effect: 'Allow',
        Action: ['sqs:GetQueueAttributes', 'sqs:GetQueueUrl', 'sqs:SendMessage'],
        Resource: [`<${queueId}.Arn>`],
        Condition: { ArnEquals: { 'aws:SourceArn': `<${ruleId}.Arn>` } },
      }),
    );
  });

  test('the auth secret is generated, retained and never in the template', () => {
    const secret = Object.values(template.findResources('AWS::SecretsManager::Secret')).find(
      (resource) =>
        (resource as { Properties: { Name: string } }).Properties.Name === 'berth/auth-secret',
    ) as Record<string, unknown>;
    expect(secret['DeletionPolicy']).toBe('Retain');
    const props = secret['Properties'] as Record<string, unknown>;
    expect(props['Name']).toBe('berth/auth-secret');
    expect(props['SecretString']).toBeUndefined();
    expect(props['GenerateSecretString']).toEqual({ ExcludePunctuation: true, PasswordLength: 64 });
  });

  test('the git credentials: one secret per deployment, a username and a placeholder password, retained', () => {
    const secret = Object.values(template.findResources('AWS::SecretsManager::Secret')).find(
      (resource) =>
        (resource as { Properties: { Name: string } }).Properties.Name === 'berth/git-credentials',
    ) as Record<string, unknown>;
    expect(secret['DeletionPolicy']).toBe('Retain');
    const props = secret['Properties'] as Record<string, unknown>;
    expect(props['SecretString']).toBeUndefined();
    expect(props['GenerateSecretString']).toEqual({
      SecretStringTemplate: '{"username":"berth"}',
      GenerateStringKey: 'password',
      PasswordLength: 40,
      ExcludePunctuation: true,
    });
  });

  test('publishes what other stacks need in SSM, under /berth/data/', () => {
    const names = resourcesOf(template, 'AWS::SSM::Parameter').map(([, props]) => props['Name']);
    expect(names).toEqual(
      expect.arrayContaining([
        '/berth/data/containers-table-arn',
        '/berth/data/sessions-table-arn',
        '/berth/data/lifecycle-commands-queue-url',
        '/berth/data/task-events-queue-url',
        '/berth/data/lifecycle-topic-arn',
        '/berth/data/events-key-arn',
        '/berth/data/auth-secret-arn',
        '/berth/data/git-credentials-secret-arn',
      ]),
    );
    expect(names.every((name) => typeof name === 'string' && name.startsWith('/berth/data/'))).toBe(
      true,
    );
  });
});
