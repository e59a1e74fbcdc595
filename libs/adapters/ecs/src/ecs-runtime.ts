import { createHash } from 'node:crypto';
import {
  DescribeTasksCommand,
  type ECSClient,
  ListTasksCommand,
  RunTaskCommand,
  StopTaskCommand,
  type KeyValuePair,
  type RunTaskCommandInput,
  type Task,
} from '@aws-sdk/client-ecs';
import {
  MANAGED_BY,
  POOL_SLOT_TAG,
  TASK_TAGS,
  UnavailableError,
  tagValue,
  type ContainerKey,
  type PoolRuntime,
  type PoolTaskSpec,
  type Runtime,
  type TaskInfo,
  type TaskSpec,
} from '@berth/domain';
import { createEcsClient } from './client.ts';
import { errorName, toDomainError } from './errors.ts';
import { tagsOf, toTaskInfo } from './task-info.ts';

export interface EcsRuntimeOptions {
  /** Best made with createEcsClient, which sets the throttling retry policy. */
  client?: ECSClient;
  cluster: string;
  taskDefinition: string;
  /** The workspace agent's container in the task definition. */
  containerName: string;
  subnets: string[];
  securityGroups: string[];
  assignPublicIp?: boolean;
  workspaceRoot: string;
  /** Absent: the cluster's default capacity provider strategy decides. */
  launchType?: 'FARGATE' | undefined;
}

/** `startedBy` and `group` of every task berth runs; ListTasks filters on the first. */
export const STARTED_BY = 'berth';
export const TASK_GROUP = 'berth';
/** ECS refuses a StopTask reason longer than this. */
export const STOP_REASON_LIMIT = 255;
/** DescribeTasks takes at most this many tasks per call. */
export const DESCRIBE_BATCH = 100;

/**
 * ECS keeps a RunTask clientToken for a while and answers a repeated one with the task it
 * already started, so a start retried after a timeout never launches a second task.
 */
export function clientTokenFor(containerId: string, generation: number): string {
  return createHash('sha256').update(`${containerId}#${generation}`).digest('hex');
}

/** The clientToken of a warm-pool member: one task per (slot, member generation). */
export function poolClientTokenFor(slot: number, generation: number): string {
  return createHash('sha256').update(`~pool#${slot}#${generation}`).digest('hex');
}

export class EcsRuntime implements Runtime, PoolRuntime {
  readonly #client: ECSClient;
  readonly #options: Omit<EcsRuntimeOptions, 'client'>;
  readonly #workspaceRoot: string;

  constructor(options: EcsRuntimeOptions) {
    const { client, ...rest } = options;
    this.#client = client ?? createEcsClient();
    this.#options = rest;
    this.#workspaceRoot = options.workspaceRoot.replace(/\/+$/, '');
  }

  workspacePathFor(key: ContainerKey): string {
    return `${this.#workspaceRoot}/${key.clientId}/${key.projectId}/${key.userId}`;
  }

  get taskDefinition(): string {
    return this.#options.taskDefinition;
  }

  /**
   * A generic agent with no containerId (docs/design.md, "The warm pool"): tagged with its
   * slot and generation, it waits on its control queue for the identity a claim gives it.
   */
  async startPoolMember(spec: PoolTaskSpec): Promise<{ taskArn: string }> {
    const base = this.runTaskInput({
      containerId: '',
      clientId: '',
      projectId: '',
      userId: '',
      generation: spec.generation,
      workspacePath: '',
      environment: {},
    });
    const input: RunTaskCommandInput = {
      ...base,
      overrides: {
        containerOverrides: [
          {
            name: this.#options.containerName,
            environment: Object.entries(spec.environment).map(([name, value]) => ({
              name,
              value,
            })),
          },
        ],
      },
      tags: [
        { key: TASK_TAGS.managedBy, value: MANAGED_BY },
        { key: POOL_SLOT_TAG, value: String(spec.slot) },
        { key: TASK_TAGS.generation, value: String(spec.generation) },
      ],
      clientToken: poolClientTokenFor(spec.slot, spec.generation),
    };
    const info = await this.run(input, `pool slot ${spec.slot} generation ${spec.generation}`);
    return { taskArn: info.taskArn };
  }

  async startTask(spec: TaskSpec): Promise<TaskInfo> {
    return this.run(this.runTaskInput(spec), `${spec.containerId} generation ${spec.generation}`);
  }

