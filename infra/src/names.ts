import { ArnFormat, Stack } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/**
 * Stable physical names. Stacks find each other's resources through these (and through the
 * SSM parameters below), never through CloudFormation exports, so that any stack deploys
 * on its own and none is locked to another's deploys.
 */
export const NAMES = {
  containerTable: 'berth-containers',
  sessionTable: 'berth-sessions',
  lifecycleQueue: 'berth-lifecycle-commands',
  lifecycleDlq: 'berth-lifecycle-commands-dlq',
  /** What workspace agents report (thread.ready, checkpoint.record): the only queue they may send to. */
  agentReportsQueue: 'berth-agent-reports',
  agentReportsDlq: 'berth-agent-reports-dlq',
  taskEventsQueue: 'berth-task-events',
  taskEventsDlq: 'berth-task-events-dlq',
  /** The lifecycle history (issue 18): its table, and its subscription queue to the topic. */
  historyTable: 'berth-history',
  historyQueue: 'berth-history-events',
  historyDlq: 'berth-history-events-dlq',
  /** Signed webhooks: subscriptions and deliveries (docs/design.md, "Signed webhooks"). */
  webhookTable: 'berth-webhooks',
  /** The webhook service's subscription to the lifecycle topic. */
  webhookEventsQueue: 'berth-webhook-events',
  webhookEventsDlq: 'berth-webhook-events-dlq',
  lifecycleTopic: 'berth-lifecycle-events',
  alarmTopic: 'berth-alarms',
  taskStateRule: 'berth-task-state-changes',
  authSecret: 'berth/auth-secret',
  gitCredentialsSecret: 'berth/git-credentials',
  cluster: 'berth',
  workspaceFamily: 'berth-workspace',
  workspaceContainer: 'workspace',
  /** The workspace tasks' logs: stream `<prefix>/<container>/<task id>` (awslogs). */
  workspaceLogGroup: '/berth/workspace',
  workspaceLogStreamPrefix: 'workspace',
  /** Every per-container queue (input and output of each generation) starts with this. */
  containerQueuePrefix: 'berth-',
  /**
   * Discovery's per-process subscription queues (libs/adapters/messaging owned-subscriptions):
   * outside `berth-*`, which workspace roles may read.
   */
  subscriptionQueuePrefix: 'discovery-invalidations-',
  dashboard: 'berth',
  metricsNamespace: 'Berth',
} as const;

/** The queues the services share; per-container queues share their prefix but never these names. */
export const SHARED_QUEUES = [
  NAMES.lifecycleQueue,
  NAMES.lifecycleDlq,
  NAMES.agentReportsQueue,
  NAMES.agentReportsDlq,
  NAMES.taskEventsQueue,
  NAMES.taskEventsDlq,
  NAMES.historyQueue,
  NAMES.historyDlq,
  NAMES.webhookEventsQueue,
  NAMES.webhookEventsDlq,
] as const;

export const SERVICES = [
  'discovery',
  'preview-gateway',
  'session',
  'reaper',
  'task-watcher',
  'webhooks',
] as const;
export type ServiceName = (typeof SERVICES)[number];

/** Service name as ECS and the logs know it. */
export const ecsServiceName = (service: ServiceName): string => `berth-${service}`;

/** IAM is global: the region in the name lets berth live in several regions of one account. */
export const workspaceTaskRoleName = (region: string): string => `berth-workspace-task-${region}`;
export const workspaceExecutionRoleName = (region: string): string =>
  `berth-workspace-exec-${region}`;

