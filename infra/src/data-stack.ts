import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import type { InfraConfig } from './config.ts';
import { BerthArns, NAMES, PARAMS } from './names.ts';

export interface BerthDataStackProps extends StackProps {
  config: InfraConfig;
}

/** A dead-letter queue receives a message after this many failed receives (the contract's 5). */
export const MAX_RECEIVE_COUNT = 5;

interface GsiSpec {
  indexName: string;
  partitionKey: string;
  sortKey: string;
}

/** The contract's indexes; `idle-index` and `active-index` are sparse (keys set only while it applies). */
export const CONTAINER_INDEXES: readonly GsiSpec[] = [
  { indexName: 'clientId-index', partitionKey: 'clientId', sortKey: 'containerId' },
  { indexName: 'userId-index', partitionKey: 'userId', sortKey: 'containerId' },
  { indexName: 'clientProject-index', partitionKey: 'clientProject', sortKey: 'userId' },
  { indexName: 'status-index', partitionKey: 'status', sortKey: 'containerId' },
  { indexName: 'idle-index', partitionKey: 'idleKey', sortKey: 'idleSince' },
  // Lifecycle policies (docs/design.md): when a running container with a policy is next due.
  { indexName: 'due-index', partitionKey: 'dueKey', sortKey: 'dueAt' },
];
/** The lifecycle history's (issue 18), each sorted by `at` (occurredAt), read newest first. */
export const HISTORY_INDEXES: readonly GsiSpec[] = [
  { indexName: 'container-index', partitionKey: 'containerId', sortKey: 'at' },
  { indexName: 'session-index', partitionKey: 'sessionId', sortKey: 'at' },
  { indexName: 'client-index', partitionKey: 'clientId', sortKey: 'at' },
  { indexName: 'clientUser-index', partitionKey: 'clientUser', sortKey: 'at' },
  { indexName: 'day-index', partitionKey: 'day', sortKey: 'at' },
  // Sparse: the daily usage rollup (usageKey = clientId/projectId), kept beyond the history.
  { indexName: 'usage-index', partitionKey: 'usageDay', sortKey: 'usageKey' },
];
/** The webhook table's indexes (libs/adapters/dynamodb tables.ts, WEBHOOK_INDEXES). */
export const WEBHOOK_INDEXES: readonly GsiSpec[] = [
  { indexName: 'client-index', partitionKey: 'clientId', sortKey: 'createdKey' },
  { indexName: 'clientStatus-index', partitionKey: 'clientStatus', sortKey: 'createdKey' },
  { indexName: 'due-index', partitionKey: 'dueKey', sortKey: 'nextAttemptAt' },
];
export const SESSION_INDEXES: readonly GsiSpec[] = [
  { indexName: 'container-index', partitionKey: 'containerId', sortKey: 'sessionId' },
  { indexName: 'thread-index', partitionKey: 'threadId', sortKey: 'sessionId' },
  { indexName: 'active-index', partitionKey: 'activeKey', sortKey: 'lastActivityAt' },
];

/**
 * The stateful stack: everything that must survive any service deploy. Tables and the
 * secret are retained and protected against deletion; queues and the topic have stable
 * names that services address directly.
 */
export class BerthDataStack extends Stack {
  readonly containerTable: dynamodb.Table;
  readonly sessionTable: dynamodb.Table;
  readonly historyTable: dynamodb.Table;
  readonly historyQueue: sqs.Queue;
  readonly historyDlq: sqs.Queue;
  readonly webhookTable: dynamodb.Table;
  readonly webhookEventsQueue: sqs.Queue;
  readonly webhookEventsDlq: sqs.Queue;
  readonly lifecycleQueue: sqs.Queue;
  readonly lifecycleDlq: sqs.Queue;
  readonly agentReportsQueue: sqs.Queue;
  readonly agentReportsDlq: sqs.Queue;
  readonly taskEventsQueue: sqs.Queue;
  readonly taskEventsDlq: sqs.Queue;
  readonly lifecycleTopic: sns.Topic;
  readonly eventsKey: kms.Key;
  readonly authSecret: secretsmanager.Secret;
  readonly gitCredentialsSecret: secretsmanager.Secret;

