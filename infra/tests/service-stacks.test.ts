import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Stack } from 'aws-cdk-lib';
import { Match } from 'aws-cdk-lib/assertions';
import type { Template } from 'aws-cdk-lib/assertions';
import {
  render,
  renderDeep,
  renderStatements,
  resourcesOf,
  ssmParameter,
  synthesize,
} from './fixture.ts';
import type { RenderedStatement, Synthesized } from './fixture.ts';

let app: Synthesized;

beforeAll(() => {
  app = synthesize();
});
afterAll(() => app.cleanup());

const ACCOUNT = '<AWS::AccountId>';
const REGION = 'us-east-1';
const table = (name: string): string => `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${name}`;
const queue = (name: string): string => `arn:aws:sqs:${REGION}:${ACCOUNT}:${name}`;
const CLUSTER = `arn:aws:ecs:${REGION}:${ACCOUNT}:cluster/berth`;
const CLUSTER_TASKS = `arn:aws:ecs:${REGION}:${ACCOUNT}:task/berth/*`;
const ON_CLUSTER = { ArnEquals: { 'ecs:cluster': CLUSTER } };
const SHARED_QUEUES = [
  'berth-lifecycle-commands',
  'berth-lifecycle-commands-dlq',
  'berth-agent-reports',
  'berth-agent-reports-dlq',
  'berth-task-events',
  'berth-task-events-dlq',
  'berth-history-events',
  'berth-history-events-dlq',
  'berth-webhook-events',
  'berth-webhook-events-dlq',
];
const CONSUMER = ['sqs:ReceiveMessage', 'sqs:ChangeMessageVisibility', 'sqs:DeleteMessage'];
const STORE = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'];

/** The CloudFormation parameter that reads an SSM parameter, by the parameter's name. */
const allow = (
  Sid: string,
  Action: string[],
  Resource: string[],
  Condition?: RenderedStatement['Condition'],
): RenderedStatement => ({
  Sid,
  Effect: 'Allow',
  Action,
  Resource,
  ...(Condition === undefined ? {} : { Condition }),
});

/** What every service does with the store, the topic and the shared queues. */
function common(template: Template, extraStoreActions: string[] = []): RenderedStatement[] {
  return [
    allow(
      'ReadWriteBerthTables',
      [...STORE, ...extraStoreActions],
      [table('berth-containers'), table('berth-sessions')],
    ),
    allow(
      'QueryBerthIndexes',
      ['dynamodb:Query'],
      [`${table('berth-containers')}/index/*`, `${table('berth-sessions')}/index/*`],
    ),
    allow(
      'PublishLifecycleEvents',
      ['sns:Publish', 'sns:GetTopicAttributes'],
      [`arn:aws:sns:${REGION}:${ACCOUNT}:berth-lifecycle-events`],
    ),
    allow(
      'EncryptLifecycleEvents',
      ['kms:GenerateDataKey', 'kms:Decrypt'],
      [ssmParameter(template, '/berth/data/events-key-arn')],
    ),
    allow(
      'FindSharedQueues',
      ['sqs:GetQueueUrl'],
      [
        'berth-lifecycle-commands',
        'berth-lifecycle-commands-dlq',
        'berth-agent-reports',
        'berth-agent-reports-dlq',
        'berth-task-events',
        'berth-task-events-dlq',
        'berth-history-events',
        'berth-history-events-dlq',
      ].map(queue),
    ),
  ];
}

