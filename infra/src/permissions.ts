import { MANAGED_BY, TASK_TAGS } from '@berth/domain';
import { Aws, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';
import { NAMES, SHARED_QUEUES } from './names.ts';
import type { BerthArns } from './names.ts';
import type { ServiceName } from './names.ts';

/**
 * What each service's task role may do, in one place, statement by statement. Every action
 * is named (no `*` actions); resources are berth's own, by stable name. The only `*`
 * resources are actions AWS offers no resource-level permission for: ecs:ListTasks (bound
 * to berth's cluster by the `ecs:cluster` condition) and sqs:ListQueues (the reaper finding
 * abandoned subscription queues by prefix). The lifecycle topic is known by its ARN
 * (BERTH_LIFECYCLE_TOPIC_ARN), never listed.
 *
 * Who may do what with compute (issue 6, and what libs/core's Lifecycle calls per service):
 *   discovery     starts containers; stops them for `POST /v1/containers/{id}/stop` and
 *                 when a start fails half-way
 *   session       starts containers for `session.assign`; never stops a task (issue 6):
 *                 a `container.stop` must reach the task through the reaper
 *   reaper        stops idle and stuck containers, reconciles (lists); never starts them
 *   task-watcher  follows task events, reconciles, stops orphans; never starts them
 *   webhooks      none: it reads lifecycle events and POSTs them to clients' webhooks
 *   preview-gateway  starts a stopped container whose preview is opened (as a discover)
 */

/**
 * What a consumer of one queue does with it (libs/adapters/messaging queue-consumer.ts on
 * sqs-consumer: receive, extend a long handler's visibility, delete). It is given the queue's
 * URL (a shared queue's through FindSharedQueues), so it neither looks it up nor reads its
 * attributes: no sqs:GetQueueUrl or sqs:GetQueueAttributes here (the IAM proof found both
 * unused).
 */
export const CONSUMER_ACTIONS = [
  'sqs:ReceiveMessage',
  'sqs:ChangeMessageVisibility',
  'sqs:DeleteMessage',
] as const;

/** The workspace agent: read its input queue, write its output queue. */
export const WORKSPACE_QUEUE_ACTIONS = [...CONSUMER_ACTIONS, 'sqs:SendMessage'] as const;

/**
 * Store access: conditional puts (alone or in transactions, which IAM authorizes item by item
 * as PutItem) and reads. Every query goes to an index (QueryBerthIndexes), listings included
 * (no Scan: one client's containers are read from `clientId-index`). The one update in place is
 * the quota counters' (issue 17: `ADD live` in a generation's transaction, authorized as
 * UpdateItem, and the sweep's conditional recount); nothing condition-checks another item, and
 * nothing deletes (TTL does). Only discovery and the preview gateway have a readiness check
 * (`GET /readyz`, DescribeTable).
 */
const STORE_ACTIONS = ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'] as const;

export interface ServicePolicyContext {
  /**
   * The lifecycle topic's key, published by the data stack in SSM; looked up only by a role
   * that publishes (an unused SSM parameter is a template warning).
   */
  eventsKeyArn: () => string;
  /** The workspace task definition's size: a RunTask may not override it. */
  workspaceSize: { cpu: number; memoryMiB: number };
  /** The warm pool's size: above 0 its grants are added (POOL_STATEMENTS). */
  poolSize?: number;
}

type StatementFactory = (arns: BerthArns, context: ServicePolicyContext) => iam.PolicyStatement;

const tables = (arns: BerthArns): string[] => [
  arns.table(NAMES.containerTable),
  arns.table(NAMES.sessionTable),
];
const clusterCondition = (arns: BerthArns): Record<string, unknown> => ({
  ArnEquals: { 'ecs:cluster': arns.cluster() },
});
/** Named actions on the queues one of BerthArns' patterns matches. */
const onQueues =
  (pattern: (arns: BerthArns) => string) =>
  (sid: string, actions: readonly string[]): StatementFactory =>
  (arns) =>
    new iam.PolicyStatement({ sid, actions: [...actions], resources: [pattern(arns)] });

const statement = {
  readWriteTables:
    (extra: readonly string[] = []): StatementFactory =>
    (arns) =>
      new iam.PolicyStatement({
        sid: 'ReadWriteBerthTables',
        actions: [...STORE_ACTIONS, ...extra],
        resources: tables(arns),
      }),
  queryIndexes: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'QueryBerthIndexes',
      actions: ['dynamodb:Query'],
      resources: [arns.tableIndexes(NAMES.containerTable), arns.tableIndexes(NAMES.sessionTable)],
    }),
  publishEvents: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'PublishLifecycleEvents',
      actions: ['sns:Publish', 'sns:GetTopicAttributes'],
      resources: [arns.topic(NAMES.lifecycleTopic)],
    }),
  encryptEvents: (): StatementFactory => (_arns, context) =>
    new iam.PolicyStatement({
      sid: 'EncryptLifecycleEvents',
      actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
      resources: [context.eventsKeyArn()],
    }),
  consume:
    (sid: string, queueName: string): StatementFactory =>
    (arns) =>
      new iam.PolicyStatement({
        sid,
        actions: [...CONSUMER_ACTIONS],
        resources: [arns.queue(queueName)],
      }),
  // Only tasks tagged as berth's, on berth's cluster. ECS has no condition key for container
  // overrides (command, environment); what IAM can bound, it bounds: below, no exec and no
  // size other than the task definition's.
  startWorkspaces: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'StartWorkspaceTasks',
      actions: ['ecs:RunTask'],
      resources: [arns.workspaceTaskDefinitions()],
      conditions: {
        ...clusterCondition(arns),
        StringEquals: { [`aws:RequestTag/${TASK_TAGS.managedBy}`]: MANAGED_BY },
      },
    }),
  // A shell into a workspace (ECS Exec) would bypass the agent: never.
  neverExecIntoWorkspaces: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'NeverExecIntoWorkspaceTasks',
      effect: iam.Effect.DENY,
      actions: ['ecs:RunTask'],
      resources: [arns.workspaceTaskDefinitions()],
      conditions: { Bool: { 'ecs:enable-execute-command': 'true' } },
    }),
  // A cpu or memory override may not exceed the task definition's: a compromised service may
  // not start larger, costlier tasks. NumericGreaterThan, not a negated operator: those match
  // when the key is absent (no override) and would deny every RunTask, as the IAM proof showed.
  neverResizeWorkspaces: (): StatementFactory => (arns, context) =>
    new iam.PolicyStatement({
      sid: 'NeverResizeWorkspaceTasks',
      effect: iam.Effect.DENY,
      actions: ['ecs:RunTask'],
      resources: [arns.workspaceTaskDefinitions()],
      conditions: { NumericGreaterThan: { 'ecs:task-cpu': String(context.workspaceSize.cpu) } },
    }),
  neverResizeWorkspaceMemory: (): StatementFactory => (arns, context) =>
    new iam.PolicyStatement({
      sid: 'NeverResizeWorkspaceMemory',
      effect: iam.Effect.DENY,
      actions: ['ecs:RunTask'],
      resources: [arns.workspaceTaskDefinitions()],
      conditions: {
        NumericGreaterThan: { 'ecs:task-memory': String(context.workspaceSize.memoryMiB) },
      },
    }),
  // RunTask with tags (the contract's ContainerId, ClientId, ... tags) is also a TagResource.
  tagAtLaunch: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'TagWorkspaceTasksAtLaunch',
      actions: ['ecs:TagResource'],
      resources: [arns.clusterTasks()],
      conditions: { StringEquals: { 'ecs:CreateAction': 'RunTask' } },
    }),
  passWorkspaceRoles: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'PassWorkspaceRoles',
      actions: ['iam:PassRole'],
      resources: [arns.workspaceTaskRole(), arns.workspaceExecutionRole()],
      conditions: { StringEquals: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' } },
    }),
  describeTasks: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'DescribeClusterTasks',
      actions: ['ecs:DescribeTasks'],
      resources: [arns.clusterTasks()],
      conditions: clusterCondition(arns),
    }),
  stopTasks: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'StopClusterTasks',
      actions: ['ecs:StopTask'],
      resources: [arns.clusterTasks()],
      conditions: clusterCondition(arns),
    }),
  listTasks: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'ListClusterTasks',
      actions: ['ecs:ListTasks'],
      resources: ['*'],
      conditions: clusterCondition(arns),
    }),
  // The warm pool members' control queues only (berth-pool-*), not every container's.
  poolControlQueues: onQueues((arns) => arns.poolControlQueues()),
  containerInputQueues: onQueues((arns) => arns.containerInputQueues()),
  containerQueues: onQueues((arns) => arns.containerQueues()),
  // Every service resolves the shared queues by name at start (GetQueueUrl).
  findSharedQueues: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'FindSharedQueues',
      actions: ['sqs:GetQueueUrl'],
      // The webhook service finds its own queue (FindWebhookEventsQueue); no other looks it up.
      resources: SHARED_QUEUES.filter(
        (name) => name !== NAMES.webhookEventsQueue && name !== NAMES.webhookEventsDlq,
      ).map((name) => arns.queue(name)),
    }),
  // The lifecycle history (issue 18): the task watcher keeps each event with one conditional
  // put (idempotent by eventId; TTL deletes), with its share of the daily usage rollup added in
  // the same transaction (UpdateItem, ADD), and reads nothing back.
  keepHistory: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'KeepLifecycleHistory',
      actions: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
      resources: [arns.table(NAMES.historyTable)],
    }),
  // Discovery answers /v1/events, /v1/containers/{id}/history and /v1/usage from its indexes only.
  readHistory: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'QueryLifecycleHistory',
      actions: ['dynamodb:Query'],
      resources: [arns.tableIndexes(NAMES.historyTable)],
    }),
  // Discovery's cache follows the topic through a queue of its own (apps/discovery
  // invalidation.ts): it subscribes that queue, reads it, renews its heartbeat tag and
  // removes both when it stops.
  subscribeOwnQueue: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'SubscribeOwnQueueToLifecycleEvents',
      actions: ['sns:Subscribe'],
      resources: [arns.topic(NAMES.lifecycleTopic)],
      conditions: {
        StringEquals: { 'sns:Protocol': 'sqs' },
        ArnLike: { 'sns:Endpoint': arns.subscriptionQueues() },
      },
    }),
  endSubscriptions:
    (sid: string): StatementFactory =>
    (arns) =>
      new iam.PolicyStatement({
        sid,
        actions: ['sns:Unsubscribe'],
        resources: [arns.topic(NAMES.lifecycleTopic)],
      }),
  subscriptionQueues: onQueues((arns) => arns.subscriptionQueues()),
  // The reaper finds abandoned subscription queues by prefix: ListQueues has no resource-level
  // permissions.
  listQueues: (): StatementFactory => () =>
    new iam.PolicyStatement({
      sid: 'FindSubscriptionQueues',
      actions: ['sqs:ListQueues'],
      resources: ['*'],
    }),
  // Signed webhooks (docs/design.md): discovery keeps the subscriptions and lists deliveries;
  // the webhook service reads subscriptions, queues, claims, moves and lists deliveries (a
  // finished one moves in a transaction: Delete and Put, and a new one is condition-checked).
  manageWebhooks: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'ManageWebhooks',
      actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem'],
      resources: [arns.table(NAMES.webhookTable)],
    }),
  queryWebhookIndexes: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'QueryWebhookIndexes',
      actions: ['dynamodb:Query'],
      resources: [arns.tableIndexes(NAMES.webhookTable)],
    }),
  deliverWebhooks: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'DeliverWebhooks',
      actions: [
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:UpdateItem',
        'dynamodb:DeleteItem',
        'dynamodb:ConditionCheckItem',
        // A container's stream is read from the table itself (its head, consistently).
        'dynamodb:Query',
      ],
      resources: [arns.table(NAMES.webhookTable)],
    }),
  findWebhookEventsQueue: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'FindWebhookEventsQueue',
      actions: ['sqs:GetQueueUrl'],
      resources: [arns.queue(NAMES.webhookEventsQueue)],
    }),
  // `berth-*` matches the shared queues too: deleting one would stop berth.
  neverDeleteSharedQueues: (): StatementFactory => (arns) =>
    new iam.PolicyStatement({
      sid: 'NeverDeleteSharedQueues',
      effect: iam.Effect.DENY,
      actions: ['sqs:DeleteQueue'],
      resources: SHARED_QUEUES.map((name) => arns.queue(name)),
    }),
};