/** SSM parameters: what has no stable name (VPC, subnets, key) is published here. */
export const PARAMS = {
  containerTableArn: '/berth/data/containers-table-arn',
  containerTableName: '/berth/data/containers-table-name',
  sessionTableArn: '/berth/data/sessions-table-arn',
  sessionTableName: '/berth/data/sessions-table-name',
  lifecycleQueueArn: '/berth/data/lifecycle-commands-queue-arn',
  lifecycleQueueUrl: '/berth/data/lifecycle-commands-queue-url',
  agentReportsQueueArn: '/berth/data/agent-reports-queue-arn',
  agentReportsQueueUrl: '/berth/data/agent-reports-queue-url',
  taskEventsQueueArn: '/berth/data/task-events-queue-arn',
  taskEventsQueueUrl: '/berth/data/task-events-queue-url',
  webhookTableArn: '/berth/data/webhooks-table-arn',
  lifecycleTopicArn: '/berth/data/lifecycle-topic-arn',
  eventsKeyArn: '/berth/data/events-key-arn',
  authSecretArn: '/berth/data/auth-secret-arn',
  gitCredentialsSecretArn: '/berth/data/git-credentials-secret-arn',
  vpcId: '/berth/platform/vpc-id',
  vpcCidr: '/berth/platform/vpc-cidr',
  privateSubnetId: (index: number): string => `/berth/platform/private-subnet-${index + 1}-id`,
  publicSubnetId: (index: number): string => `/berth/platform/public-subnet-${index + 1}-id`,
  clusterArn: '/berth/platform/cluster-arn',
  workspaceSecurityGroupId: '/berth/platform/workspace-security-group-id',
  workspaceTaskDefinitionFamily: '/berth/platform/workspace-task-definition-family',
  /** The revision a deploy registered (family:revision ARN); services start exactly this one. */
  workspaceTaskDefinitionArn: '/berth/platform/workspace-task-definition-arn',
  workspaceTaskRoleArn: '/berth/platform/workspace-task-role-arn',
  workspaceExecutionRoleArn: '/berth/platform/workspace-execution-role-arn',
  workspaceFileSystemId: '/berth/platform/workspace-file-system-id',
} as const;

export const AZ_COUNT = 2;

/** ARNs of berth's named resources, computed in whichever stack needs them. */
export class BerthArns {
  private readonly stack: Stack;

  constructor(scope: IConstruct) {
    this.stack = Stack.of(scope);
  }

  table(name: string): string {
    return this.stack.formatArn({ service: 'dynamodb', resource: 'table', resourceName: name });
  }

  tableIndexes(name: string): string {
    return `${this.table(name)}/index/*`;
  }

  queue(name: string): string {
    return this.stack.formatArn({
      service: 'sqs',
      resource: name,
      arnFormat: ArnFormat.NO_RESOURCE_NAME,
    });
  }

  /** Every per-container queue; the shared queues match too, so roles deny them explicitly. */
  containerQueues(): string {
    return this.queue(`${NAMES.containerQueuePrefix}*`);
  }

  /**
   * Every container's input queue (`berth-<client>-<project>-<user>-<generation>-in`): no shared
   * queue's name ends in `-in`, nor does a pool member's control queue or an output queue.
   */
  containerInputQueues(): string {
    return this.queue(`${NAMES.containerQueuePrefix}*-in`);
  }

  /** The warm pool members' control queues (`berth-pool-s<slot>-g<generation>-ctl`). */
  poolControlQueues(): string {
    return this.queue(`${NAMES.containerQueuePrefix}pool-*`);
  }

  /** Discovery's per-process subscription queues to the lifecycle topic. */
  subscriptionQueues(): string {
    return this.queue(`${NAMES.subscriptionQueuePrefix}*`);
  }

  queueUrl(name: string): string {
    return `https://sqs.${this.stack.region}.${this.stack.urlSuffix}/${this.stack.account}/${name}`;
  }

  topic(name: string): string {
    return this.stack.formatArn({
      service: 'sns',
      resource: name,
      arnFormat: ArnFormat.NO_RESOURCE_NAME,
    });
  }

  cluster(): string {
    return this.stack.formatArn({
      service: 'ecs',
      resource: 'cluster',
      resourceName: NAMES.cluster,
    });
  }

  /** Tasks of berth's cluster (the long ARN format: task/<cluster>/<id>). */
  clusterTasks(): string {
    return this.stack.formatArn({
      service: 'ecs',
      resource: 'task',
      resourceName: `${NAMES.cluster}/*`,
    });
  }

  /** Every revision of the workspace task definition family. */
  workspaceTaskDefinitions(): string {
    return this.stack.formatArn({
      service: 'ecs',
      resource: 'task-definition',
      resourceName: `${NAMES.workspaceFamily}:*`,
    });
  }

  role(name: string): string {
    return this.stack.formatArn({
      service: 'iam',
      region: '',
      resource: 'role',
      resourceName: name,
    });
  }

  workspaceTaskRole(): string {
    return this.role(workspaceTaskRoleName(this.stack.region));
  }

  workspaceExecutionRole(): string {
    return this.role(workspaceExecutionRoleName(this.stack.region));
  }
}
