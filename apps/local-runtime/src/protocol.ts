/**
 * The parts of the ECS JSON protocol (awsJson1_1) the local runtime speaks: the errors it
 * answers with and how a task looks on the wire. Timestamps are epoch seconds, as ECS sends.
 */
import type { TaskState } from './task.ts';

export const ECS_TARGET_PREFIX = 'AmazonEC2ContainerServiceV20141113.';

/** An ECS error: `{"__type", "message"}` with its HTTP status (400 unless the server failed). */
export class EcsApiError extends Error {
  readonly type: string;
  readonly statusCode: number;

  constructor(type: string, message: string, statusCode = 400) {
    super(message);
    this.name = 'EcsApiError';
    this.type = type;
    this.statusCode = statusCode;
  }
}

export function invalidParameter(message: string): EcsApiError {
  return new EcsApiError('InvalidParameterException', message);
}

export interface Tag {
  key: string;
  value: string;
}

export interface RunTaskRequest {
  cluster?: string;
  taskDefinition?: string;
  count?: number;
  startedBy?: string;
  group?: string;
  launchType?: string;
  clientToken?: string;
  tags?: { key?: string; value?: string }[];
  overrides?: {
    containerOverrides?: { name?: string; environment?: { name?: string; value?: string }[] }[];
  };
}

export interface DescribeTasksRequest {
  cluster?: string;
  tasks?: string[];
  include?: string[];
}

export interface StopTaskRequest {
  cluster?: string;
  task?: string;
  reason?: string;
}

export interface ListTasksRequest {
  cluster?: string;
  startedBy?: string;
  desiredStatus?: string;
  family?: string;
  maxResults?: number;
  nextToken?: string;
}

/** The task's address, as ECS reports the private IP of a task's network interface. */
export const LOCAL_ADDRESS = '127.0.0.1';

const seconds = (date: Date | undefined): number | undefined =>
  date === undefined ? undefined : date.getTime() / 1000;

/** The task as DescribeTasks, RunTask and StopTask return it; undefined fields are left out. */
export function toEcsTask(task: TaskState): Record<string, unknown> {
  const container = {
    containerArn: task.containerArn,
    taskArn: task.taskArn,
    name: task.containerName,
    lastStatus: task.lastStatus,
    exitCode: task.exitCode,
    networkInterfaces: [{ attachmentId: task.taskId, privateIpv4Address: LOCAL_ADDRESS }],
  };
  return JSON.parse(
    JSON.stringify({
      taskArn: task.taskArn,
      clusterArn: task.clusterArn,
      taskDefinitionArn: task.taskDefinitionArn,
      lastStatus: task.lastStatus,
      desiredStatus: task.desiredStatus,
      createdAt: seconds(task.createdAt),
      startedAt: seconds(task.startedAt),
      stoppingAt: seconds(task.stoppingAt),
      stoppedAt: seconds(task.stoppedAt),
      stopCode: task.stopCode,
      stoppedReason: task.stoppedReason,
      startedBy: task.startedBy,
      group: task.group,
      launchType: task.launchType,
      version: task.version,
      tags: task.tags,
      overrides: {
        containerOverrides: [
          {
            name: task.containerName,
            environment: Object.entries(task.environment).map(([name, value]) => ({ name, value })),
          },
        ],
      },
      containers: [container],
      attachments: [
        {
          id: task.taskId,
          type: 'ElasticNetworkInterface',
          status: task.lastStatus === 'STOPPED' ? 'DELETED' : 'ATTACHED',
          details: [{ name: 'privateIPv4Address', value: LOCAL_ADDRESS }],
        },
      ],
    }),
  ) as Record<string, unknown>;
}