const WORKSPACE_TASK_DEFINITIONS = `arn:aws:ecs:${REGION}:${ACCOUNT}:task-definition/berth-workspace:*`;
const denyRunTask = (
  Sid: string,
  Condition: RenderedStatement['Condition'],
): RenderedStatement => ({
  Sid,
  Effect: 'Deny',
  Action: ['ecs:RunTask'],
  Resource: [WORKSPACE_TASK_DEFINITIONS],
  Condition,
});
const start: RenderedStatement[] = [
  allow('StartWorkspaceTasks', ['ecs:RunTask'], [WORKSPACE_TASK_DEFINITIONS], {
    ...ON_CLUSTER,
    StringEquals: { 'aws:RequestTag/ManagedBy': 'berth' },
  }),
  denyRunTask('NeverExecIntoWorkspaceTasks', { Bool: { 'ecs:enable-execute-command': 'true' } }),
  denyRunTask('NeverResizeWorkspaceTasks', { NumericGreaterThan: { 'ecs:task-cpu': '1024' } }),
  denyRunTask('NeverResizeWorkspaceMemory', { NumericGreaterThan: { 'ecs:task-memory': '2048' } }),
  allow('TagWorkspaceTasksAtLaunch', ['ecs:TagResource'], [CLUSTER_TASKS], {
    StringEquals: { 'ecs:CreateAction': 'RunTask' },
  }),
  allow(
    'PassWorkspaceRoles',
    ['iam:PassRole'],
    [
      `arn:aws:iam::${ACCOUNT}:role/berth-workspace-task-${REGION}`,
      `arn:aws:iam::${ACCOUNT}:role/berth-workspace-exec-${REGION}`,
    ],
    { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
  ),
];
const describeTasks = allow(
  'DescribeClusterTasks',
  ['ecs:DescribeTasks'],
  [CLUSTER_TASKS],
  ON_CLUSTER,
);
const stopTasks = allow('StopClusterTasks', ['ecs:StopTask'], [CLUSTER_TASKS], ON_CLUSTER);
const listTasks = allow('ListClusterTasks', ['ecs:ListTasks'], ['*'], ON_CLUSTER);
const neverDeleteShared: RenderedStatement = {
  Sid: 'NeverDeleteSharedQueues',
  Effect: 'Deny',
  Action: ['sqs:DeleteQueue'],
  Resource: SHARED_QUEUES.map(queue),
};
const containerQueues = (sid: string, actions: string[]): RenderedStatement =>
  allow(sid, actions, [queue('berth-*')]);
const subscriptionQueues = (sid: string, actions: string[]): RenderedStatement =>
  allow(sid, actions, [queue('discovery-invalidations-*')]);
const TOPIC = `arn:aws:sns:${REGION}:${ACCOUNT}:berth-lifecycle-events`;

function taskRoleStatements(template: Template): RenderedStatement[] {
  const roles = resourcesOf(template, 'AWS::IAM::Role').filter(([id]) => id.startsWith('TaskRole'));
  expect(roles).toHaveLength(1);
  const [roleId, role] = roles[0]!;
  const policies = role['Policies'] as { PolicyDocument: { Statement: unknown[] } }[];
  expect(policies).toHaveLength(1);
  // Nothing attached on the side (a DefaultPolicy would widen the role unseen).
  const attached = resourcesOf(template, 'AWS::IAM::Policy').filter(([, props]) =>
    (props['Roles'] as unknown[]).some((ref) => render(ref) === `<${roleId}>`),
  );
  expect(attached).toEqual([]);
  return renderStatements(policies[0]!.PolicyDocument.Statement);
}

const stacks = (): [string, Stack][] => [
  ['discovery', app.stacks.discovery],
  ['preview-gateway', app.stacks.previewGateway],
  ['session', app.stacks.session],
  ['reaper', app.stacks.reaper],
  ['task-watcher', app.stacks.taskWatcher],
  ['webhooks', app.stacks.webhooks],
];

describe('task roles: the exact statements of each service', () => {
  test('discovery: starts, checks and stops containers, manages their queues, lists by index, checks readiness', () => {
    const template = app.template(app.stacks.discovery);
    expect(taskRoleStatements(template)).toEqual([
      ...common(template, ['dynamodb:DescribeTable']),
      ...start,
      describeTasks,
      listTasks,
      stopTasks,
      containerQueues('ManageContainerQueues', [
        'sqs:CreateQueue',
        'sqs:TagQueue',
        'sqs:GetQueueAttributes',
        'sqs:DeleteQueue',
      ]),
      allow('SendToContainerInputQueues', ['sqs:SendMessage'], [queue('berth-*-in')]),
      neverDeleteShared,
      allow('SubscribeOwnQueueToLifecycleEvents', ['sns:Subscribe'], [TOPIC], {
        StringEquals: { 'sns:Protocol': 'sqs' },
        ArnLike: { 'sns:Endpoint': queue('discovery-invalidations-*') },
      }),
      allow('EndOwnSubscription', ['sns:Unsubscribe'], [TOPIC]),
      subscriptionQueues('UseOwnSubscriptionQueue', [
        'sqs:CreateQueue',
        'sqs:TagQueue',
        'sqs:GetQueueAttributes',
        'sqs:SetQueueAttributes',
        'sqs:ReceiveMessage',
        'sqs:DeleteMessage',
        'sqs:DeleteQueue',
      ]),
      allow('QueryLifecycleHistory', ['dynamodb:Query'], [`${table('berth-history')}/index/*`]),
      allow(
        'ManageWebhooks',
        ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem'],
        [table('berth-webhooks')],
      ),
      allow('QueryWebhookIndexes', ['dynamodb:Query'], [`${table('berth-webhooks')}/index/*`]),
    ]);
  });

  test('webhooks: its table and its queue, nothing else (it sends where tenants point it)', () => {
    const template = app.template(app.stacks.webhooks);
    expect(taskRoleStatements(template)).toEqual([
      allow(
        'DeliverWebhooks',
        [
          'dynamodb:GetItem',
          'dynamodb:PutItem',
          'dynamodb:UpdateItem',
          'dynamodb:DeleteItem',
          'dynamodb:ConditionCheckItem',
          'dynamodb:Query',
        ],
        [table('berth-webhooks')],
      ),
      allow('QueryWebhookIndexes', ['dynamodb:Query'], [`${table('berth-webhooks')}/index/*`]),
      allow('FindWebhookEventsQueue', ['sqs:GetQueueUrl'], [queue('berth-webhook-events')]),
      allow('ConsumeWebhookEvents', CONSUMER, [queue('berth-webhook-events')]),
    ]);
  });

  test('preview gateway: reads records, starts a stopped container as a discover does, never touches container queues beyond making them', () => {
    const template = app.template(app.stacks.previewGateway);
    expect(taskRoleStatements(template)).toEqual([
      ...common(template, ['dynamodb:DescribeTable']),
      ...start,
      describeTasks,
      listTasks,
      stopTasks,
      containerQueues('ManageContainerQueues', [
        'sqs:CreateQueue',
        'sqs:TagQueue',
        'sqs:DeleteQueue',
      ]),
      neverDeleteShared,
    ]);
  });

  test('session: consumes commands and agent reports, starts containers, never stops a task', () => {
    const template = app.template(app.stacks.session);
    expect(taskRoleStatements(template)).toEqual([
      ...common(template),
      allow('ConsumeLifecycleCommands', CONSUMER, [queue('berth-lifecycle-commands')]),
      allow('ConsumeAgentReports', CONSUMER, [queue('berth-agent-reports')]),
      ...start,
      describeTasks,
      listTasks,
      containerQueues('ManageContainerQueues', [
        'sqs:CreateQueue',
        'sqs:TagQueue',
        'sqs:SendMessage',
        'sqs:DeleteQueue',
      ]),
      neverDeleteShared,
    ]);
  });

  test('reaper: sweeps on its timer, stops and reconciles, never starts', () => {
    const template = app.template(app.stacks.reaper);
    expect(taskRoleStatements(template)).toEqual([
      ...common(template),
      describeTasks,
      listTasks,
      stopTasks,
      containerQueues('InspectAndRetireContainerQueues', [
        'sqs:GetQueueAttributes',
        'sqs:DeleteQueue',
      ]),
      neverDeleteShared,
      allow('FindSubscriptionQueues', ['sqs:ListQueues'], ['*']),
      subscriptionQueues('RetireAbandonedSubscriptionQueues', [
        'sqs:ListQueueTags',
        'sqs:DeleteQueue',
      ]),
      allow('EndAbandonedSubscriptions', ['sns:Unsubscribe'], [TOPIC]),
    ]);
  });

  test('task watcher: consumes task events, reconciles, stops orphans, never starts', () => {
    const template = app.template(app.stacks.taskWatcher);
    expect(taskRoleStatements(template)).toEqual([
      ...common(template),
      allow('ConsumeTaskEvents', CONSUMER, [queue('berth-task-events')]),
      allow('ConsumeHistoryEvents', CONSUMER, [queue('berth-history-events')]),
      allow(
        'KeepLifecycleHistory',
        ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
        [table('berth-history')],
      ),
      describeTasks,
      listTasks,
      stopTasks,
      containerQueues('RetireContainerQueues', ['sqs:DeleteQueue']),
      neverDeleteShared,
    ]);
  });

  test('the rules of issue 6 hold whatever the statements say', () => {
    const actionsOf = (stack: Stack): Set<string> =>
      new Set(
        taskRoleStatements(app.template(stack))
          .filter((s) => s.Effect === 'Allow')
          .flatMap((s) => s.Action),
      );
    expect(actionsOf(app.stacks.session).has('ecs:StopTask')).toBe(false);
    for (const stack of [app.stacks.taskWatcher, app.stacks.reaper]) {
      expect(actionsOf(stack).has('ecs:RunTask')).toBe(false);
      expect(actionsOf(stack).has('iam:PassRole')).toBe(false);
    }
    expect(actionsOf(app.stacks.discovery).has('ecs:RunTask')).toBe(true);
    expect(actionsOf(app.stacks.discovery).has('sqs:CreateQueue')).toBe(true);
    expect(actionsOf(app.stacks.reaper).has('ecs:StopTask')).toBe(true);

    for (const [, stack] of stacks()) {
      for (const statement of taskRoleStatements(app.template(stack))) {
        for (const action of statement.Action) expect(action).toMatch(/^[a-z0-9]+:[A-Za-z]+$/);
        if (statement.Resource.includes('*')) {
          expect(
            statement.Action.every((a) => ['ecs:ListTasks', 'sqs:ListQueues'].includes(a)),
          ).toBe(true);
        }
        if (
          statement.Effect === 'Allow' &&
          statement.Action.some((a) => /^ecs:(RunTask|StopTask|DescribeTasks|ListTasks)$/.test(a))
        ) {
          expect(statement.Condition).toMatchObject(ON_CLUSTER);
        }
        if (statement.Action.includes('iam:PassRole')) {
          expect(statement.Condition).toEqual({
            StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' },
          });
        }
      }
    }
  });

  test('task roles trust ECS tasks of this account and region only', () => {
    for (const [, stack] of stacks()) {
      const [, role] = resourcesOf(app.template(stack), 'AWS::IAM::Role').find(([id]) =>
        id.startsWith('TaskRole'),
      )!;
      expect(
        renderStatements((role['AssumeRolePolicyDocument'] as { Statement: unknown[] }).Statement),
      ).toEqual([
        {
          Sid: undefined,
          Effect: 'Allow',
          Action: ['sts:AssumeRole'],
          Resource: [],
          Condition: {
            ArnLike: { 'aws:SourceArn': `arn:aws:ecs:${REGION}:${ACCOUNT}:*` },
            StringEquals: { 'aws:SourceAccount': ACCOUNT },
          },
        },
      ]);
    }
  });
});

describe('services', () => {
  test.each([
    ['discovery', 2],
    ['preview-gateway', 2],
    ['session', undefined],
    ['reaper', 1],
    ['task-watcher', undefined],
    ['webhooks', 1],
  ] as const)(
    '%s: one Fargate service in the private subnets, its image, its logs',
    (service, desiredCount) => {
      const stack = stacks().find(([name]) => name === service)![1];
      const template = app.template(stack);
      template.resourceCountIs('AWS::ECS::Service', 1);
      const [, ecsService] = resourcesOf(template, 'AWS::ECS::Service')[0]!;
      expect(renderDeep(ecsService)).toMatchObject({
        ServiceName: `berth-${service}`,
        Cluster: 'berth',
        LaunchType: 'FARGATE',
        NetworkConfiguration: {
          AwsvpcConfiguration: {
            AssignPublicIp: 'DISABLED',
            Subnets: [
              ssmParameter(template, '/berth/platform/private-subnet-1-id'),
              ssmParameter(template, '/berth/platform/private-subnet-2-id'),
            ],
          },
        },
        DeploymentConfiguration: {
          DeploymentCircuitBreaker: { Enable: true, Rollback: true },
          MinimumHealthyPercent: 100,
          MaximumPercent: 200,
        },
      });
      // Scaled services leave the count to Application Auto Scaling after the first deploy.
      expect(ecsService['DesiredCount']).toBe(desiredCount);

      const [, taskDefinition] = resourcesOf(template, 'AWS::ECS::TaskDefinition')[0]!;
      const container = renderDeep(
        (taskDefinition['ContainerDefinitions'] as unknown[])[0],
      ) as Record<string, unknown>;
      expect(taskDefinition['Family']).toBe(`berth-${service}`);
      expect(container['Name']).toBe(service);
      // The image is the asset built from the one Dockerfile for this app, platform pinned;
      // the command that runs it is in the task definition, not only in the image.
      expect(container['Command']).toEqual(['node', `apps/${service}/src/main.ts`]);
      expect(container['WorkingDirectory']).toBe('/app');
      const assets = JSON.parse(
        readFileSync(join(app.outdir, `${stack.artifactId}.assets.json`), 'utf8'),
      ) as {
        dockerImages: Record<
          string,
          {
            source: {
              directory: string;
              dockerFile: string;
              platform: string;
              dockerBuildArgs: Record<string, string>;
              dockerBuildTarget: string;
            };
          }
        >;
      };
      const images = Object.entries(assets.dockerImages);
      expect(images).toHaveLength(1);
      const [hash, image] = images[0]!;
      expect(image.source).toMatchObject({
        dockerFile: 'Dockerfile',
        dockerBuildArgs: { APP: service },
        dockerBuildTarget: 'service',
        platform: 'linux/amd64',
      });
      expect(JSON.stringify(container['Image'])).toContain(
        `container-assets-\${AWS::AccountId}-us-east-1:${hash}`,
      );
      const environment = Object.fromEntries(
        (container['Environment'] as { Name: string; Value: string }[]).map((entry) => [
          entry.Name,
          entry.Value,
        ]),
      );
      expect(environment).toMatchObject({
        BERTH_RUNTIME: 'ecs',
        BERTH_EMF: 'true',
        BERTH_ECS_CLUSTER: 'berth',
        // The revision the platform's deploy registered, so old pool members are drained.
        BERTH_ECS_TASK_DEFINITION: ssmParameter(
          template,
          '/berth/platform/workspace-task-definition-arn',
        ),
        BERTH_ECS_CONTAINER_NAME: 'workspace',
        BERTH_ECS_SUBNETS: `${ssmParameter(template, '/berth/platform/private-subnet-1-id')},${ssmParameter(template, '/berth/platform/private-subnet-2-id')}`,
        BERTH_ECS_SECURITY_GROUPS: ssmParameter(
          template,
          '/berth/platform/workspace-security-group-id',
        ),
        BERTH_ECS_ASSIGN_PUBLIC_IP: 'false',
        CONTAINER_TABLE: 'berth-containers',
        SESSION_TABLE: 'berth-sessions',
        BERTH_IDLE_TIMEOUT: '20m',
        BERTH_SHUTDOWN_GRACE: '1m',
        BERTH_SWEEP_INTERVAL: '10m',
        BERTH_MAX_SESSIONS: '10',
        BERTH_LIFECYCLE_TOPIC_ARN: `arn:aws:sns:${REGION}:${ACCOUNT}:berth-lifecycle-events`,
      });
      expect(Object.keys(environment).some((name) => /SECRET|PASSWORD|TOKEN/.test(name))).toBe(
        false,
      );
      template.hasResourceProperties('AWS::Logs::LogGroup', {
        LogGroupName: `/berth/${service}`,
        RetentionInDays: 30,
      });
    },
  );

  test.each([
    ['session', 'berth-lifecycle-commands', 1, 4],
    ['task-watcher', 'berth-task-events', 1, 3],
  ] as const)('%s scales on the depth of %s', (service, queueName, min, max) => {
    const stack = stacks().find(([name]) => name === service)![1];
    const template = app.template(stack);
    template.hasResourceProperties('AWS::ApplicationAutoScaling::ScalableTarget', {
      MinCapacity: min,
      MaxCapacity: max,
      ScalableDimension: 'ecs:service:DesiredCount',
    });
    template.resourceCountIs('AWS::ApplicationAutoScaling::ScalingPolicy', 2);
    const alarms = resourcesOf(template, 'AWS::CloudWatch::Alarm').map(([, props]) => props);
    expect(alarms).toHaveLength(2);
    for (const alarm of alarms) {
      expect(alarm).toMatchObject({
        Namespace: 'AWS/SQS',
        MetricName: 'ApproximateNumberOfMessagesVisible',
        Dimensions: [{ Name: 'QueueName', Value: queueName }],
      });
    }
    expect(alarms.map((alarm) => alarm['Threshold']).sort((a, b) => Number(a) - Number(b))).toEqual(
      [0, 100],
    );
  });

  test('reaper does not scale', () => {
    app
      .template(app.stacks.reaper)
      .resourceCountIs('AWS::ApplicationAutoScaling::ScalableTarget', 0);
  });
});

describe('discovery behind its load balancer', () => {
  test('an internal ALB by default: HTTP from the VPC, liveness check on /healthz at 8080, access logs', () => {
    const template = app.template(app.stacks.discovery);
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 1);
    const [, alb] = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer')[0]!;
    const bucketId = Object.keys(template.findResources('AWS::S3::Bucket'))[0]!;
    expect(renderDeep(alb)).toMatchObject({
      Scheme: 'internal',
      Subnets: [
        ssmParameter(template, '/berth/platform/private-subnet-1-id'),
        ssmParameter(template, '/berth/platform/private-subnet-2-id'),
      ],
      LoadBalancerAttributes: expect.arrayContaining([
        { Key: 'routing.http.drop_invalid_header_fields.enabled', Value: 'true' },
        { Key: 'access_logs.s3.enabled', Value: 'true' },
        { Key: 'access_logs.s3.bucket', Value: `<${bucketId}>` },
      ]),
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: 8080,
      Protocol: 'HTTP',
      TargetType: 'ip',
      // Liveness of the process: a DynamoDB or SNS blip (/readyz) must not make ECS replace
      // every discovery task at once.
      HealthCheckPath: '/healthz',
      Matcher: { HttpCode: '200' },
    });
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 1);
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
      Port: 80,
      Protocol: 'HTTP',
    });
    // Listening on every interface of the task, where the target group reaches it.
    template.hasResourceProperties('AWS::ECS::TaskDefinition', {
      ContainerDefinitions: [
        Match.objectLike({
          Environment: Match.arrayWith([
            { Name: 'BERTH_HTTP_PORT', Value: '8080' },
            { Name: 'BERTH_HTTP_HOST', Value: '0.0.0.0' },
            // The console links each generation to its task's stream in the workspace log group.
            {
              Name: 'BERTH_CONSOLE_LOG_URL',
              Value:
                'https://{region}.console.aws.amazon.com/cloudwatch/home?region={region}#logsV2:log-groups/log-group/$252Fberth$252Fworkspace/log-events/workspace$252Fworkspace$252F{taskId}',
            },
          ]),
        }),
      ],
    });
    template.hasResourceProperties('AWS::ECS::Service', {
      HealthCheckGracePeriodSeconds: 60,
      LoadBalancers: [Match.objectLike({ ContainerName: 'discovery', ContainerPort: 8080 })],
    });
    const [albSgId, albSg] = resourcesOf(template, 'AWS::EC2::SecurityGroup').find(
      ([, props]) => props['GroupDescription'] === 'berth discovery load balancer',
    )!;
    expect(albSg['SecurityGroupIngress']).toEqual([
      expect.objectContaining({
        CidrIp: '10.40.0.0/16',
        FromPort: 80,
        ToPort: 80,
        IpProtocol: 'tcp',
      }),
    ]);
    const ingress = resourcesOf(template, 'AWS::EC2::SecurityGroupIngress').map(([, props]) =>
      renderDeep(props),
    );
    expect(ingress).toEqual([
      expect.objectContaining({
        FromPort: 8080,
        ToPort: 8080,
        SourceSecurityGroupId: `<${albSgId}.GroupId>`,
      }),
    ]);
  });

  test('the access-log bucket is private, encrypted, TLS only, expiring', () => {
    const template = app.template(app.stacks.discovery);
    template.hasResourceProperties('AWS::S3::Bucket', {
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [
          { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
        ],
      },
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      LifecycleConfiguration: {
        Rules: [Match.objectLike({ ExpirationInDays: 30, Status: 'Enabled' })],
      },
    });
    const [, policy] = resourcesOf(template, 'AWS::S3::BucketPolicy')[0]!;
    expect(
      renderStatements((policy['PolicyDocument'] as { Statement: unknown[] }).Statement),
    ).toContainEqual(
      expect.objectContaining({
        Effect: 'Deny',
        Action: ['s3:*'],
        Condition: { Bool: { 'aws:SecureTransport': 'false' } },
      }),
    );
  });

  test('BERTH_AUTH_SECRET comes from Secrets Manager through the execution role', () => {
    const template = app.template(app.stacks.discovery);
    const secretArn = ssmParameter(template, '/berth/data/auth-secret-arn');
    const [, taskDefinition] = resourcesOf(template, 'AWS::ECS::TaskDefinition')[0]!;
    const container = renderDeep(
      (taskDefinition['ContainerDefinitions'] as unknown[])[0],
    ) as Record<string, unknown>;
    expect(container['Secrets']).toEqual([{ Name: 'BERTH_AUTH_SECRET', ValueFrom: secretArn }]);
    const executionPolicy = resourcesOf(template, 'AWS::IAM::Policy').find(([id]) =>
      id.startsWith('TaskDefinitionExecutionRole'),
    )!;
    expect(
      renderStatements(
        (executionPolicy[1]['PolicyDocument'] as { Statement: unknown[] }).Statement,
      ),
    ).toContainEqual(
      expect.objectContaining({
        Effect: 'Allow',
        Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
        Resource: [secretArn],
      }),
    );
  });

  test('with a certificate it may face the internet: HTTPS with a redirect from 80, public subnets', () => {
    const certificateArn =
      'arn:aws:acm:us-east-1:111122223333:certificate/00000000-0000-0000-0000-000000000000';
    const open = synthesize({
      discovery: { certificateArn, internetFacing: true, ingressCidrs: ['0.0.0.0/0'] },
    });
    try {
      const template = open.template(open.stacks.discovery);
      template.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
        Scheme: 'internet-facing',
        Subnets: [
          { Ref: ssmParameter(template, '/berth/platform/public-subnet-1-id').slice(1, -1) },
          { Ref: ssmParameter(template, '/berth/platform/public-subnet-2-id').slice(1, -1) },
        ],
      });
      template.resourceCountIs('AWS::ElasticLoadBalancingV2::Listener', 2);
      template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
        Port: 443,
        Protocol: 'HTTPS',
        Certificates: [{ CertificateArn: certificateArn }],
        SslPolicy: Match.stringLikeRegexp('^ELBSecurityPolicy-TLS13'),
      });
      template.hasResourceProperties('AWS::ElasticLoadBalancingV2::Listener', {
        Port: 80,
        DefaultActions: [
          Match.objectLike({
            Type: 'redirect',
            RedirectConfig: Match.objectLike({ Protocol: 'HTTPS', Port: '443' }),
          }),
        ],
      });
    } finally {
      open.cleanup();
    }
  });
});

