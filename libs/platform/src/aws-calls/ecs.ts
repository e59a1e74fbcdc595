import {
  arrayField,
  objectField,
  stringField,
  type IamCheck,
  type OperationMapper,
  type Shape,
} from './call.ts';
import { arnOf, arnResource, lastSegment, type DeployTarget } from './target.ts';

/** ECS uses the cluster named `default` when a call names none. */
const DEFAULT_CLUSTER = 'default';

function clusterName(input: Shape): string {
  const cluster = stringField(input, 'cluster') ?? DEFAULT_CLUSTER;
  return lastSegment(cluster);
}

export function clusterArn(target: DeployTarget, name: string): string {
  return arnOf(target, 'ecs', `cluster/${name}`);
}

/** `task/<cluster>/<id>` (the long ARN format) whatever form the caller or emulator used. */
export function taskArn(target: DeployTarget, cluster: string, task: string): string {
  return arnOf(target, 'ecs', `task/${cluster}/${lastSegment(task)}`);
}

/**
 * `task-definition/<family>:<revision>`; a bare family runs the latest active revision, which
 * the ARN names `latest` here (grants name revisions with a wildcard).
 */
export function taskDefinitionArn(target: DeployTarget, taskDefinition: string): string {
  const resource = arnResource(taskDefinition) ?? `task-definition/${taskDefinition}`;
  const familyAndRevision = resource.replace(/^task-definition\//, '');
  const withRevision = familyAndRevision.includes(':')
    ? familyAndRevision
    : `${familyAndRevision}:latest`;
  return arnOf(target, 'ecs', `task-definition/${withRevision}`);
}

function roleArn(target: DeployTarget, role: string): string {
  return arnOf(target, 'iam', `role/${lastSegment(role)}`, { global: true });
}

function clusterContext(target: DeployTarget, input: Shape): Record<string, string> {
  return { 'ecs:cluster': clusterArn(target, clusterName(input)) };
}

/** Tags given at launch, as `aws:RequestTag/<key>` and `aws:TagKeys`. */
function tagContext(input: Shape): Record<string, string | string[]> {
  const tags = arrayField(input, 'tags');
  if (tags.length === 0) return {};
  const context: Record<string, string | string[]> = {
    'aws:TagKeys': tags.map((tag) => stringField(tag, 'key') ?? ''),
  };
  for (const tag of tags) {
    context[`aws:RequestTag/${stringField(tag, 'key') ?? ''}`] = stringField(tag, 'value') ?? '';
  }
  return context;
}

/** What a RunTask asks that IAM can test: cluster, tags, exec, size overrides, capacity provider. */
function runTaskContext(target: DeployTarget, input: Shape): Record<string, string | string[]> {
  const overrides = objectField(input, 'overrides');
  const context: Record<string, string | string[]> = {
    ...clusterContext(target, input),
    ...tagContext(input),
  };
  if (typeof input.enableExecuteCommand === 'boolean') {
    context['ecs:enable-execute-command'] = String(input.enableExecuteCommand);
  }
  const cpu = stringField(overrides, 'cpu');
  if (cpu !== undefined) context['ecs:task-cpu'] = cpu;
  const memory = stringField(overrides, 'memory');
  if (memory !== undefined) context['ecs:task-memory'] = memory;
  const provider = stringField(
    arrayField(input, 'capacityProviderStrategy')[0],
    'capacityProvider',
  );
  if (provider !== undefined) context['ecs:capacity-provider'] = provider;
  return context;
}

function runTask(input: Shape, output: Shape | undefined, target: DeployTarget): IamCheck[] {
  const cluster = clusterName(input);
  const checks: IamCheck[] = [
    {
      action: 'ecs:RunTask',
      resource: taskDefinitionArn(target, stringField(input, 'taskDefinition') ?? ''),
      context: runTaskContext(target, input),
    },
  ];
  if (arrayField(input, 'tags').length > 0) {
    // Tagging at launch is authorized as a TagResource on the new task.
    const started = stringField(arrayField(output, 'tasks')[0], 'taskArn') ?? 'not-started';
    checks.push({
      action: 'ecs:TagResource',
      resource: taskArn(target, cluster, started),
      context: { 'ecs:CreateAction': 'RunTask', ...tagContext(input) },
    });
  }
  // Roles named in the overrides are passed by the caller. The task definition's own roles
  // are passed too; only the task definition knows them, so the proof adds those.
  const overrides = objectField(input, 'overrides');
  for (const field of ['taskRoleArn', 'executionRoleArn']) {
    const role = stringField(overrides, field);
    if (role !== undefined) {
      checks.push({
        action: 'iam:PassRole',
        resource: roleArn(target, role),
        context: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' },
      });
    }
  }
  return checks;
}

export const mapEcs: OperationMapper = (operation, input, output, target) => {
  switch (operation) {
    case 'RunTask':
      return runTask(input, output, target);
    case 'StopTask':
      return [
        {
          action: 'ecs:StopTask',
          resource: taskArn(target, clusterName(input), stringField(input, 'task') ?? ''),
          context: clusterContext(target, input),
        },
      ];
    case 'DescribeTasks': {
      const tasks = Array.isArray(input.tasks) ? (input.tasks as unknown[]) : [];
      return tasks.map((task) => ({
        action: 'ecs:DescribeTasks',
        resource: taskArn(target, clusterName(input), String(task)),
        context: clusterContext(target, input),
      }));
    }
    case 'ListTasks':
      // No resource-level permission in practice: bound by the ecs:cluster condition.
      return [{ action: 'ecs:ListTasks', resource: '*', context: clusterContext(target, input) }];
    default:
      return undefined;
  }
};
