import Type, { type Static } from 'typebox';

/**
 * The part of EventBridge's `ECS Task State Change` event berth reads. ECS sends more; the
 * local runtime sends the same shape for its own tasks, so one watcher serves both.
 */
export const TaskStateChangeSchema = Type.Object(
  {
    version: Type.Optional(Type.String()),
    id: Type.String(),
    'detail-type': Type.Literal('ECS Task State Change'),
    source: Type.Literal('aws.ecs'),
    account: Type.Optional(Type.String()),
    time: Type.String(),
    region: Type.Optional(Type.String()),
    resources: Type.Optional(Type.Array(Type.String())),
    detail: Type.Object({
      taskArn: Type.String(),
      clusterArn: Type.Optional(Type.String()),
      lastStatus: Type.String(),
      desiredStatus: Type.Optional(Type.String()),
      /** Increases with every change of the task; older versions are stale. */
      version: Type.Optional(Type.Integer()),
      startedBy: Type.Optional(Type.String()),
      group: Type.Optional(Type.String()),
      createdAt: Type.Optional(Type.String()),
      startedAt: Type.Optional(Type.String()),
      stoppingAt: Type.Optional(Type.String()),
      stoppedAt: Type.Optional(Type.String()),
      stopCode: Type.Optional(Type.String()),
      stoppedReason: Type.Optional(Type.String()),
      tags: Type.Optional(Type.Array(Type.Object({ key: Type.String(), value: Type.String() }))),
      overrides: Type.Optional(Type.Unknown()),
      /** The task's network interface; its `privateIPv4Address` is where the task is reached. */
      attachments: Type.Optional(
        Type.Array(
          Type.Object({
            type: Type.Optional(Type.String()),
            status: Type.Optional(Type.String()),
            details: Type.Optional(
              Type.Array(Type.Object({ name: Type.String(), value: Type.Optional(Type.String()) })),
            ),
          }),
        ),
      ),
      containers: Type.Optional(
        Type.Array(
          Type.Object({
            name: Type.Optional(Type.String()),
            lastStatus: Type.Optional(Type.String()),
            exitCode: Type.Optional(Type.Integer()),
            reason: Type.Optional(Type.String()),
          }),
        ),
      ),
    }),
  },
  { $id: 'TaskStateChange' },
);
export type TaskStateChange = Static<typeof TaskStateChangeSchema>;

/**
 * The task's private IPv4 address from its network interface attachment, as ECS reports it
 * once the interface is attached (RunTask's answer on Fargate does not have it yet).
 */
export function taskEndpointOf(event: TaskStateChange): string | undefined {
  for (const attachment of event.detail.attachments ?? []) {
    const address = attachment.details?.find((d) => d.name === 'privateIPv4Address')?.value;
    if (address) return address;
  }
  return undefined;
}

export const TASK_TAGS = {
  containerId: 'ContainerId',
  clientId: 'ClientId',
  projectId: 'ProjectId',
  userId: 'UserId',
  managedBy: 'ManagedBy',
  generation: 'Generation',
} as const;
export const MANAGED_BY = 'berth';

export function tagValue(
  tags: readonly { key: string; value: string }[] | undefined,
  key: string,
): string | undefined {
  return tags?.find((tag) => tag.key === key)?.value;
}
