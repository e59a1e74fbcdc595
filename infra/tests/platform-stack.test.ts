import { Match } from 'aws-cdk-lib/assertions';
import type { Template } from 'aws-cdk-lib/assertions';
import { renderDeep, renderStatements, resourcesOf, ssmParameter, synthesize } from './fixture.ts';
import type { Synthesized } from './fixture.ts';

let app: Synthesized;
let template: Template;

beforeAll(() => {
  app = synthesize();
  template = app.template(app.stacks.platform);
});
afterAll(() => app.cleanup());

const ACCOUNT = '<AWS::AccountId>';
const queueArn = (name: string): string => `arn:aws:sqs:us-east-1:${ACCOUNT}:${name}`;

function onlyResource(type: string): [string, Record<string, unknown>] {
  const found = resourcesOf(template, type);
  expect(found).toHaveLength(1);
  return found[0]!;
}

describe('BerthPlatformStack: network', () => {
  test('a VPC over two zones, private subnets behind one NAT gateway, free gateway endpoints', () => {
    template.resourceCountIs('AWS::EC2::VPC', 1);
    template.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.40.0.0/16' });
    template.resourceCountIs('AWS::EC2::Subnet', 4);
    template.resourceCountIs('AWS::EC2::NatGateway', 1);
    template.resourceCountIs('AWS::EC2::VPCEndpoint', 2);
    const endpoints = resourcesOf(template, 'AWS::EC2::VPCEndpoint').map(([, props]) => [
      JSON.stringify(props['ServiceName']),
      props['VpcEndpointType'],
    ]);
    expect(endpoints.map(([service]) => /s3|dynamodb/.exec(service as string)?.[0]).sort()).toEqual(
      ['dynamodb', 's3'],
    );
    expect(endpoints.every(([, type]) => type === 'Gateway')).toBe(true);
    // Public subnets hold the NAT gateway and (optionally) the load balancer, never a task IP.
    for (const [, subnet] of resourcesOf(template, 'AWS::EC2::Subnet')) {
      expect(subnet['MapPublicIpOnLaunch']).toBe(false);
    }
  });

  test('flow logs of rejected traffic to a log group with retention', () => {
    const [, flowLog] = onlyResource('AWS::EC2::FlowLog');
    expect(flowLog['TrafficType']).toBe('REJECT');
    expect(flowLog['LogDestinationType']).toBe('cloud-watch-logs');
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: '/berth/vpc-flow-logs',
      RetentionInDays: 30,
    });
  });

  test('the ECS cluster has Container Insights', () => {
    const [, cluster] = onlyResource('AWS::ECS::Cluster');
    expect(cluster['ClusterName']).toBe('berth');
    expect(cluster['ClusterSettings']).toEqual([{ Name: 'containerInsights', Value: 'enabled' }]);
  });
});

