import { resolve } from 'node:path';
import { Lifecycle, type CoreDeps, type CoreLogger } from '@berth/core';
import { formatDuration, systemClock, type BerthConfig } from '@berth/domain';
import { DynamoStateStore, ensureTables } from '@berth/dynamodb';
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
import type { ServiceMetrics } from './metrics.ts';

export interface Wiring {
  deps: CoreDeps;
  lifecycle: Lifecycle;
  messaging: MessagingResources;
  clients: {
    dynamodb: DynamoDBClient;
    sqs: ReturnType<typeof createSqsClient>;
    sns: ReturnType<typeof createSnsClient>;
  };
  close(): void;
}

/** Where local workspaces live; an absolute path so every process agrees on it. */
export function localWorkspaceRoot(config: BerthConfig): string {
  return resolve(config.dataDir, 'workspaces');
}

export function createRuntime(config: BerthConfig): EcsRuntime {
  if (config.runtime === 'local') {
    // The local runtime is a stand-in for the ECS control plane: same API, same adapter.
    return new EcsRuntime({
      client: createEcsClient({ endpoint: `http://127.0.0.1:${config.runtimePort}` }),
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
    client: createEcsClient({}),
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
 * Builds the adapters and the use cases for one service process. With `bootstrap` it
 * creates missing tables, queues and the topic (the local stack); otherwise it expects them
 * to exist (AWS, where the data stack owns them).
 */
export async function wire(
  config: BerthConfig,
  options: { log: CoreLogger; metrics?: ServiceMetrics; bootstrap?: boolean },
): Promise<Wiring> {
  const dynamodb = new DynamoDBClient({});
  const sqs = createSqsClient();
  const sns = createSnsClient();
  const names = { containerTable: config.containerTable, sessionTable: config.sessionTable };
  const bootstrap = options.bootstrap ?? config.runtime === 'local';
  if (bootstrap) await ensureTables(dynamodb, names);
  const messaging = bootstrap ? await ensureMessaging({ sqs, sns }) : await resolveMessaging({ sqs, sns });

  const deps: CoreDeps = {
    store: new DynamoStateStore({ client: dynamodb, ...names }),
    runtime: createRuntime(config),
    queues: new SqsContainerQueues({ sqs }),
    publisher: new SnsEventPublisher({ sns, topicArn: messaging.topicArn }),
    clock: systemClock,
    log: options.log,
    ...(options.metrics ? { metrics: options.metrics.core } : {}),
    settings: {
      maxSessions: config.maxSessions,
      idleTimeoutMs: config.idleTimeoutMs,
      sessionTtlMs: config.sessionTtlMs,
      shutdownGraceMs: config.shutdownGraceMs,
      startTimeoutMs: config.startTimeoutMs,
      agentEnvironment: {
        BERTH_SHUTDOWN_GRACE: formatDuration(config.shutdownGraceMs),
        ...(config.workloadCommand ? { BERTH_WORKLOAD_COMMAND: config.workloadCommand } : {}),
      },
      repoUrlFor: (key) =>
        config.repoUrlTemplate
          ?.replaceAll('{clientId}', key.clientId)
          .replaceAll('{projectId}', key.projectId),
    },
  };
  return {
    deps,
    lifecycle: new Lifecycle(deps),
    messaging,
    clients: { dynamodb, sqs, sns },
    close() {
      dynamodb.destroy();
      sqs.destroy();
      sns.destroy();
    },
  };
}