describe('the preview gateway behind its own load balancer (issue 19)', () => {
  test('an ALB of its own to tasks in the private subnets on 8081, its URL published for discovery', () => {
    const template = app.template(app.stacks.previewGateway);
    template.resourceCountIs('AWS::ElasticLoadBalancingV2::LoadBalancer', 1);
    const [, alb] = resourcesOf(template, 'AWS::ElasticLoadBalancingV2::LoadBalancer')[0]!;
    expect(renderDeep(alb)).toMatchObject({
      Name: 'berth-preview-gateway',
      Scheme: 'internal',
      Subnets: [
        ssmParameter(template, '/berth/platform/private-subnet-1-id'),
        ssmParameter(template, '/berth/platform/private-subnet-2-id'),
      ],
    });
    template.hasResourceProperties('AWS::ElasticLoadBalancingV2::TargetGroup', {
      Port: 8081,
      TargetType: 'ip',
      HealthCheckPath: '/healthz',
    });
    template.hasResourceProperties('AWS::ECS::Service', {
      LoadBalancers: [Match.objectLike({ ContainerName: 'preview-gateway', ContainerPort: 8081 })],
      NetworkConfiguration: {
        AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }),
      },
    });
    const [, taskDefinition] = resourcesOf(template, 'AWS::ECS::TaskDefinition')[0]!;
    const environment = (
      renderDeep(taskDefinition) as {
        ContainerDefinitions: { Environment: { Name: string; Value: string }[] }[];
      }
    ).ContainerDefinitions[0]!.Environment;
    expect(environment).toEqual(
      expect.arrayContaining([
        { Name: 'BERTH_PREVIEW_PORT', Value: '8081' },
        { Name: 'BERTH_HTTP_HOST', Value: '0.0.0.0' },
      ]),
    );
    expect(environment.find((entry) => entry.Name === 'BERTH_PREVIEW_URL')?.Value).toMatch(
      /^http:\/\/<LoadBalancer[^>]*\.DNSName>$/,
    );
    template.hasResourceProperties('AWS::SSM::Parameter', {
      Name: '/berth/preview-gateway/url',
    });
    // Discovery writes preview URLs with it.
    expect(
      (
        renderDeep(
          resourcesOf(app.template(app.stacks.discovery), 'AWS::ECS::TaskDefinition')[0]![1],
        ) as { ContainerDefinitions: { Environment: { Name: string; Value: string }[] }[] }
      ).ContainerDefinitions[0]!.Environment.find((entry) => entry.Name === 'BERTH_PREVIEW_URL')
        ?.Value,
    ).toBe(ssmParameter(app.template(app.stacks.discovery), '/berth/preview-gateway/url'));
  });

  test('workspace tasks accept the dev server port from the gateway’s security group only', () => {
    const template = app.template(app.stacks.previewGateway);
    const [gatewaySgId] = resourcesOf(template, 'AWS::EC2::SecurityGroup').find(
      ([, props]) => props['GroupDescription'] === 'berth preview-gateway tasks',
    )!;
    const ingress = resourcesOf(template, 'AWS::EC2::SecurityGroupIngress').map(([, props]) =>
      renderDeep(props),
    );
    const toWorkspaces = ingress.filter(
      (rule) =>
        (rule as { GroupId?: string }).GroupId ===
        ssmParameter(template, '/berth/platform/workspace-security-group-id'),
    );
    expect(toWorkspaces).toEqual([
      expect.objectContaining({
        IpProtocol: 'tcp',
        FromPort: 3000,
        ToPort: 3000,
        SourceSecurityGroupId: `<${gatewaySgId}.GroupId>`,
      }),
    ]);
    // Nothing else opens the workspace security group: the platform stack gives it no ingress.
    const platform = app.template(app.stacks.platform);
    const [, workspaceSg] = resourcesOf(platform, 'AWS::EC2::SecurityGroup').find(
      ([, props]) => props['GroupName'] === 'berth-workspace',
    )!;
    expect(workspaceSg['SecurityGroupIngress']).toBeUndefined();
  });
});

