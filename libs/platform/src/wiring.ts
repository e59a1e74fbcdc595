import { resolve } from 'node:path';
import { LifecycleHistory, UseCases, type CoreDeps, type PoolDeps } from '@berth/core';
import { withStepFaults } from './step-faults.ts';
import { BareRepositories } from './local-repos.ts';
import {
  ConfigError,
  InvalidArgumentError,
  formatDuration,
  systemClock,
  type BerthConfig,
  type Logger,
  type ContainerKey,
  type Runtime,
} from '@berth/domain';
import {
  DynamoHistoryStore,
  DynamoStateStore,
  ensureHistoryTable,
  ensureTables,
  ensureWebhookTable,
} from '@berth/dynamodb';
import { EcsRuntime, createEcsClient } from '@berth/ecs';
import {
  SnsEventPublisher,
  SqsContainerQueues,
  createSnsClient,
  createSqsClient,
  ensureMessaging,
  resolveMessaging,
  type MessagingResources,
} from '@berth/messaging';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { awsCallRecording, recordAwsCalls, type AwsCallRecording } from './aws-calls/recorder.ts';
import type { ServiceMetrics } from './metrics.ts';

export interface Wiring {
  deps: CoreDeps;
  useCases: UseCases;
  /** The lifecycle history (issue 18): written by the task watcher, read by discovery. */
  history: LifecycleHistory;
  messaging: MessagingResources;
  clients: {
    dynamodb: DynamoDBClient;
    sqs: ReturnType<typeof createSqsClient>;
    sns: ReturnType<typeof createSnsClient>;
  };
  close(): void;
}

/** A runtime whose stopTask only logs: the reaper carries the recorded stop out. */
function recordOnlyStops(runtime: Runtime, log: Logger): Runtime {
  return {
    workspacePathFor: (key) => runtime.workspacePathFor(key),
    startTask: (spec) => runtime.startTask(spec),
    describeTask: (taskArn) => runtime.describeTask(taskArn),
    listTasks: () => runtime.listTasks(),
    stopTask: (taskArn, reason) => {
      log.info({ taskArn, reason }, 'stop recorded; the reaper stops the task');
      return Promise.resolve();
    },
  };
}

/** Where local workspaces live; an absolute path so every process agrees on it. */
export function localWorkspaceRoot(config: BerthConfig): string {
  return resolve(config.dataDir, 'workspaces');
}

/** Where the AWS calls of one service are recorded (BERTH_AWS_CALL_LOG), if anywhere. */
export interface CallRecording extends AwsCallRecording {
  service: string;
}

function recorded<Client extends Parameters<typeof recordAwsCalls>[0]>(
  client: Client,
  recording: CallRecording | undefined,
): Client {
  return recording ? recordAwsCalls(client, recording) : client;
}

export function createRuntime(config: BerthConfig, recording?: CallRecording): EcsRuntime {
  if (config.runtime === 'local') {
    // The local runtime is a stand-in for the ECS control plane: same API, same adapter.
    return new EcsRuntime({
      client: recorded(
        createEcsClient({ endpoint: `http://127.0.0.1:${config.runtimePort}` }),
        recording,
      ),
      cluster: 'berth-local',
      taskDefinition: 'berth-workspace',
      containerName: config.ecs.containerName,
      subnets: [],
      securityGroups: [],
      workspaceRoot: localWorkspaceRoot(config),
      launchType: undefined,
    });
  }
  return new EcsRuntime({
    client: recorded(createEcsClient({}), recording),
    cluster: config.ecs.cluster ?? '',
    taskDefinition: config.ecs.taskDefinition ?? '',
    containerName: config.ecs.containerName,
    subnets: config.ecs.subnets,
    securityGroups: config.ecs.securityGroups,
    assignPublicIp: config.ecs.assignPublicIp,
    workspaceRoot: '/workspace',
    launchType: 'FARGATE',
  });
}

/**
 * The warm pool's parts. On the local stack a project's repository is a bare repository the
 * local runtime makes when it starts a task for that project; a claimed member was started
 * for no project, so the claim makes it (same place, same initial commit).
 */
function poolDeps(
  config: BerthConfig,
  store: DynamoStateStore,
  queues: SqsContainerQueues,
  runtime: EcsRuntime,
): PoolDeps {
  const repos =
    config.runtime === 'local' && config.repoUrlTemplate === undefined
      ? new BareRepositories(resolve(config.dataDir, 'repos'))
      : undefined;
  return {
    size: config.poolSize,
    maxAgeMs: config.poolMaxAgeMs,
    store,
    queues,
    runtime,
    ...(repos
      ? {
          repositoryFor: async (key: ContainerKey) =>
            (await repos.ensure(key.clientId, key.projectId)).path,
        }
      : {}),
  };
}

/** The lifecycle topic of a service that does not set up messaging itself: its environment's. */
function lifecycleTopicArn(config: BerthConfig): string {
  const arn = config.lifecycleTopicArn;
  if (!arn) {
    throw new ConfigError([
      new InvalidArgumentError(
        'BERTH_LIFECYCLE_TOPIC_ARN is required: the lifecycle topic is known by its ARN, never looked up',
        'BERTH_LIFECYCLE_TOPIC_ARN',
      ),
    ]);
  }
  return arn;
}

