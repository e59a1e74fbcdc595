import type { Template } from 'aws-cdk-lib/assertions';
import { renderDeep, resourcesOf, synthesize } from './fixture.ts';
import type { Synthesized } from './fixture.ts';

let app: Synthesized;
let template: Template;

// Thresholds other than the defaults, to see that they come from configuration.
const alarms = {
  maxLiveContainers: 75,
  startFailures: 3,
  orphanedSessions: 2,
  reaperErrors: 4,
  watcherErrors: 5,
  deadLetterMessages: 6,
  throttledRequests: 7,
  periodMinutes: 15,
};

beforeAll(() => {
  app = synthesize({ alarms });
  template = app.template(app.stacks.operations);
});
afterAll(() => app.cleanup());

type Alarm = Record<string, unknown>;

function alarm(name: string): Alarm {
  const found = resourcesOf(template, 'AWS::CloudWatch::Alarm').find(
    ([, props]) => props['AlarmName'] === name,
  );
  if (found === undefined) throw new Error(`no alarm ${name}`);
  return found[1];
}

const berthMetric = (
  metricName: string,
  stat: string,
  dimensions?: Record<string, string>,
): Alarm => ({
  Namespace: 'Berth',
  MetricName: metricName,
  Statistic: stat,
  Period: 900,
  ...(dimensions === undefined
    ? {}
    : { Dimensions: Object.entries(dimensions).map(([Name, Value]) => ({ Name, Value })) }),
});

