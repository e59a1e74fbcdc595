import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as appscaling from 'aws-cdk-lib/aws-applicationautoscaling';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import type { InfraConfig, QueueScaling, ServiceSizing } from './config.ts';
import { appContainer } from './images.ts';
import { logRetention } from './logging.ts';
import { AZ_COUNT, BerthArns, NAMES, PARAMS, ecsServiceName } from './names.ts';
import type { ServiceName } from './names.ts';
import { ecsTasksPrincipal, servicePolicyStatements } from './permissions.ts';

export interface BerthServiceStackProps extends StackProps {
  config: InfraConfig;
}

interface ServiceOptions {
  service: ServiceName;
  sizing: ServiceSizing;
  /** Scaled services leave DesiredCount to Application Auto Scaling after the first deploy. */
  scaling?: { queueName: string; settings: QueueScaling };
  environment?: Record<string, string>;
  /** Made once the stack exists, so that imported secrets can belong to it. */
  secrets?: (stack: BerthServiceStack) => Record<string, ecs.Secret>;
  containerPort?: number;
  /** For load-balanced services: how long a new task may fail health checks while starting. */
  healthCheckGracePeriod?: Duration;
}

/** The platform's network, read from SSM at deploy time (no CloudFormation export). */
export interface ImportedNetwork {
  vpc: ec2.IVpc;
  cluster: ecs.ICluster;
  privateSubnets: ec2.ISubnet[];
  /** Looked up only by a stack that uses them: an unused SSM parameter is a template warning. */
  publicSubnets: () => ec2.ISubnet[];
}

/**
 * What every berth service stack has: the platform's VPC and cluster imported by SSM
 * parameter and name, a Fargate task with its own least-privilege role, its logs, and one
 * ECS service in the private subnets. Each stack deploys on its own once the data and
 * platform stacks exist.
 */
export abstract class BerthServiceStack extends Stack {
  readonly network: ImportedNetwork;
  readonly taskRole: iam.Role;
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly service: ecs.FargateService;
  readonly securityGroup: ec2.SecurityGroup;
  readonly logGroup: logs.LogGroup;
  /** The task role's statements, as written (nag-suppressions.ts justifies each wildcard). */
  readonly policyStatements: iam.PolicyStatement[];
  readonly serviceName: ServiceName;
  protected readonly arns: BerthArns;
  readonly config: InfraConfig;

