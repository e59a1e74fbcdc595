import type { Task } from '@aws-sdk/client-ecs';
import { POOL_SLOT_TAG, TASK_TAGS, tagValue, type TaskInfo } from '@berth/domain';

/** The tags ECS returns, in the `{ key, value }` form berth's events use. */
export function tagsOf(task: Task): { key: string; value: string }[] {
  return (task.tags ?? []).flatMap((tag) =>
    tag.key === undefined ? [] : [{ key: tag.key, value: tag.value ?? '' }],
  );
}

function generationOf(raw: string | undefined): number | undefined {
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
}

/** The task's private IPv4 address on its elastic network interface (awsvpc mode). */
function privateIpOf(task: Task): string | undefined {
  for (const attachment of task.attachments ?? []) {
    const detail = attachment.details?.find((entry) => entry.name === 'privateIPv4Address');
    if (detail?.value) return detail.value;
  }
  return undefined;
}

export function toTaskInfo(task: Task, containerName: string): TaskInfo {
  const tags = tagsOf(task);
  const container = task.containers?.find((entry) => entry.name === containerName);
  return {
    taskArn: task.taskArn ?? '',
    containerId: tagValue(tags, TASK_TAGS.containerId),
    generation: generationOf(tagValue(tags, TASK_TAGS.generation)),
    lastStatus: task.lastStatus ?? 'PROVISIONING',
    desiredStatus: task.desiredStatus,
    startedAt: task.startedAt?.toISOString(),
    stoppedAt: task.stoppedAt?.toISOString(),
    stopCode: task.stopCode,
    stoppedReason: task.stoppedReason,
    exitCode: container?.exitCode,
    endpoint: privateIpOf(task),
    ...(tagValue(tags, POOL_SLOT_TAG) === undefined
      ? {}
      : { poolSlot: generationOf(tagValue(tags, POOL_SLOT_TAG)) }),
  };
}