  private async run(input: RunTaskCommandInput, what: string): Promise<TaskInfo> {
    let task: Task | undefined;
    try {
      const answer = await this.#client.send(new RunTaskCommand(input));
      const failure = answer.failures?.[0];
      if (failure) {
        const detail = failure.detail ? ` (${failure.detail})` : '';
        throw new UnavailableError(
          `ECS could not start the task of ${what}: ${failure.reason ?? 'unknown reason'}${detail}`,
        );
      }
      task = answer.tasks?.[0];
    } catch (error) {
      // The same clientToken with different parameters: the task of that token exists already.
      const existing = conflictingTaskArn(error);
      if (existing === undefined) throw toDomainError(error, 'RunTask');
      const info = await this.describeTask(existing);
      if (info) return info;
      throw toDomainError(error, 'RunTask');
    }
    if (!task?.taskArn) {
      throw new UnavailableError(`ECS RunTask answered without a task for ${what}`);
    }
    return toTaskInfo(task, this.#options.containerName);
  }

  async describeTask(taskArn: string): Promise<TaskInfo | undefined> {
    const tasks = await this.describe([taskArn]);
    const task = tasks[0];
    return task ? toTaskInfo(task, this.#options.containerName) : undefined;
  }

  async stopTask(taskArn: string, reason: string): Promise<void> {
    try {
      await this.#client.send(
        new StopTaskCommand({
          cluster: this.#options.cluster,
          task: taskArn,
          reason: reason.slice(0, STOP_REASON_LIMIT),
        }),
      );
    } catch (error) {
      // A task ECS no longer knows has stopped already: the caller's goal is met.
      if (isTaskNotFound(error)) return;
      throw toDomainError(error, 'StopTask');
    }
  }

  async listTasks(): Promise<TaskInfo[]> {
    const arns: string[] = [];
    let nextToken: string | undefined;
    try {
      do {
        const page = await this.#client.send(
          new ListTasksCommand({
            cluster: this.#options.cluster,
            startedBy: STARTED_BY,
            desiredStatus: 'RUNNING',
            maxResults: DESCRIBE_BATCH,
            ...(nextToken ? { nextToken } : {}),
          }),
        );
        arns.push(...(page.taskArns ?? []));
        nextToken = page.nextToken;
      } while (nextToken);
    } catch (error) {
      throw toDomainError(error, 'ListTasks');
    }
    const infos: TaskInfo[] = [];
    for (let start = 0; start < arns.length; start += DESCRIBE_BATCH) {
      const tasks = await this.describe(arns.slice(start, start + DESCRIBE_BATCH));
      for (const task of tasks) {
        if (tagValue(tagsOf(task), TASK_TAGS.managedBy) === MANAGED_BY) {
          infos.push(toTaskInfo(task, this.#options.containerName));
        }
      }
    }
    return infos;
  }

  /** The tasks ECS knows among these; MISSING ones are left out, other failures throw. */
  private async describe(taskArns: string[]): Promise<Task[]> {
    try {
      const answer = await this.#client.send(
        new DescribeTasksCommand({
          cluster: this.#options.cluster,
          tasks: taskArns,
          include: ['TAGS'],
        }),
      );
      const failure = answer.failures?.find((entry) => entry.reason !== 'MISSING');
      if (failure) {
        throw new UnavailableError(
          `ECS DescribeTasks failed for ${failure.arn ?? 'a task'}: ${failure.reason ?? 'unknown reason'}`,
        );
      }
      return answer.tasks ?? [];
    } catch (error) {
      throw toDomainError(error, 'DescribeTasks');
    }
  }

  private runTaskInput(spec: TaskSpec): RunTaskCommandInput {
    const {
      cluster,
      taskDefinition,
      containerName,
      subnets,
      securityGroups,
      assignPublicIp,
      launchType,
    } = this.#options;
    const fixed: KeyValuePair[] = [
      { name: 'CONTAINER_ID', value: spec.containerId },
      { name: 'WORKSPACE_PATH', value: spec.workspacePath },
      { name: 'BERTH_GENERATION', value: String(spec.generation) },
    ];
    const fixedNames = new Set(fixed.map((entry) => entry.name));
    const extra = Object.entries(spec.environment)
      .filter(([name]) => !fixedNames.has(name))
      .map(([name, value]) => ({ name, value }));
    return {
      cluster,
      taskDefinition,
      ...(launchType ? { launchType } : {}),
      count: 1,
      // Only awsvpc tasks (Fargate's mode) take a network configuration; with no subnets
      // configured the task definition's own network mode applies (and the local runtime).
      ...(subnets.length > 0
        ? {
            networkConfiguration: {
              awsvpcConfiguration: {
                subnets,
                securityGroups,
                assignPublicIp: assignPublicIp ? 'ENABLED' : 'DISABLED',
              },
            },
          }
        : {}),
      overrides: {
        containerOverrides: [{ name: containerName, environment: [...fixed, ...extra] }],
      },
      tags: [
        { key: TASK_TAGS.containerId, value: spec.containerId },
        { key: TASK_TAGS.clientId, value: spec.clientId },
        { key: TASK_TAGS.projectId, value: spec.projectId },
        { key: TASK_TAGS.userId, value: spec.userId },
        { key: TASK_TAGS.managedBy, value: MANAGED_BY },
        { key: TASK_TAGS.generation, value: String(spec.generation) },
      ],
      propagateTags: 'TASK_DEFINITION',
      enableECSManagedTags: true,
      startedBy: STARTED_BY,
      group: TASK_GROUP,
      clientToken: clientTokenFor(spec.containerId, spec.generation),
    };
  }
}

function isTaskNotFound(error: unknown): boolean {
  const name = errorName(error);
  return (
    (name === 'InvalidParameterException' || name === 'ClientException') &&
    error instanceof Error &&
    /not found/i.test(error.message)
  );
}

function conflictingTaskArn(error: unknown): string | undefined {
  if (errorName(error) !== 'ConflictException') return undefined;
  const ids = (error as { resourceIds?: unknown }).resourceIds;
  return Array.isArray(ids) && typeof ids[0] === 'string' ? ids[0] : undefined;
}
