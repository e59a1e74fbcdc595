import { randomUUID } from 'node:crypto';
import type { TaskStateChange } from '@berth/domain';
import { LOCAL_ADDRESS } from './protocol.ts';
import type { TaskState } from './task.ts';

export interface EventContext {
  account: string;
  region: string;
  now: Date;
}

const iso = (date: Date | undefined): string | undefined => date?.toISOString();

/**
 * The task as EventBridge delivers an `ECS Task State Change`. The override environment is
 * left out: it may carry settings nobody reading events needs to see.
 */
export function taskStateChange(task: TaskState, context: EventContext): TaskStateChange {
  const detail: TaskStateChange['detail'] = {
    taskArn: task.taskArn,
    clusterArn: task.clusterArn,
    lastStatus: task.lastStatus,
    desiredStatus: task.desiredStatus,
    version: task.version,
    startedBy: task.startedBy,
    group: task.group,
    createdAt: iso(task.createdAt),
    startedAt: iso(task.startedAt),
    stoppingAt: iso(task.stoppingAt),
    stoppedAt: iso(task.stoppedAt),
    stopCode: task.stopCode,
    stoppedReason: task.stoppedReason,
    tags: task.tags.map((tag) => ({ ...tag })),
    // As ECS's events have it: the task's network interface and its address (this machine's).
    attachments: [
      {
        type: 'eni',
        status: task.lastStatus === 'STOPPED' ? 'DELETED' : 'ATTACHED',
        details: [{ name: 'privateIPv4Address', value: LOCAL_ADDRESS }],
      },
    ],
    containers: [
      {
        name: task.containerName,
        lastStatus: task.lastStatus,
        exitCode: task.exitCode,
      },
    ],
  };
  return JSON.parse(
    JSON.stringify({
      version: '0',
      id: randomUUID(),
      'detail-type': 'ECS Task State Change',
      source: 'aws.ecs',
      account: context.account,
      time: context.now.toISOString(),
      region: context.region,
      resources: [task.taskArn],
      detail: { ...detail, taskDefinitionArn: task.taskDefinitionArn, launchType: task.launchType },
    }),
  ) as TaskStateChange;
}