  constructor(scope: Construct, id: string, props: BerthDataStackProps) {
    super(scope, id, props);
    const arns = new BerthArns(this);

    this.containerTable = this.table(
      'ContainerTable',
      NAMES.containerTable,
      'containerId',
      CONTAINER_INDEXES,
    );
    this.sessionTable = this.table(
      'SessionTable',
      NAMES.sessionTable,
      'sessionId',
      SESSION_INDEXES,
    );

    // The lifecycle history (issue 18): one item per event, deleted by TTL after the retention.
    this.historyTable = this.table('HistoryTable', NAMES.historyTable, 'eventId', HISTORY_INDEXES);
    // Webhook subscriptions (with their signing secrets) and deliveries. Encrypted at rest by
    // DynamoDB as every table; the secrets are not encrypted again by berth (docs/design.md).
    this.webhookTable = this.table('WebhookTable', NAMES.webhookTable, 'pk', WEBHOOK_INDEXES, 'sk');

    [this.lifecycleQueue, this.lifecycleDlq] = this.queueWithDlq(
      'Lifecycle',
      NAMES.lifecycleQueue,
      NAMES.lifecycleDlq,
    );
    // Workspace agents report here (they may only send); the session service reads it.
    [this.agentReportsQueue, this.agentReportsDlq] = this.queueWithDlq(
      'AgentReports',
      NAMES.agentReportsQueue,
      NAMES.agentReportsDlq,
    );
    [this.taskEventsQueue, this.taskEventsDlq] = this.queueWithDlq(
      'TaskEvents',
      NAMES.taskEventsQueue,
      NAMES.taskEventsDlq,
    );

    // A customer-managed key, not alias/aws/sns: the AWS-managed key's policy cannot be
    // changed, which would keep encrypted queues and other accounts from subscribing.
    this.eventsKey = new kms.Key(this, 'EventsKey', {
      alias: 'alias/berth-events',
      description: 'Encrypts the berth lifecycle topic',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.lifecycleTopic = new sns.Topic(this, 'LifecycleTopic', {
      topicName: NAMES.lifecycleTopic,
      masterKey: this.eventsKey,
      enforceSSL: true,
    });

    // The history's own subscription (raw delivery): publishing never waits on the history, and
    // a failing history write is retried from this queue, then dead-lettered (docs/design.md).
    [this.historyQueue, this.historyDlq] = this.lifecycleSubscription(
      'HistoryEvents',
      NAMES.historyQueue,
      NAMES.historyDlq,
    );
    // The webhook service follows every lifecycle event through a queue of its own.
    [this.webhookEventsQueue, this.webhookEventsDlq] = this.lifecycleSubscription(
      'WebhookEvents',
      NAMES.webhookEventsQueue,
      NAMES.webhookEventsDlq,
    );

    this.authSecret = new secretsmanager.Secret(this, 'AuthSecret', {
      secretName: NAMES.authSecret,
      description: 'HS256 key for berth bearer tokens (BERTH_AUTH_SECRET)',
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // One per deployment: ECS injects it into the workspace task definition, and RunTask
    // cannot override a task's secrets per client (docs/security.md). The generated password
    // is a placeholder that no git host accepts: replace it with a token (docs/deploy.md).
    this.gitCredentialsSecret = new secretsmanager.Secret(this, 'GitCredentials', {
      secretName: NAMES.gitCredentialsSecret,
      description:
        'HTTPS credentials the workspaces clone and push with: {"username","password"} (BERTH_GIT_USERNAME, BERTH_GIT_PASSWORD)',
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ username: 'berth' }),
        generateStringKey: 'password',
        passwordLength: 40,
        excludePunctuation: true,
      },
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // ECS reports every task of the account; only berth's cluster matters here.
    new events.Rule(this, 'TaskStateChanges', {
      ruleName: NAMES.taskStateRule,
      description: 'ECS task state changes of the berth cluster, for the task watcher',
      eventPattern: {
        source: ['aws.ecs'],
        detailType: ['ECS Task State Change'],
        detail: { clusterArn: [arns.cluster()] },
      },
      targets: [new targets.SqsQueue(this.taskEventsQueue)],
    });

    // No sweep schedule: the reaper sweeps on its own timer, at start and every
    // BERTH_SWEEP_INTERVAL (apps/reaper). A sweep is idempotent, so a restart that sweeps early
    // or a second replica costs a few reads; a queue fed by EventBridge would add a consumer,
    // a grant, a dead-letter queue and an alarm for nothing the timer does not already give,
    // and the local stack, which has no EventBridge, would still need the timer.

    const publish: [string, string][] = [
      [PARAMS.containerTableArn, this.containerTable.tableArn],
      [PARAMS.containerTableName, this.containerTable.tableName],
      [PARAMS.sessionTableArn, this.sessionTable.tableArn],
      [PARAMS.sessionTableName, this.sessionTable.tableName],
      [PARAMS.lifecycleQueueArn, this.lifecycleQueue.queueArn],
      [PARAMS.lifecycleQueueUrl, this.lifecycleQueue.queueUrl],
      [PARAMS.agentReportsQueueArn, this.agentReportsQueue.queueArn],
      [PARAMS.agentReportsQueueUrl, this.agentReportsQueue.queueUrl],
      [PARAMS.taskEventsQueueArn, this.taskEventsQueue.queueArn],
      [PARAMS.taskEventsQueueUrl, this.taskEventsQueue.queueUrl],
      [PARAMS.webhookTableArn, this.webhookTable.tableArn],
      [PARAMS.lifecycleTopicArn, this.lifecycleTopic.topicArn],
      [PARAMS.eventsKeyArn, this.eventsKey.keyArn],
      [PARAMS.authSecretArn, this.authSecret.secretArn],
      [PARAMS.gitCredentialsSecretArn, this.gitCredentialsSecret.secretArn],
    ];
    for (const [parameterName, stringValue] of publish) {
      new ssm.StringParameter(this, `Param${parameterName.replaceAll(/[^A-Za-z0-9]/g, '')}`, {
        parameterName,
        stringValue,
      });
    }
  }

  private table(
    id: string,
    tableName: string,
    key: string,
    indexes: readonly GsiSpec[],
    sortKey?: string,
  ): dynamodb.Table {
    const table = new dynamodb.Table(this, id, {
      tableName,
      partitionKey: { name: key, type: dynamodb.AttributeType.STRING },
      ...(sortKey === undefined
        ? {}
        : { sortKey: { name: sortKey, type: dynamodb.AttributeType.STRING } }),
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiresAt',
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const index of indexes) {
      table.addGlobalSecondaryIndex({
        indexName: index.indexName,
        partitionKey: { name: index.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: { name: index.sortKey, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
    return table;
  }

  private queueWithDlq(
    id: string,
    queueName: string,
    dlqName: string,
    retentionPeriod = Duration.days(4),
  ): [sqs.Queue, sqs.Queue] {
    const dlq = new sqs.Queue(this, `${id}Dlq`, {
      queueName: dlqName,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const queue = new sqs.Queue(this, `${id}Queue`, {
      queueName,
      encryption: sqs.QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      // Consumers extend visibility while a message is being handled; this only bounds a
      // consumer that died holding it.
      visibilityTimeout: Duration.seconds(60),
      retentionPeriod,
      deadLetterQueue: { queue: dlq, maxReceiveCount: MAX_RECEIVE_COUNT },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    return [queue, dlq];
  }

  /** A queue (and its DLQ) that receives every lifecycle event raw from the topic. */
  private lifecycleSubscription(
    id: string,
    queueName: string,
    dlqName: string,
  ): [sqs.Queue, sqs.Queue] {
    const [queue, dlq] = this.queueWithDlq(id, queueName, dlqName);
    this.lifecycleTopic.addSubscription(
      new subscriptions.SqsSubscription(queue, { rawMessageDelivery: true }),
    );
    return [queue, dlq];
  }
}