describe('task roles with the warm pool on', () => {
  let pooled: Synthesized;

  beforeAll(() => {
    pooled = synthesize({ pool: { size: 2 } });
  });
  afterAll(() => pooled.cleanup());

  const statementsOf = (stack: Stack): RenderedStatement[] =>
    taskRoleStatements(pooled.template(stack));
  const sids = (stack: Stack): (string | undefined)[] => statementsOf(stack).map((s) => s.Sid);

  test('the reaper starts members (bounded as every start) and makes their control queues', () => {
    const reaper = statementsOf(pooled.stacks.reaper);
    const start = reaper.find((s) => s.Sid === 'StartWorkspaceTasks');
    expect(start?.Action).toEqual(['ecs:RunTask']);
    expect(start?.Condition).toMatchObject({
      StringEquals: { 'aws:RequestTag/ManagedBy': 'berth' },
    });
    for (const sid of [
      'NeverExecIntoWorkspaceTasks',
      'NeverResizeWorkspaceTasks',
      'ManagePoolControlQueues',
    ])
      expect(sids(pooled.stacks.reaper)).toContain(sid);
    expect(reaper.find((s) => s.Sid === 'ManagePoolControlQueues')).toMatchObject({
      Action: ['sqs:CreateQueue', 'sqs:TagQueue'],
      Resource: [queue('berth-pool-*')],
    });
  });

  test('discovery may send a claimed member its identity; without the pool nothing is added', () => {
    // Only the members' control queues: discovery writes to no container's queues.
    expect(
      statementsOf(pooled.stacks.discovery).find((s) => s.Sid === 'SendPoolIdentities'),
    ).toMatchObject({ Action: ['sqs:SendMessage'], Resource: [queue('berth-pool-*')] });
    expect(sids(app.stacks.discovery)).not.toContain('SendPoolIdentities');
    expect(sids(app.stacks.reaper)).not.toContain('StartWorkspaceTasks');
  });
});