describe('BerthOperationsStack alarms', () => {
  test('one alarm per condition of issue 6, all notifying the encrypted alarm topic', () => {
    const names = resourcesOf(template, 'AWS::CloudWatch::Alarm').map(
      ([, props]) => props['AlarmName'],
    );
    expect(names.sort()).toEqual(
      [
        'berth-LiveContainers',
        'berth-StartFailures',
        'berth-OrphanedSessions',
        'berth-ReaperErrors',
        'berth-WatcherErrors',
        'berth-DeadLetters-berth-lifecycle-commands-dlq',
        'berth-DeadLetters-berth-agent-reports-dlq',
        'berth-DeadLetters-berth-task-events-dlq',
        'berth-DeadLetters-berth-history-events-dlq',
        'berth-DeadLetters-berth-webhook-events-dlq',
        'berth-Throttling-berth-containers',
        'berth-Throttling-berth-sessions',
      ].sort(),
    );
    const topicId = Object.keys(template.findResources('AWS::SNS::Topic'))[0]!;
    for (const [, props] of resourcesOf(template, 'AWS::CloudWatch::Alarm')) {
      expect(props['AlarmActions']).toEqual([{ Ref: topicId }]);
      expect(props['TreatMissingData']).toBe('notBreaching');
      expect(props['EvaluationPeriods']).toBe(1);
    }
    template.hasResourceProperties('AWS::SNS::Topic', { TopicName: 'berth-alarms' });
    template.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  test('more than maxLiveContainers live containers: starting + running + terminating', () => {
    const live = alarm('berth-LiveContainers');
    expect(live['Threshold']).toBe(75);
    expect(live['ComparisonOperator']).toBe('GreaterThanThreshold');
    const metrics = live['Metrics'] as Record<string, unknown>[];
    const expression = metrics.find((m) => m['Expression'] !== undefined)!;
    expect(expression['Expression']).toBe('live0 + live1 + live2');
    const byId = Object.fromEntries(
      metrics.filter((m) => m['MetricStat'] !== undefined).map((m) => [m['Id'], m['MetricStat']]),
    );
    expect(byId).toEqual({
      live0: {
        Metric: {
          Namespace: 'Berth',
          MetricName: 'ContainersByStatus',
          Dimensions: [{ Name: 'Status', Value: 'starting' }],
        },
        Period: 900,
        Stat: 'Maximum',
      },
      live1: {
        Metric: {
          Namespace: 'Berth',
          MetricName: 'ContainersByStatus',
          Dimensions: [{ Name: 'Status', Value: 'running' }],
        },
        Period: 900,
        Stat: 'Maximum',
      },
      live2: {
        Metric: {
          Namespace: 'Berth',
          MetricName: 'ContainersByStatus',
          Dimensions: [{ Name: 'Status', Value: 'terminating' }],
        },
        Period: 900,
        Stat: 'Maximum',
      },
    });
  });

  test.each([
    ['berth-StartFailures', 'ContainerStartFailures', 3],
    ['berth-OrphanedSessions', 'OrphanedSessions', 2],
    ['berth-ReaperErrors', 'ReaperErrors', 4],
    ['berth-WatcherErrors', 'WatcherErrors', 5],
  ])('%s: %s at or above its configured threshold', (name, metricName, threshold) => {
    expect(alarm(name)).toMatchObject({
      ...berthMetric(metricName, 'Sum'),
      Threshold: threshold,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
  });

  test.each([
    'berth-lifecycle-commands-dlq',
    'berth-agent-reports-dlq',
    'berth-task-events-dlq',
    'berth-history-events-dlq',
    'berth-webhook-events-dlq',
  ])('any message in %s', (queueName) => {
    expect(alarm(`berth-DeadLetters-${queueName}`)).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [{ Name: 'QueueName', Value: queueName }],
      Statistic: 'Maximum',
      Threshold: 6,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
  });

  test.each(['berth-containers', 'berth-sessions'])(
    'DynamoDB ThrottledRequests on %s, summed over its operations',
    (tableName) => {
      const throttling = alarm(`berth-Throttling-${tableName}`);
      expect(throttling['Threshold']).toBe(7);
      const metrics = throttling['Metrics'] as Record<string, unknown>[];
      const stats = metrics
        .filter((m) => m['MetricStat'] !== undefined)
        .map((m) => renderDeep(m['MetricStat']));
      // An alarm's expression takes at most ten metrics.
      expect(stats.length).toBeGreaterThan(0);
      expect(stats.length).toBeLessThanOrEqual(10);
      for (const stat of stats) {
        expect(stat).toMatchObject({
          Metric: {
            Namespace: 'AWS/DynamoDB',
            MetricName: 'ThrottledRequests',
            Dimensions: expect.arrayContaining([{ Name: 'TableName', Value: tableName }]),
          },
          Stat: 'Sum',
        });
      }
      const operations = stats.map(
        (stat) =>
          (
            stat as { Metric: { Dimensions: { Name: string; Value: string }[] } }
          ).Metric.Dimensions.find((d) => d.Name === 'Operation')!.Value,
      );
      expect(operations).toEqual(
        expect.arrayContaining(['GetItem', 'PutItem', 'UpdateItem', 'Query', 'TransactWriteItems']),
      );
    },
  );
});

describe('BerthOperationsStack dashboard', () => {
  test('shows every berth metric with its dimensions, the queues and the services', () => {
    const [, dashboard] = resourcesOf(template, 'AWS::CloudWatch::Dashboard')[0]!;
    expect(dashboard['DashboardName']).toBe('berth');
    const body = JSON.stringify(renderDeep(dashboard['DashboardBody']));
    for (const metric of [
      'ContainersByStatus',
      'SessionsPerContainer',
      'ContainerLifetimeSeconds',
      'IdleSecondsBeforeStop',
      'ContainerReused',
      'ContainerStarts',
      'ContainerStartFailures',
      'OrphansRepaired',
      'OrphanedSessions',
      'ReaperErrors',
      'WatcherErrors',
    ]) {
      expect(body).toContain(`\\"Berth\\",\\"${metric}\\"`);
    }
    for (const status of ['starting', 'running', 'terminating']) {
      expect(body).toContain(`\\"ContainersByStatus\\",\\"Status\\",\\"${status}\\"`);
    }
    // Final statuses are not counted by the reaper: no widget may wait for them.
    for (const status of ['stopped', 'failed']) {
      expect(body).not.toContain(`\\"ContainersByStatus\\",\\"Status\\",\\"${status}\\"`);
    }
    for (const outcome of ['reused', 'created'])
      expect(body).toContain(`\\"ContainerReused\\",\\"Outcome\\",\\"${outcome}\\"`);
    for (const kind of ['record', 'task'])
      expect(body).toContain(`\\"OrphansRepaired\\",\\"Kind\\",\\"${kind}\\"`);
    // Quota refusals by quota name only (a bounded set; never by client), expiries by stage.
    for (const quota of [
      'maxLiveContainersPerUser',
      'maxLiveContainersPerClient',
      'maxProjectsPerClient',
    ])
      expect(body).toContain(`\\"QuotaRefusals\\",\\"Quota\\",\\"${quota}\\"`);
    for (const stage of ['notice', 'stop'])
      expect(body).toContain(`\\"LifetimeExpiries\\",\\"Stage\\",\\"${stage}\\"`);
    for (const service of ['discovery', 'session', 'reaper', 'task-watcher']) {
      expect(body).toContain(`\\"ServiceName\\",\\"berth-${service}\\"`);
    }
    for (const queueName of ['berth-lifecycle-commands', 'berth-task-events-dlq'])
      expect(body).toContain(queueName);
  });
});

describe('BerthOperationsStack with the warm pool on', () => {
  let pooled: Synthesized;
  let pooledTemplate: Template;

  beforeAll(() => {
    pooled = synthesize({ pool: { size: 3 } });
    pooledTemplate = pooled.template(pooled.stacks.operations);
  });
  afterAll(() => pooled.cleanup());

  test('alarms when no pool member is free for 5 minutes (no data counts as empty)', () => {
    const found = resourcesOf(pooledTemplate, 'AWS::CloudWatch::Alarm').find(
      ([, props]) => props['AlarmName'] === 'berth-PoolEmpty',
    );
    expect(found?.[1]).toMatchObject({
      Namespace: 'Berth',
      MetricName: 'PoolFree',
      Statistic: 'Maximum',
      Period: 300,
      Threshold: 1,
      ComparisonOperator: 'LessThanThreshold',
      EvaluationPeriods: 1,
      TreatMissingData: 'breaching',
    });
  });

  test('shows the pool metrics; without the pool (the default) neither alarm nor widget exists', () => {
    const body = JSON.stringify(renderDeep(pooledTemplate.toJSON()));
    for (const name of ['PoolSize', 'PoolFree', 'PoolClaims', 'PoolMisses', 'PoolClaimLatency'])
      expect(body).toContain(name);
    const names = resourcesOf(template, 'AWS::CloudWatch::Alarm').map(([, p]) => p['AlarmName']);
    expect(names).not.toContain('berth-PoolEmpty');
    expect(JSON.stringify(renderDeep(template.toJSON()))).not.toContain('PoolFree');
  });
});