/** The store, the topic and the shared queues: every service but the webhook service. */
const storeAndEvents = (extraStoreActions: readonly string[] = []): StatementFactory[] => [
  statement.readWriteTables(extraStoreActions),
  statement.queryIndexes(),
  statement.publishEvents(),
  statement.encryptEvents(),
  statement.findSharedQueues(),
];

/** A workspace start, bounded as every start is (tagged, on berth's cluster, no exec, no resize). */
const startWorkspaces = (): StatementFactory[] => [
  statement.startWorkspaces(),
  statement.neverExecIntoWorkspaces(),
  statement.neverResizeWorkspaces(),
  statement.neverResizeWorkspaceMemory(),
  statement.tagAtLaunch(),
  statement.passWorkspaceRoles(),
];

const SERVICE_STATEMENTS: Readonly<Record<ServiceName, readonly StatementFactory[]>> = {
  discovery: [
    // DescribeTable: `GET /readyz` checks the store.
    ...storeAndEvents(['dynamodb:DescribeTable']),
    ...startWorkspaces(),
    // A `starting` record whose starter vanished is closed by the next discover
    // (ContainerService.closeAbandoned): it lists berth's tasks for one of that generation,
    // stops it if there is one, and deletes the queues.
    statement.describeTasks(),
    statement.listTasks(),
    statement.stopTasks(),
    // A new generation's queues (tagged), their liveness and backlog, and their removal once
    // the container is final.
    statement.containerQueues('ManageContainerQueues', [
      'sqs:CreateQueue',
      'sqs:TagQueue',
      'sqs:GetQueueAttributes',
      'sqs:DeleteQueue',
    ]),
    // Discovery assigns no session (the session service sends a thread's first message); it
    // writes to an input queue only for `POST /v1/sessions/{id}/revert`, which hands the agent
    // a `thread.revert`: never to a shared queue, an output queue or a pool member's.
    statement.containerInputQueues('SendToContainerInputQueues', ['sqs:SendMessage']),
    statement.neverDeleteSharedQueues(),
    statement.subscribeOwnQueue(),
    statement.endSubscriptions('EndOwnSubscription'),
    statement.subscriptionQueues('UseOwnSubscriptionQueue', [
      'sqs:CreateQueue',
      'sqs:TagQueue',
      'sqs:GetQueueAttributes',
      'sqs:SetQueueAttributes',
      'sqs:ReceiveMessage',
      'sqs:DeleteMessage',
      'sqs:DeleteQueue',
    ]),
    statement.readHistory(),
    // `/v1/webhooks/{clientId}` and its deliveries.
    statement.manageWebhooks(),
    statement.queryWebhookIndexes(),
  ],
  // The preview gateway (issue 19): reads a container's record to find its dev server, starts
  // a stopped one exactly as a discover does (ContainerService.findOrStart, quotas included),
  // and records preview activity (a conditional PutItem). It never sends to a container's
  // queues, reads their backlog, or follows the topic.
  'preview-gateway': [
    // DescribeTable: `GET /readyz` checks the store.
    ...storeAndEvents(['dynamodb:DescribeTable']),
    ...startWorkspaces(),
    // Before a new generation, the previous one's task must have ended; an abandoned
    // `starting` record is closed as discovery closes one.
    statement.describeTasks(),
    statement.listTasks(),
    statement.stopTasks(),
    statement.containerQueues('ManageContainerQueues', [
      'sqs:CreateQueue',
      'sqs:TagQueue',
      'sqs:DeleteQueue',
    ]),
    statement.neverDeleteSharedQueues(),
  ],
  session: [
    ...storeAndEvents(),
    statement.consume('ConsumeLifecycleCommands', NAMES.lifecycleQueue),
    // What workspace agents report; each report is checked against the store and its sender.
    statement.consume('ConsumeAgentReports', NAMES.agentReportsQueue),
    ...startWorkspaces(),
    // An abandoned `starting` record met by a `session.assign` is closed as discovery closes
    // one (ContainerService.closeAbandoned); adopting a live task there would need StopTask,
    // which the session service never gets: that call fails and the reaper's sweep closes it.
    statement.describeTasks(),
    statement.listTasks(),
    // A new generation's queues (tagged), the thread's first message, and their removal when
    // the start fails. Nothing here reads a queue's attributes (no backlog check).
    statement.containerQueues('ManageContainerQueues', [
      'sqs:CreateQueue',
      'sqs:TagQueue',
      'sqs:SendMessage',
      'sqs:DeleteQueue',
    ]),
    statement.neverDeleteSharedQueues(),
  ],
  reaper: [
    ...storeAndEvents(),
    statement.describeTasks(),
    statement.listTasks(),
    statement.stopTasks(),
    // Messages in flight keep a container alive; a final container's queues are removed.
    statement.containerQueues('InspectAndRetireContainerQueues', [
      'sqs:GetQueueAttributes',
      'sqs:DeleteQueue',
    ]),
    statement.neverDeleteSharedQueues(),
    // Subscription queues whose owner is gone (no heartbeat for ten minutes).
    statement.listQueues(),
    statement.subscriptionQueues('RetireAbandonedSubscriptionQueues', [
      'sqs:ListQueueTags',
      'sqs:DeleteQueue',
    ]),
    statement.endSubscriptions('EndAbandonedSubscriptions'),
  ],
  'task-watcher': [
    ...storeAndEvents(),
    statement.consume('ConsumeTaskEvents', NAMES.taskEventsQueue),
    // The lifecycle topic's events, through the history's own subscription queue.
    statement.consume('ConsumeHistoryEvents', NAMES.historyQueue),
    statement.keepHistory(),
    statement.describeTasks(),
    statement.listTasks(),
    // Orphans: a task no live record knows is stopped.
    statement.stopTasks(),
    // A stopped container's queues are deleted once its task is gone (no backlog check: the
    // reaper's idle decision reads that, not the watcher).
    statement.containerQueues('RetireContainerQueues', ['sqs:DeleteQueue']),
    statement.neverDeleteSharedQueues(),
  ],
  // It sends requests to addresses tenants choose, so it holds nothing else: no container
  // table, no ECS, no topic, no other queue.
  webhooks: [
    statement.deliverWebhooks(),
    statement.queryWebhookIndexes(),
    statement.findWebhookEventsQueue(),
    statement.consume('ConsumeWebhookEvents', NAMES.webhookEventsQueue),
  ],
};

