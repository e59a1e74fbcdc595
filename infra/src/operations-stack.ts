import { Duration, Stack } from 'aws-cdk-lib';
import type { StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import type { InfraConfig } from './config.ts';
import {
  EXPIRY_STAGES,
  LIVE_STATUSES,
  METRICS,
  ORPHAN_KINDS,
  QUOTA_NAMES,
  REUSE_OUTCOMES,
} from './metrics.ts';
import { BerthArns, NAMES, SERVICES, ecsServiceName } from './names.ts';

export interface BerthOperationsStackProps extends StackProps {
  config: InfraConfig;
}

/** The table operations berth's store uses: an alarm's math expression takes at most ten metrics. */
const STORE_OPERATIONS = [
  dynamodb.Operation.GET_ITEM,
  dynamodb.Operation.PUT_ITEM,
  dynamodb.Operation.UPDATE_ITEM,
  dynamodb.Operation.DELETE_ITEM,
  dynamodb.Operation.QUERY,
  dynamodb.Operation.SCAN,
  dynamodb.Operation.BATCH_GET_ITEM,
  dynamodb.Operation.BATCH_WRITE_ITEM,
  dynamodb.Operation.TRANSACT_GET_ITEMS,
  dynamodb.Operation.TRANSACT_WRITE_ITEMS,
];

/**
 * What an operator watches: one dashboard of berth's own metrics (embedded metric format,
 * namespace `Berth`) next to its queues, tables and services, and the alarms of issue 6.
 * Everything is found by name, so this stack deploys before or after the services.
 */
export class BerthOperationsStack extends Stack {
  readonly dashboard: cloudwatch.Dashboard;
  readonly alarmTopic: sns.Topic;
  readonly alarms: cloudwatch.Alarm[] = [];
  private readonly period: Duration;

  constructor(scope: Construct, id: string, props: BerthOperationsStackProps) {
    super(scope, id, props);
    const thresholds = props.config.alarms;
    this.period = Duration.minutes(thresholds.periodMinutes);
    const arns = new BerthArns(this);

    // CloudWatch cannot publish to a topic under the AWS-managed SNS key; this one lets it.
    const alarmKey = new kms.Key(this, 'AlarmKey', {
      alias: 'alias/berth-alarms',
      description: 'Encrypts the berth alarm topic',
      enableKeyRotation: true,
    });
    alarmKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchPublishesAlarms',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:GenerateDataKey', 'kms:Decrypt'],
        resources: ['*'],
      }),
    );
    this.alarmTopic = new sns.Topic(this, 'AlarmTopic', {
      topicName: NAMES.alarmTopic,
      masterKey: alarmKey,
      enforceSSL: true,
    });
    if (thresholds.notificationEmail !== undefined) {
      this.alarmTopic.addSubscription(
        new subscriptions.EmailSubscription(thresholds.notificationEmail),
      );
    }

    const liveContainers = new cloudwatch.MathExpression({
      label: 'Live containers',
      expression: LIVE_STATUSES.map((_, i) => `live${i}`).join(' + '),
      usingMetrics: Object.fromEntries(
        LIVE_STATUSES.map((status, i) => [`live${i}`, this.containersByStatus(status, 'Maximum')]),
      ),
      period: this.period,
    });

    this.alarm('LiveContainers', {
      metric: liveContainers,
      threshold: thresholds.maxLiveContainers,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      description: `More than ${thresholds.maxLiveContainers} live containers (starting, running or terminating)`,
    });
    this.alarm('StartFailures', {
      metric: this.berth(METRICS.containerStartFailures.name, 'Sum'),
      threshold: thresholds.startFailures,
      description: 'Containers failed to start',
    });
    this.alarm('OrphanedSessions', {
      metric: this.berth(METRICS.orphanedSessions.name, 'Sum'),
      threshold: thresholds.orphanedSessions,
      description: 'Sessions found attached to a container that is gone',
    });
    this.alarm('ReaperErrors', {
      metric: this.berth(METRICS.reaperErrors.name, 'Sum'),
      threshold: thresholds.reaperErrors,
      description: 'The reaper failed to stop or sweep',
    });
    this.alarm('WatcherErrors', {
      metric: this.berth(METRICS.watcherErrors.name, 'Sum'),
      threshold: thresholds.watcherErrors,
      description: 'The task watcher failed to apply a task event or to reconcile',
    });

    if (props.config.pool.size > 0) {
      // The warm pool empty for 5 minutes: every miss waits for a cold start. No data (the
      // reaper, which writes the gauge, is down) counts as empty.
      const poolEmpty = new cloudwatch.Alarm(this, 'PoolEmpty', {
        alarmName: 'berth-PoolEmpty',
        alarmDescription: `No free warm-pool member for 5 minutes (pool size ${props.config.pool.size}): misses start cold`,
        metric: this.berth(METRICS.poolFree.name, 'Maximum').with({ period: Duration.minutes(5) }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.LESS_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      });
      poolEmpty.addAlarmAction(new actions.SnsAction(this.alarmTopic));
      poolEmpty.addOkAction(new actions.SnsAction(this.alarmTopic));
      this.alarms.push(poolEmpty);
    }

    const deadLetterQueues = [
      NAMES.lifecycleDlq,
      NAMES.agentReportsDlq,
      NAMES.taskEventsDlq,
      NAMES.historyDlq,
      // An event the webhook service could not queue (its table failing five times).
      NAMES.webhookEventsDlq,
    ].map((name) => sqs.Queue.fromQueueArn(this, `Queue-${name}`, arns.queue(name)));
    for (const dlq of deadLetterQueues) {
      this.alarm(`DeadLetters-${dlq.queueName}`, {
        metric: dlq.metricApproximateNumberOfMessagesVisible({
          period: this.period,
          statistic: 'Maximum',
        }),
        threshold: thresholds.deadLetterMessages,
        description: `Messages in ${dlq.queueName}: they failed 5 times and wait for an operator`,
      });
    }

    const tables = [NAMES.containerTable, NAMES.sessionTable].map((name) =>
      dynamodb.Table.fromTableName(this, `Table-${name}`, name),
    );
    for (const table of tables) {
      this.alarm(`Throttling-${table.tableName}`, {
        metric: table.metricThrottledRequestsForOperations({
          operations: STORE_OPERATIONS,
          period: this.period,
          statistic: 'Sum',
        }),
        threshold: thresholds.throttledRequests,
        description: `DynamoDB throttled requests (ThrottledRequests) on ${table.tableName}`,
      });
    }

    const queues = [NAMES.lifecycleQueue, NAMES.taskEventsQueue].map((name) =>
      sqs.Queue.fromQueueArn(this, `Queue-${name}`, arns.queue(name)),
    );

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: NAMES.dashboard,
      defaultInterval: Duration.hours(6),
    });
    const wide = { width: 12, height: 6 };
    this.dashboard.addWidgets(
      new cloudwatch.AlarmStatusWidget({
        title: 'Alarms',
        alarms: this.alarms,
        width: 24,
        height: 3,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Containers by status',
        // Live statuses only: the reaper counts those (final ones grow without bound).
        left: LIVE_STATUSES.map((status) => this.containersByStatus(status, 'Maximum')),
        stacked: true,
        ...wide,
      }),
      new cloudwatch.GraphWidget({
        title: 'Live containers',
        left: [liveContainers],
        leftAnnotations: [
          { value: thresholds.maxLiveContainers, label: 'alarm', color: '#d62728' },
        ],
        ...wide,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Starts and failures',
        left: [
          this.berth(METRICS.containerStarts.name, 'Sum'),
          this.berth(METRICS.containerStartFailures.name, 'Sum'),
        ],
        ...wide,
      }),
      new cloudwatch.GraphWidget({
        title: 'Reuse: sessions that found a container vs. started one',
        left: REUSE_OUTCOMES.map((outcome) =>
          this.berth(METRICS.containerReused.name, 'Sum', {
            [METRICS.containerReused.dimension]: outcome,
          }),
        ),
        stacked: true,
        ...wide,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Sessions per container',
        left: [
          this.berth(METRICS.sessionsPerContainer.name, 'Average'),
          this.berth(METRICS.sessionsPerContainer.name, 'Maximum'),
        ],
        ...wide,
      }),
      new cloudwatch.GraphWidget({
        title: 'Container lifetime and idle time before stop (seconds)',
        left: [
          this.berth(METRICS.containerLifetimeSeconds.name, 'p50'),
          this.berth(METRICS.containerLifetimeSeconds.name, 'p90'),
        ],
        right: [
          this.berth(METRICS.idleSecondsBeforeStop.name, 'p50'),
          this.berth(METRICS.idleSecondsBeforeStop.name, 'Maximum'),
        ],
        ...wide,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Repairs and errors',
        left: [
          ...ORPHAN_KINDS.map((kind) =>
            this.berth(METRICS.orphansRepaired.name, 'Sum', {
              [METRICS.orphansRepaired.dimension]: kind,
            }).with({
              label: `orphans repaired (${kind})`,
            }),
          ),
          this.berth(METRICS.orphanedSessions.name, 'Sum'),
          this.berth(METRICS.reaperErrors.name, 'Sum'),
          this.berth(METRICS.watcherErrors.name, 'Sum'),
        ],
        ...wide,
      }),
      new cloudwatch.GraphWidget({
        title: 'Queues: backlog and dead letters',
        left: queues.map((queue) =>
          queue.metricApproximateNumberOfMessagesVisible({ period: this.period }),
        ),
        right: deadLetterQueues.map((queue) =>
          queue.metricApproximateNumberOfMessagesVisible({ period: this.period }),
        ),
        ...wide,
      }),
    );
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Policies: quota refusals by quota, maxLifetime notices and stops',
        left: QUOTA_NAMES.map((quota) =>
          this.berth(METRICS.quotaRefusals.name, 'Sum', {
            [METRICS.quotaRefusals.dimension]: quota,
          }).with({ label: `refused (${quota})` }),
        ),
        right: EXPIRY_STAGES.map((stage) =>
          this.berth(METRICS.lifetimeExpiries.name, 'Sum', {
            [METRICS.lifetimeExpiries.dimension]: stage,
          }).with({ label: `maxLifetime ${stage}` }),
        ),
        ...wide,
      }),
    );
    if (props.config.pool.size > 0) {
      this.dashboard.addWidgets(
        new cloudwatch.GraphWidget({
          title: 'Warm pool: members and free',
          left: [
            this.berth(METRICS.poolSize.name, 'Maximum'),
            this.berth(METRICS.poolFree.name, 'Minimum'),
          ],
          ...wide,
        }),
        new cloudwatch.GraphWidget({
          title: 'Warm pool: claims, misses, claim latency (ms)',
          left: [
            this.berth(METRICS.poolClaims.name, 'Sum'),
            this.berth(METRICS.poolMisses.name, 'Sum'),
          ],
          right: [this.berth(METRICS.poolClaimLatency.name, 'p99')],
          ...wide,
        }),
      );
    }
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'DynamoDB capacity used',
        left: tables.flatMap((table) => [
          table.metricConsumedReadCapacityUnits({ period: this.period }),
          table.metricConsumedWriteCapacityUnits({ period: this.period }),
        ]),
        ...wide,
      }),
      new cloudwatch.GraphWidget({
        title: 'Services: CPU utilization (%)',
        left: SERVICES.map(
          (service) =>
            new cloudwatch.Metric({
              namespace: 'AWS/ECS',
              metricName: 'CPUUtilization',
              dimensionsMap: { ClusterName: NAMES.cluster, ServiceName: ecsServiceName(service) },
              statistic: 'Average',
              period: this.period,
              label: service,
            }),
        ),
        ...wide,
      }),
    );
  }

  private berth(
    metricName: string,
    statistic: string,
    dimensionsMap?: Record<string, string>,
  ): cloudwatch.Metric {
    return new cloudwatch.Metric({
      namespace: NAMES.metricsNamespace,
      metricName,
      statistic,
      period: this.period,
      ...(dimensionsMap === undefined ? {} : { dimensionsMap }),
    });
  }

  private containersByStatus(status: string, statistic: string): cloudwatch.Metric {
    return this.berth(METRICS.containersByStatus.name, statistic, {
      [METRICS.containersByStatus.dimension]: status,
    }).with({ label: status });
  }

  private alarm(
    id: string,
    props: {
      metric: cloudwatch.IMetric;
      threshold: number;
      description: string;
      comparisonOperator?: cloudwatch.ComparisonOperator;
    },
  ): cloudwatch.Alarm {
    const alarm = new cloudwatch.Alarm(this, id, {
      alarmName: `berth-${id}`,
      alarmDescription: props.description,
      metric: props.metric,
      threshold: props.threshold,
      evaluationPeriods: 1,
      comparisonOperator:
        props.comparisonOperator ??
        cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // No data means nothing happened: the services emit these metrics only when it does.
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    alarm.addAlarmAction(new actions.SnsAction(this.alarmTopic));
    alarm.addOkAction(new actions.SnsAction(this.alarmTopic));
    this.alarms.push(alarm);
    return alarm;
  }
}