describe('BerthPlatformStack: workspaces', () => {
  test('an encrypted, retained EFS reached only from workspace tasks, through an access point', () => {
    const [fsId, fs] = Object.entries(template.findResources('AWS::EFS::FileSystem'))[0]! as [
      string,
      Record<string, unknown>,
    ];
    expect(fs['DeletionPolicy']).toBe('Retain');
    expect(fs['Properties']).toMatchObject({ Encrypted: true, ThroughputMode: 'elastic' });
    template.resourceCountIs('AWS::EFS::MountTarget', 2);
    const [, accessPoint] = onlyResource('AWS::EFS::AccessPoint');
    expect(renderDeep(accessPoint)).toMatchObject({
      FileSystemId: `<${fsId}>`,
      PosixUser: { Uid: '1000', Gid: '1000' },
      RootDirectory: {
        Path: '/workspaces',
        CreationInfo: { OwnerUid: '1000', OwnerGid: '1000', Permissions: '750' },
      },
    });
    const workspaceSg = resourcesOf(template, 'AWS::EC2::SecurityGroup').find(
      ([, props]) => props['GroupName'] === 'berth-workspace',
    )![0];
    const ingress = resourcesOf(template, 'AWS::EC2::SecurityGroupIngress').map(([, props]) =>
      renderDeep(props),
    );
    expect(ingress).toEqual([
      expect.objectContaining({
        FromPort: 2049,
        ToPort: 2049,
        IpProtocol: 'tcp',
        SourceSecurityGroupId: `<${workspaceSg}.GroupId>`,
      }),
    ]);
  });

  test('the workspace task definition: Fargate, EFS at /workspace, the seed and berth variables, logs', () => {
    const [, taskDefinition] = onlyResource('AWS::ECS::TaskDefinition');
    const fsId = Object.keys(template.findResources('AWS::EFS::FileSystem'))[0]!;
    const apId = Object.keys(template.findResources('AWS::EFS::AccessPoint'))[0]!;
    expect(renderDeep(taskDefinition)).toMatchObject({
      Family: 'berth-workspace',
      RequiresCompatibilities: ['FARGATE'],
      NetworkMode: 'awsvpc',
      Cpu: '1024',
      Memory: '2048',
      RuntimePlatform: { CpuArchitecture: 'X86_64', OperatingSystemFamily: 'LINUX' },
      Volumes: [
        {
          Name: 'workspaces',
          EFSVolumeConfiguration: {
            FilesystemId: `<${fsId}>`,
            TransitEncryption: 'ENABLED',
            AuthorizationConfig: { AccessPointId: `<${apId}>`, IAM: 'ENABLED' },
          },
        },
      ],
    });
    const containers = taskDefinition['ContainerDefinitions'] as Record<string, unknown>[];
    expect(containers).toHaveLength(1);
    const container = renderDeep(containers[0]) as Record<string, unknown>;
    expect(container['Name']).toBe('workspace');
    expect(container['Essential']).toBe(true);
    expect(container['StopTimeout']).toBe(60);
    expect(container['MountPoints']).toEqual([
      { ContainerPath: '/workspace', SourceVolume: 'workspaces', ReadOnly: false },
    ]);
    const environment = Object.fromEntries(
      (container['Environment'] as { Name: string; Value: string }[]).map((entry) => [
        entry.Name,
        entry.Value,
      ]),
    );
    expect(environment).toEqual({
      AWS_REGION: 'us-east-1',
      CONTAINER_TABLE: 'berth-containers',
      SESSION_TABLE: 'berth-sessions',
      WORKSPACE_PATH: '/workspace',
      AUTO_SHUTDOWN_MINUTES: '20',
      IDLE_THRESHOLD_MINUTES: '20',
      CLEANUP_INTERVAL_MINUTES: '10',
      BERTH_RUNTIME: 'ecs',
      BERTH_IDLE_TIMEOUT: '20m',
      BERTH_SHUTDOWN_GRACE: '1m',
      BERTH_SWEEP_INTERVAL: '10m',
      BERTH_SESSION_TTL: '2h',
      BERTH_LOG_LEVEL: 'info',
      BERTH_DEV_SERVER_PORT: '3000',
    });
    expect(container['PortMappings']).toEqual([
      { Name: 'dev-server', ContainerPort: 3000, Protocol: 'tcp' },
    ]);
    const logGroupId = resourcesOf(template, 'AWS::Logs::LogGroup').find(
      ([, props]) => props['LogGroupName'] === '/berth/workspace',
    )![0];
    expect(container['LogConfiguration']).toEqual({
      LogDriver: 'awslogs',
      Options: {
        'awslogs-group': `<${logGroupId}>`,
        'awslogs-stream-prefix': 'workspace',
        'awslogs-region': 'us-east-1',
        mode: 'non-blocking',
      },
    });
    template.hasResourceProperties('AWS::Logs::LogGroup', {
      LogGroupName: '/berth/workspace',
      RetentionInDays: 30,
    });
  });

  test('the git credentials are Secrets entries of the workspace container, read by the execution role only', () => {
    const [, taskDefinition] = onlyResource('AWS::ECS::TaskDefinition');
    const container = renderDeep(
      (taskDefinition['ContainerDefinitions'] as unknown[])[0],
    ) as Record<string, unknown>;
    const secretArn = ssmParameter(template, '/berth/data/git-credentials-secret-arn');
    expect(container['Secrets']).toEqual([
      { Name: 'BERTH_GIT_USERNAME', ValueFrom: `${secretArn}:username::` },
      { Name: 'BERTH_GIT_PASSWORD', ValueFrom: `${secretArn}:password::` },
    ]);
    // No credential in the plain environment: no such variable, and no URL with a user in it.
    const environment = container['Environment'] as { Name: string; Value: string }[];
    expect(
      environment.filter(({ Name }) => /GIT|PASSWORD|TOKEN|SECRET|CREDENTIAL/i.test(Name)),
    ).toEqual([]);
    expect(environment.filter(({ Value }) => /:\/\/[^/\s]*@/.test(Value))).toEqual([]);
    expect(JSON.stringify(taskDefinition)).not.toMatch(/password"\s*:/i);

    const [, executionPolicy] = resourcesOf(template, 'AWS::IAM::Policy').find(([id]) =>
      id.startsWith('WorkspaceExecutionRole'),
    )!;
    expect(
      renderStatements((executionPolicy['PolicyDocument'] as { Statement: unknown[] }).Statement),
    ).toContainEqual(
      expect.objectContaining({
        Effect: 'Allow',
        Action: ['secretsmanager:DescribeSecret', 'secretsmanager:GetSecretValue'],
        Resource: [secretArn],
      }),
    );
    // The task role, which the workload can use, cannot read it.
    const [, taskRole] = resourcesOf(template, 'AWS::IAM::Role').find(
      ([, props]) => props['RoleName'] === 'berth-workspace-task-us-east-1',
    )!;
    expect(JSON.stringify(taskRole)).not.toContain('secretsmanager');
  });

  test('the workspace task role: its own queues and its volume, no DynamoDB, no ECS', () => {
    const [, role] = resourcesOf(template, 'AWS::IAM::Role').find(
      ([, props]) => props['RoleName'] === 'berth-workspace-task-us-east-1',
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
          ArnLike: { 'aws:SourceArn': `arn:aws:ecs:us-east-1:${ACCOUNT}:*` },
          StringEquals: { 'aws:SourceAccount': ACCOUNT },
        },
      },
    ]);
    const policies = role['Policies'] as {
      PolicyName: string;
      PolicyDocument: { Statement: unknown[] };
    }[];
    expect(policies.map((policy) => policy.PolicyName)).toEqual(['berth-workspace']);
    const fsId = Object.keys(template.findResources('AWS::EFS::FileSystem'))[0]!;
    const apId = Object.keys(template.findResources('AWS::EFS::AccessPoint'))[0]!;
    const queueActions = [
      'sqs:ReceiveMessage',
      'sqs:ChangeMessageVisibility',
      'sqs:DeleteMessage',
      'sqs:SendMessage',
    ];
    expect(renderStatements(policies[0]!.PolicyDocument.Statement)).toEqual([
      {
        Sid: 'UseContainerQueues',
        Effect: 'Allow',
        Action: queueActions,
        Resource: [queueArn('berth-*')],
      },
      {
        Sid: 'NeverTheSharedQueues',
        Effect: 'Deny',
        Action: queueActions,
        Resource: [
          'berth-lifecycle-commands',
          'berth-lifecycle-commands-dlq',
          'berth-agent-reports-dlq',
          'berth-task-events',
          'berth-task-events-dlq',
          'berth-history-events',
          'berth-history-events-dlq',
          'berth-webhook-events',
          'berth-webhook-events-dlq',
        ].map(queueArn),
      },
      // Its reports: send only, never read (open item 9 of docs/security.md).
      {
        Sid: 'NeverReadAgentReports',
        Effect: 'Deny',
        Action: queueActions.filter((action) => action !== 'sqs:SendMessage'),
        Resource: [queueArn('berth-agent-reports')],
      },
      {
        Sid: 'SendAgentReports',
        Effect: 'Allow',
        Action: ['sqs:SendMessage'],
        Resource: [queueArn('berth-agent-reports')],
      },
      {
        Sid: 'MountWorkspacesThroughAccessPoint',
        Effect: 'Allow',
        Action: ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite'],
        Resource: [`<${fsId}.Arn>`],
        Condition: {
          StringEquals: {
            'elasticfilesystem:AccessPointArn': `arn:aws:elasticfilesystem:us-east-1:${ACCOUNT}:access-point/<${apId}>`,
          },
        },
      },
    ]);
    // Nothing else is attached to it.
    const attached = resourcesOf(template, 'AWS::IAM::Policy').filter(([, props]) =>
      JSON.stringify(props['Roles']).includes('WorkspaceTaskRole'),
    );
    expect(attached).toEqual([]);
  });

  test('the execution role has a stable name the services may pass', () => {
    template.hasResourceProperties('AWS::IAM::Role', {
      RoleName: 'berth-workspace-exec-us-east-1',
      AssumeRolePolicyDocument: {
        Statement: [Match.objectLike({ Principal: { Service: 'ecs-tasks.amazonaws.com' } })],
      },
    });
  });

  test('publishes the revision each deploy registers, and keeps older revisions ACTIVE for the services not yet redeployed', () => {
    const [taskDefinitionId] = Object.keys(template.findResources('AWS::ECS::TaskDefinition'));
    const parameter = resourcesOf(template, 'AWS::SSM::Parameter').find(
      ([, props]) => props['Name'] === '/berth/platform/workspace-task-definition-arn',
    );
    expect(parameter?.[1]['Value']).toEqual({ Ref: taskDefinitionId });
    template.hasResource('AWS::ECS::TaskDefinition', {
      DeletionPolicy: 'Retain',
      UpdateReplacePolicy: 'Retain',
    });
  });

  test('publishes network and workspace ids in SSM, under /berth/platform/', () => {
    const names = resourcesOf(template, 'AWS::SSM::Parameter').map(([, props]) => props['Name']);
    expect(names.sort()).toEqual(
      [
        '/berth/platform/vpc-id',
        '/berth/platform/vpc-cidr',
        '/berth/platform/cluster-arn',
        '/berth/platform/workspace-security-group-id',
        '/berth/platform/workspace-task-definition-family',
        '/berth/platform/workspace-task-definition-arn',
        '/berth/platform/workspace-task-role-arn',
        '/berth/platform/workspace-execution-role-arn',
        '/berth/platform/workspace-file-system-id',
        '/berth/platform/private-subnet-1-id',
        '/berth/platform/private-subnet-2-id',
        '/berth/platform/public-subnet-1-id',
        '/berth/platform/public-subnet-2-id',
      ].sort(),
    );
  });
});