  protected constructor(
    scope: Construct,
    id: string,
    props: BerthServiceStackProps,
    options: ServiceOptions,
  ) {
    super(scope, id, props);
    this.config = props.config;
    this.arns = new BerthArns(this);
    this.network = this.importNetwork();
    const { service, sizing } = options;
    const name = ecsServiceName(service);
    this.serviceName = service;
    this.policyStatements = servicePolicyStatements(service, this.arns, {
      eventsKeyArn: () => this.ssmValue(PARAMS.eventsKeyArn),
      workspaceSize: props.config.workspace,
      poolSize: props.config.pool.size,
    });

    this.taskRole = new iam.Role(this, 'TaskRole', {
      description: `berth ${service}: only what the ${service} service does`,
      assumedBy: ecsTasksPrincipal(this),
      inlinePolicies: {
        [name]: new iam.PolicyDocument({
          // Statements stay as written (one Sid each) so reviews and tests read them as-is.
          minimize: false,
          statements: this.policyStatements,
        }),
      },
    });

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      logGroupName: `/berth/${service}`,
      retention: logRetention(this.config.logRetentionDays),
      removalPolicy: RemovalPolicy.DESTROY,
    });

    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'TaskDefinition', {
      family: name,
      cpu: sizing.cpu,
      memoryLimitMiB: sizing.memoryMiB,
      taskRole: this.taskRole,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.X86_64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
    });
    this.taskDefinition.addContainer('Service', {
      containerName: service,
      ...appContainer(service),
      essential: true,
      environment: { ...this.commonEnvironment(), ...options.environment },
      ...(options.secrets === undefined ? {} : { secrets: options.secrets(this) }),
      ...(options.containerPort === undefined
        ? {}
        : { portMappings: [{ containerPort: options.containerPort, protocol: ecs.Protocol.TCP }] }),
      logging: ecs.LogDrivers.awsLogs({
        logGroup: this.logGroup,
        streamPrefix: service,
        mode: ecs.AwsLogDriverMode.NON_BLOCKING,
      }),
    });

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: this.network.vpc,
      description: `berth ${service} tasks`,
      allowAllOutbound: true,
    });

    this.service = new ecs.FargateService(this, 'Service', {
      serviceName: name,
      cluster: this.network.cluster,
      taskDefinition: this.taskDefinition,
      ...(options.scaling === undefined ? { desiredCount: sizing.desiredCount } : {}),
      vpcSubnets: { subnets: this.network.privateSubnets },
      securityGroups: [this.securityGroup],
      assignPublicIp: false,
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
      circuitBreaker: { enable: true, rollback: true },
      enableECSManagedTags: true,
      propagateTags: ecs.PropagatedTagSource.SERVICE,
      ...(options.healthCheckGracePeriod === undefined
        ? {}
        : { healthCheckGracePeriod: options.healthCheckGracePeriod }),
    });

    if (options.scaling !== undefined)
      this.scaleOnBacklog(options.scaling.queueName, options.scaling.settings);
  }

  /** An SSM parameter's value, resolved by CloudFormation at deploy time. */
  ssmValue(name: string): string {
    return ssm.StringParameter.valueForStringParameter(this, name);
  }

  /**
   * The clients' signing secret for a service that checks tokens (BERTH_AUTH_SECRET), injected
   * by ECS from Secrets Manager at task start: never in the template or the logs.
   */
  authSecret(): ecs.Secret {
    return ecs.Secret.fromSecretsManager(
      secretsmanager.Secret.fromSecretCompleteArn(
        this,
        'AuthSecret',
        this.ssmValue(PARAMS.authSecretArn),
      ),
    );
  }

  private importNetwork(): ImportedNetwork {
    const indexes = [...Array(AZ_COUNT).keys()];
    const subnet = (kind: 'Private' | 'Public', index: number, parameter: string): ec2.ISubnet =>
      ec2.Subnet.fromSubnetAttributes(this, `${kind}Subnet${index + 1}`, {
        subnetId: this.ssmValue(parameter),
      });
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'Vpc', {
      vpcId: this.ssmValue(PARAMS.vpcId),
      // Subnets are imported one by one below; nothing selects subnets by zone, so the
      // zones stay deploy-time tokens (Fn::GetAZs) that end up in no template.
      availabilityZones: this.availabilityZones.slice(0, AZ_COUNT),
    });
    const cluster = ecs.Cluster.fromClusterAttributes(this, 'Cluster', {
      clusterName: NAMES.cluster,
      clusterArn: this.arns.cluster(),
      vpc,
    });
    return {
      vpc,
      cluster,
      privateSubnets: indexes.map((i) => subnet('Private', i, PARAMS.privateSubnetId(i))),
      publicSubnets: () => indexes.map((i) => subnet('Public', i, PARAMS.publicSubnetId(i))),
    };
  }

  /** The contract's configuration, as every service reads it (libs/domain config.ts). */
  private commonEnvironment(): Record<string, string> {
    const { config, arns, network } = this;
    const env: Record<string, string> = {
      AWS_REGION: config.region,
      BERTH_RUNTIME: 'ecs',
      BERTH_ECS_CLUSTER: NAMES.cluster,
      // The revision this deploy registered, not the family: a warm-pool member of an older
      // revision is then drained on the next reaper tick after a deploy (docs/design.md).
      BERTH_ECS_TASK_DEFINITION: this.ssmValue(PARAMS.workspaceTaskDefinitionArn),
      BERTH_ECS_CONTAINER_NAME: NAMES.workspaceContainer,
      BERTH_ECS_SUBNETS: network.privateSubnets.map((subnet) => subnet.subnetId).join(','),
      BERTH_ECS_SECURITY_GROUPS: this.ssmValue(PARAMS.workspaceSecurityGroupId),
      BERTH_ECS_ASSIGN_PUBLIC_IP: 'false',
      CONTAINER_TABLE: NAMES.containerTable,
      SESSION_TABLE: NAMES.sessionTable,
      HISTORY_TABLE: NAMES.historyTable,
      BERTH_IDLE_TIMEOUT: config.lifecycle.idleTimeout,
      BERTH_SWEEP_INTERVAL: config.lifecycle.sweepInterval,
      BERTH_SHUTDOWN_GRACE: config.lifecycle.shutdownGrace,
      BERTH_SESSION_TTL: config.lifecycle.sessionTtl,
      BERTH_MAX_SESSIONS: String(config.lifecycle.maxSessions),
      BERTH_POLICY_IDLE_TIMEOUT_MIN: config.lifecycle.policyIdleTimeoutMin,
      BERTH_POLICY_IDLE_TIMEOUT_MAX: config.lifecycle.policyIdleTimeoutMax,
      BERTH_EXPIRY_NOTICE: config.lifecycle.expiryNotice,
      BERTH_LOG_LEVEL: config.logLevel,
      BERTH_POOL_SIZE: String(config.pool.size),
      BERTH_POOL_MAX_AGE: config.pool.maxAge,
      // Embedded metric format on stdout: CloudWatch Logs turns it into the Berth metrics.
      BERTH_EMF: 'true',
      BERTH_LIFECYCLE_QUEUE_URL: arns.queueUrl(NAMES.lifecycleQueue),
      BERTH_TASK_EVENTS_QUEUE_URL: arns.queueUrl(NAMES.taskEventsQueue),
      BERTH_LIFECYCLE_TOPIC_ARN: arns.topic(NAMES.lifecycleTopic),
    };
    if (config.workspace.workloadCommand !== undefined)
      env['BERTH_WORKLOAD_COMMAND'] = config.workspace.workloadCommand;
    if (config.workspace.repoUrlTemplate !== undefined)
      env['BERTH_REPO_URL_TEMPLATE'] = config.workspace.repoUrlTemplate;
    return env;
  }

  private scaleOnBacklog(queueName: string, settings: QueueScaling): void {
    const queue = sqs.Queue.fromQueueArn(this, 'ScalingQueue', this.arns.queue(queueName));
    const scaling = this.service.autoScaleTaskCount({
      minCapacity: settings.minCount,
      maxCapacity: settings.maxCount,
    });
    scaling.scaleOnMetric('Backlog', {
      metric: queue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: 'Maximum',
      }),
      adjustmentType: appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
      scalingSteps: [
        { upper: 0, change: -1 },
        { lower: settings.backlogPerTask, change: +1 },
        { lower: settings.backlogPerTask * 10, change: +3 },
      ],
      cooldown: Duration.minutes(2),
    });
  }
}
