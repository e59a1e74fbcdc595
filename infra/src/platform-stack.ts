import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as efs from 'aws-cdk-lib/aws-efs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import { parseDuration } from '@berth/domain';
import type { InfraConfig } from './config.ts';
import { appContainer } from './images.ts';
import { logRetention } from './logging.ts';
import {
  AZ_COUNT,
  BerthArns,
  NAMES,
  PARAMS,
  SHARED_QUEUES,
  workspaceExecutionRoleName,
  workspaceTaskRoleName,
} from './names.ts';
import { WORKSPACE_QUEUE_ACTIONS, ecsTasksPrincipal } from './permissions.ts';

export interface BerthPlatformStackProps extends StackProps {
  config: InfraConfig;
}

/** Where EFS is mounted in every workspace task; each container's workspace lies below it. */
export const WORKSPACE_MOUNT = '/workspace';
/** The `node` user of the official Node images, which the workspace image runs as. */
const WORKSPACE_UID = '1000';

const minutes = (duration: string, field: string): string =>
  String(parseDuration(duration, field) / 60_000);

/**
 * The seed's variables (minutes) next to berth's own (durations), so that scripts written
 * for either keep working; berth's win where both are set. CONTAINER_ID and the container's
 * own WORKSPACE_PATH are set per task by the runtime's RunTask overrides.
 */
export function workspaceEnvironment(config: InfraConfig): Record<string, string> {
  const { lifecycle } = config;
  const env: Record<string, string> = {
    AWS_REGION: config.region,
    CONTAINER_TABLE: NAMES.containerTable,
    SESSION_TABLE: NAMES.sessionTable,
    WORKSPACE_PATH: WORKSPACE_MOUNT,
    AUTO_SHUTDOWN_MINUTES: minutes(lifecycle.idleTimeout, 'lifecycle.idleTimeout'),
    IDLE_THRESHOLD_MINUTES: minutes(lifecycle.idleTimeout, 'lifecycle.idleTimeout'),
    CLEANUP_INTERVAL_MINUTES: minutes(lifecycle.sweepInterval, 'lifecycle.sweepInterval'),
    BERTH_RUNTIME: 'ecs',
    BERTH_IDLE_TIMEOUT: lifecycle.idleTimeout,
    BERTH_SHUTDOWN_GRACE: lifecycle.shutdownGrace,
    BERTH_SWEEP_INTERVAL: lifecycle.sweepInterval,
    BERTH_SESSION_TTL: lifecycle.sessionTtl,
    BERTH_LOG_LEVEL: config.logLevel,
  };
  if (config.workspace.workloadCommand !== undefined)
    env['BERTH_WORKLOAD_COMMAND'] = config.workspace.workloadCommand;
  if (config.workspace.repoUrlTemplate !== undefined)
    env['BERTH_REPO_URL_TEMPLATE'] = config.workspace.repoUrlTemplate;
  // Every task has its own address: one port serves all (the preview gateway reaches it).
  env['BERTH_DEV_SERVER_PORT'] = String(config.workspace.devServerPort);
  if (config.workspace.devServerCommand !== undefined)
    env['BERTH_DEV_SERVER_COMMAND'] = config.workspace.devServerCommand;
  if (config.workspace.devServerReadyPath !== undefined)
    env['BERTH_DEV_SERVER_READY_PATH'] = config.workspace.devServerReadyPath;
  return env;
}

/**
 * The git credentials, injected by ECS from Secrets Manager at task start through the execution
 * role: never in the template, the environment of the task definition or a URL, and out of the
 * task role's reach (the workload can use that one; it cannot use the execution role).
 */
export function workspaceSecrets(scope: Construct): Record<string, ecs.Secret> {
  const secret = secretsmanager.Secret.fromSecretCompleteArn(
    scope,
    'GitCredentials',
    ssm.StringParameter.valueForStringParameter(scope, PARAMS.gitCredentialsSecretArn),
  );
  return {
    BERTH_GIT_USERNAME: ecs.Secret.fromSecretsManager(secret, 'username'),
    BERTH_GIT_PASSWORD: ecs.Secret.fromSecretsManager(secret, 'password'),
  };
}

/**
 * The shared, stateless-ish platform: network, cluster, and the workspace task definition
 * that discovery and the session service start once per container. The EFS file system is
 * retained: a workspace whose save failed is kept there until its next start pushes it.
 */
export class BerthPlatformStack extends Stack {
  readonly vpc: ec2.Vpc;
  readonly cluster: ecs.Cluster;
  readonly workspaceSecurityGroup: ec2.SecurityGroup;
  readonly fileSystem: efs.FileSystem;
  readonly accessPoint: efs.AccessPoint;
  readonly workspaceTaskDefinition: ecs.FargateTaskDefinition;
  readonly workspaceTaskRole: iam.Role;
  /** The workspace role's statements, as written (no DynamoDB, no ECS: only its queues and volume). */
  readonly workspacePolicyStatements: iam.PolicyStatement[];
  readonly workspaceExecutionRole: iam.Role;