/**
 * What the warm pool adds (docs/design.md, "The warm pool"), only when it is on: the reaper
 * starts members (RunTask, bounded as for every start) and makes and removes their control
 * queues; discovery sends a claimed member its identity (the session service may already send
 * to container queues). The agent gets nothing new: it reads its control queue with the
 * consumer actions it has on every berth queue, and the reaper deletes that queue later.
 */
const POOL_STATEMENTS: Partial<Record<ServiceName, StatementFactory[]>> = {
  reaper: [
    ...startWorkspaces(),
    statement.poolControlQueues('ManagePoolControlQueues', ['sqs:CreateQueue', 'sqs:TagQueue']),
  ],
  discovery: [statement.poolControlQueues('SendPoolIdentities', ['sqs:SendMessage'])],
  // A preview claims a pool member like a discover.
  'preview-gateway': [statement.poolControlQueues('SendPoolIdentities', ['sqs:SendMessage'])],
};

export function servicePolicyStatements(
  service: ServiceName,
  arns: BerthArns,
  context: ServicePolicyContext,
): iam.PolicyStatement[] {
  const pool = (context.poolSize ?? 0) > 0 ? (POOL_STATEMENTS[service] ?? []) : [];
  return [...SERVICE_STATEMENTS[service], ...pool].map((make) => make(arns, context));
}

/**
 * ECS tasks of this account and region only (confused-deputy protection, as the ECS task
 * role documentation recommends).
 */
export function ecsTasksPrincipal(scope: IConstruct): iam.IPrincipal {
  const stack = Stack.of(scope);
  return new iam.ServicePrincipal('ecs-tasks.amazonaws.com').withConditions({
    ArnLike: { 'aws:SourceArn': `arn:${stack.partition}:ecs:${stack.region}:${Aws.ACCOUNT_ID}:*` },
    StringEquals: { 'aws:SourceAccount': Aws.ACCOUNT_ID },
  });
}