/**
 * Builds the adapters and the use cases for one service process. With `bootstrap` it
 * creates missing tables, queues and the topic (the local stack); otherwise it expects them
 * to exist (AWS, where the data stack owns them).
 */
export async function wire(
  config: BerthConfig,
  options: {
    /** The service's name as its task role knows it; names its recorded AWS calls. */
    service: string;
    log: Logger;
    metrics?: ServiceMetrics;
    bootstrap?: boolean;
    /**
     * False for services whose role may not stop tasks (the session service): their stops
     * are recorded in the store and carried out by the reaper's next tick.
     */
    mayStopTasks?: boolean;
    /**
     * False for services whose role may not start tasks or create queues (the reaper, the
     * task watcher): an abandoned start is closed from the runtime's task list there, instead
     * of through the generation's start token (which may start its task).
     */
    mayStartTasks?: boolean;
  },
): Promise<Wiring> {
  const recordingFromConfig = awsCallRecording(config.awsCallLogPath, config.rehearsalTarget);
  const recording = recordingFromConfig && { service: options.service, ...recordingFromConfig };
  const dynamodb = recorded(new DynamoDBClient({}), recording);
  const sqs = recorded(createSqsClient(), recording);
  const sns = recorded(createSnsClient(), recording);
  const names = { containerTable: config.containerTable, sessionTable: config.sessionTable };
  const bootstrap = options.bootstrap ?? config.runtime === 'local';
  if (bootstrap) {
    await ensureTables(dynamodb, names);
    await ensureWebhookTable(dynamodb, config.webhooks.table);
    await ensureHistoryTable(dynamodb, config.historyTable);
  }
  const messaging = bootstrap
    ? await ensureMessaging({ sqs, sns })
    : await resolveMessaging({ sqs, sns, topicArn: lifecycleTopicArn(config) });

  const store = new DynamoStateStore({ client: dynamodb, ...names });
  const runtime = createRuntime(config, recording);
  const queues = new SqsContainerQueues({ sqs });
  const deps: CoreDeps = {
    store,
    runtime: options.mayStopTasks === false ? recordOnlyStops(runtime, options.log) : runtime,
    queues,
    publisher: new SnsEventPublisher({ sns, topicArn: messaging.topicArn }),
    clock: systemClock,
    policies: store,
    log: options.log,
    ...(options.metrics ? { metrics: options.metrics.core } : {}),
    ...(config.poolSize > 0 ? { pool: poolDeps(config, store, queues, runtime) } : {}),
    settings: {
      ...(options.mayStartTasks === false ? { mayStartTasks: false } : {}),
      maxSessions: config.maxSessions,
      idleTimeoutMs: config.idleTimeoutMs,
      sessionTtlMs: config.sessionTtlMs,
      shutdownGraceMs: config.shutdownGraceMs,
      startTimeoutMs: config.startTimeoutMs,
      policyIdleTimeoutMinMs: config.policyIdleTimeoutMinMs,
      policyIdleTimeoutMaxMs: config.policyIdleTimeoutMaxMs,
      expiryNoticeMs: config.expiryNoticeMs,
      sweepIntervalMs: config.sweepIntervalMs,
      agentEnvironment: {
        BERTH_SHUTDOWN_GRACE: formatDuration(config.shutdownGraceMs),
        BERTH_CHECKPOINT_PUSH_INTERVAL: formatDuration(config.checkpointPushIntervalMs),
        // Where the agent reports its worktrees and checkpoints (thread.ready, checkpoint.record):
        // a queue of its own, never the lifecycle commands queue (docs/security.md).
        BERTH_AGENT_REPORTS_URL: messaging.agentReportsUrl,
        ...(config.workloadCommand ? { BERTH_WORKLOAD_COMMAND: config.workloadCommand } : {}),
      },
      repoUrlFor: (key) =>
        config.repoUrlTemplate
          ?.replaceAll('{clientId}', key.clientId)
          .replaceAll('{projectId}', key.projectId),
    },
  };
  const metrics = options.metrics;
  const history = new LifecycleHistory({
    store: new DynamoHistoryStore({
      client: dynamodb,
      historyTable: config.historyTable,
      retentionMs: config.historyRetentionMs,
    }),
    clock: systemClock,
    retentionMs: config.historyRetentionMs,
    metricClients: config.usageMetricClients,
    ...(metrics
      ? {
          usageMetric: (name, value, client) =>
            metrics.emf(name, value, name === 'ContainerHours' ? 'None' : 'Count', {
              ClientId: client,
            }),
        }
      : {}),
  });
  const faulty = withStepFaults(deps, { rate: config.stepFaultRate, log: options.log });
  return {
    deps: faulty,
    useCases: new UseCases(faulty),
    history,
    messaging,
    clients: { dynamodb, sqs, sns },
    close() {
      dynamodb.destroy();
      sqs.destroy();
      sns.destroy();
    },
  };
}