  constructor(scope: Construct, id: string, props: BerthPlatformStackProps) {
    super(scope, id, props);
    const { config } = props;
    const arns = new BerthArns(this);

    const flowLogs = new logs.LogGroup(this, 'FlowLogs', {
      logGroupName: '/berth/vpc-flow-logs',
      retention: logRetention(config.logRetentionDays),
      removalPolicy: RemovalPolicy.DESTROY,
    });
    // One NAT gateway rather than interface endpoints: workspaces push to git remotes on
    // the internet, so a NAT is needed anyway, and eight interface endpoints in two AZs
    // would cost about four NAT gateways. The free gateway endpoints keep S3 (image layers)
    // and DynamoDB traffic off the NAT's per-GB charge.
    this.vpc = new ec2.Vpc(this, 'Vpc', {
      vpcName: 'berth',
      ipAddresses: ec2.IpAddresses.cidr(config.network.cidr),
      maxAzs: AZ_COUNT,
      natGateways: config.network.natGateways,
      subnetConfiguration: [
        {
          name: 'public',
          subnetType: ec2.SubnetType.PUBLIC,
          cidrMask: 24,
          mapPublicIpOnLaunch: false,
        },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 20 },
      ],
      gatewayEndpoints: {
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
      },
      flowLogs: {
        FlowLog: {
          destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogs),
          trafficType: ec2.FlowLogTrafficType[config.network.flowLogTraffic],
        },
      },
    });

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      clusterName: NAMES.cluster,
      vpc: this.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENABLED,
    });

    this.workspaceSecurityGroup = new ec2.SecurityGroup(this, 'WorkspaceSecurityGroup', {
      vpc: this.vpc,
      securityGroupName: 'berth-workspace',
      description: 'berth workspace tasks: no inbound; outbound for git remotes and AWS APIs',
      allowAllOutbound: true,
    });

    const fileSystemSecurityGroup = new ec2.SecurityGroup(
      this,
      'WorkspaceFileSystemSecurityGroup',
      {
        vpc: this.vpc,
        description: 'berth workspace EFS: NFS from workspace tasks only',
        allowAllOutbound: false,
      },
    );
    this.fileSystem = new efs.FileSystem(this, 'WorkspaceFileSystem', {
      vpc: this.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroup: fileSystemSecurityGroup,
      fileSystemName: 'berth-workspaces',
      encrypted: true,
      performanceMode: efs.PerformanceMode.GENERAL_PURPOSE,
      throughputMode: efs.ThroughputMode.ELASTIC,
      // Stopped containers' workspaces are rarely read again (their work is in git).
      lifecyclePolicy: efs.LifecyclePolicy.AFTER_14_DAYS,
      outOfInfrequentAccessPolicy: efs.OutOfInfrequentAccessPolicy.AFTER_1_ACCESS,
      enableAutomaticBackups: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.fileSystem.connections.allowDefaultPortFrom(
      this.workspaceSecurityGroup,
      'NFS from workspace tasks',
    );
    this.accessPoint = this.fileSystem.addAccessPoint('WorkspaceAccessPoint', {
      path: '/workspaces',
      posixUser: { uid: WORKSPACE_UID, gid: WORKSPACE_UID },
      createAcl: { ownerUid: WORKSPACE_UID, ownerGid: WORKSPACE_UID, permissions: '750' },
    });

    this.workspacePolicyStatements = [
      new iam.PolicyStatement({
        sid: 'UseContainerQueues',
        actions: [...WORKSPACE_QUEUE_ACTIONS],
        resources: [arns.containerQueues()],
      }),
      // The prefix also matches the shared queues; an agent must never read or feed them, with
      // one exception: it sends its reports (thread.ready, checkpoint.record) to
      // berth-agent-reports, where the session service checks each against the store and the
      // sending task (docs/security.md). It may not read that queue.
      new iam.PolicyStatement({
        sid: 'NeverTheSharedQueues',
        effect: iam.Effect.DENY,
        actions: [...WORKSPACE_QUEUE_ACTIONS],
        resources: SHARED_QUEUES.filter((name) => name !== NAMES.agentReportsQueue).map((name) =>
          arns.queue(name),
        ),
      }),
      new iam.PolicyStatement({
        sid: 'NeverReadAgentReports',
        effect: iam.Effect.DENY,
        actions: WORKSPACE_QUEUE_ACTIONS.filter((action) => action !== 'sqs:SendMessage'),
        resources: [arns.queue(NAMES.agentReportsQueue)],
      }),
      new iam.PolicyStatement({
        sid: 'SendAgentReports',
        actions: ['sqs:SendMessage'],
        resources: [arns.queue(NAMES.agentReportsQueue)],
      }),
      new iam.PolicyStatement({
        sid: 'MountWorkspacesThroughAccessPoint',
        actions: ['elasticfilesystem:ClientMount', 'elasticfilesystem:ClientWrite'],
        resources: [this.fileSystem.fileSystemArn],
        conditions: {
          StringEquals: { 'elasticfilesystem:AccessPointArn': this.accessPoint.accessPointArn },
        },
      }),
    ];
    this.workspaceTaskRole = new iam.Role(this, 'WorkspaceTaskRole', {
      roleName: workspaceTaskRoleName(this.region),
      description:
        'berth workspace agent: its own container queues and its workspace volume, nothing else',
      assumedBy: ecsTasksPrincipal(this),
      inlinePolicies: {
        'berth-workspace': new iam.PolicyDocument({
          minimize: false,
          statements: this.workspacePolicyStatements,
        }),
      },
    });

    this.workspaceExecutionRole = new iam.Role(this, 'WorkspaceExecutionRole', {
      roleName: workspaceExecutionRoleName(this.region),
      description: 'Pulls the berth workspace image and writes its logs',
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
    });

    const logGroup = new logs.LogGroup(this, 'WorkspaceLogs', {
      logGroupName: NAMES.workspaceLogGroup,
      retention: logRetention(config.logRetentionDays),
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.workspaceTaskDefinition = new ecs.FargateTaskDefinition(this, 'WorkspaceTaskDefinition', {
      family: NAMES.workspaceFamily,
      cpu: config.workspace.cpu,
      memoryLimitMiB: config.workspace.memoryMiB,
      taskRole: this.workspaceTaskRole,
      executionRole: this.workspaceExecutionRole,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
      volumes: [
        {
          name: 'workspaces',
          efsVolumeConfiguration: {
            fileSystemId: this.fileSystem.fileSystemId,
            transitEncryption: 'ENABLED',
            authorizationConfig: { accessPointId: this.accessPoint.accessPointId, iam: 'ENABLED' },
          },
        },
      ],
    });
    // A deploy that changes it registers a new revision; the services name the revision they
    // were deployed with (PARAMS.workspaceTaskDefinitionArn), so the old one must stay ACTIVE
    // until they are redeployed after this stack: RunTask refuses an INACTIVE revision.
    this.workspaceTaskDefinition.applyRemovalPolicy(RemovalPolicy.RETAIN);
    const container = this.workspaceTaskDefinition.addContainer('Workspace', {
      containerName: NAMES.workspaceContainer,
      ...appContainer('workspace-agent'),
      essential: true,
      environment: workspaceEnvironment(config),
      secrets: workspaceSecrets(this),
      // ECS sends SIGKILL this long after SIGTERM: the agent's whole grace to save to git.
      stopTimeout: Duration.millis(
        parseDuration(config.lifecycle.shutdownGrace, 'lifecycle.shutdownGrace'),
      ),
      logging: ecs.LogDrivers.awsLogs({
        logGroup,
        streamPrefix: NAMES.workspaceLogStreamPrefix,
        mode: ecs.AwsLogDriverMode.NON_BLOCKING,
      }),
    });
    // The dev server's port (docs/contract.md, "The dev server"); who may reach it is the
    // workspace security group's rule.
    container.addPortMappings({
      name: 'dev-server',
      containerPort: config.workspace.devServerPort,
      protocol: ecs.Protocol.TCP,
    });
    container.addMountPoints({
      containerPath: WORKSPACE_MOUNT,
      sourceVolume: 'workspaces',
      readOnly: false,
    });

    const publish: [string, string][] = [
      [PARAMS.vpcId, this.vpc.vpcId],
      [PARAMS.vpcCidr, this.vpc.vpcCidrBlock],
      [PARAMS.clusterArn, this.cluster.clusterArn],
      [PARAMS.workspaceSecurityGroupId, this.workspaceSecurityGroup.securityGroupId],
      [PARAMS.workspaceTaskDefinitionFamily, NAMES.workspaceFamily],
      [PARAMS.workspaceTaskDefinitionArn, this.workspaceTaskDefinition.taskDefinitionArn],
      [PARAMS.workspaceTaskRoleArn, this.workspaceTaskRole.roleArn],
      [PARAMS.workspaceExecutionRoleArn, this.workspaceExecutionRole.roleArn],
      [PARAMS.workspaceFileSystemId, this.fileSystem.fileSystemId],
    ];
    for (let index = 0; index < AZ_COUNT; index++) {
      const privateSubnet = this.vpc.privateSubnets[index];
      const publicSubnet = this.vpc.publicSubnets[index];
      if (privateSubnet === undefined || publicSubnet === undefined) {
        throw new Error(`the VPC has fewer than ${AZ_COUNT} availability zones`);
      }
      publish.push(
        [PARAMS.privateSubnetId(index), privateSubnet.subnetId],
        [PARAMS.publicSubnetId(index), publicSubnet.subnetId],
      );
    }
    for (const [parameterName, stringValue] of publish) {
      new ssm.StringParameter(this, `Param${parameterName.replaceAll(/[^A-Za-z0-9]/g, '')}`, {
        parameterName,
        stringValue,
      });
    }
  }
}
