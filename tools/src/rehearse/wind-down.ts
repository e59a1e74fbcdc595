/**
 * The rehearsal's last act before it stops: every session still active is released through
 * the lifecycle command queue (as a chat front end would), and then every live container must
 * be saved and stopped by the deployed reaper once idle, its final task event handled by the
 * task watcher. Before that, a stray task (started through the ECS API with berth's tags but
 * owned by no record, as a crashed starter or a hand-run task leaves one) must be stopped by
 * the task watcher as an orphan. This drives the code paths the end-to-end suites leave to
 * `npm test`'s own stacks (idle stop, orphan stop, queue retirement, session release), so the
 * IAM proof sees their calls.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import { DescribeTasksCommand, RunTaskCommand } from '@aws-sdk/client-ecs';
import { MANAGED_BY, TASK_TAGS, type ContainerJson, type SessionJson } from '@berth/domain';
import { createEcsClient } from '@berth/ecs';
import { CommandSender, SqsContainerQueues, createSqsClient } from '@berth/messaging';

export interface WindDownOptions {
  /** Discovery's URL, as the load balancer reaches it. */
  url: string;
  adminToken: string;
  lifecycleCommandsUrl: string;
  /** How long every container may take to be stopped once its sessions are released. */
  timeoutMs: number;
  say: (line: string) => void;
}

const LIVE = new Set(['starting', 'running', 'terminating']);

export interface StrayTaskOptions {
  /** The ECS endpoint the services use (the local runtime playing ECS). */
  ecsEndpoint: string;
  /** As the services' task definitions name them (BERTH_ECS_*). */
  cluster: string;
  taskDefinition: string;
  containerName: string;
  /** The workspace volume's path inside the task. */
  workspaceRoot: string;
  timeoutMs: number;
  say: (line: string) => void;
}

/**
 * Starts a task no record owns, with berth's tags and queues of its own so that its agent runs
 * as a real one would, and waits for the task watcher to stop it as an orphan. Failures found.
 */
export async function strayTaskIsStopped(options: StrayTaskOptions): Promise<string[]> {
  const containerId = `stray.rehearsal.${randomUUID().slice(0, 8)}`;
  const [clientId = '', projectId = '', userId = ''] = containerId.split('.');
  const sqs = createSqsClient();
  const ecs = createEcsClient({ endpoint: options.ecsEndpoint });
  const queues = new SqsContainerQueues({ sqs });
  const urls = await queues.create(containerId, 1);
  try {
    const answer = await ecs.send(
      new RunTaskCommand({
        cluster: options.cluster,
        taskDefinition: options.taskDefinition,
        count: 1,
        startedBy: 'berth',
        group: 'berth',
        clientToken: randomUUID(),
        overrides: {
          containerOverrides: [
            {
              name: options.containerName,
              environment: Object.entries({
                CONTAINER_ID: containerId,
                WORKSPACE_PATH: `${options.workspaceRoot}/strays/${containerId}`,
                BERTH_GENERATION: '1',
                BERTH_INPUT_QUEUE_URL: urls.inputQueueUrl,
                BERTH_OUTPUT_QUEUE_URL: urls.outputQueueUrl,
              }).map(([name, value]) => ({ name, value })),
            },
          ],
        },
        tags: [
          { key: TASK_TAGS.containerId, value: containerId },
          { key: TASK_TAGS.clientId, value: clientId },
          { key: TASK_TAGS.projectId, value: projectId },
          { key: TASK_TAGS.userId, value: userId },
          { key: TASK_TAGS.managedBy, value: MANAGED_BY },
          { key: TASK_TAGS.generation, value: '1' },
        ],
      }),
    );
    const taskArn = answer.tasks?.[0]?.taskArn;
    if (!taskArn) return [`a stray task could not be started: ${JSON.stringify(answer.failures)}`];
    const deadline = Date.now() + options.timeoutMs;
    for (;;) {
      const { tasks = [] } = await ecs.send(
        new DescribeTasksCommand({ cluster: options.cluster, tasks: [taskArn] }),
      );
      const task = tasks[0];
      if (task?.lastStatus === 'STOPPED') {
        options.say(`rehearsal: a stray task was stopped: ${task.stoppedReason ?? 'no reason'}`);
        return /orphan/.test(task.stoppedReason ?? '')
          ? []
          : [
              `the stray task ${taskArn} stopped, but not as an orphan: ${task.stoppedReason ?? 'no reason'}`,
            ];
      }
      if (Date.now() > deadline)
        return [
          `the stray task ${taskArn}, owned by no record, was not stopped within ${Math.round(options.timeoutMs / 1000)} s`,
        ];
      await delay(500);
    }
  } finally {
    await queues.delete(urls).catch(() => undefined);
    sqs.destroy();
    ecs.destroy();
  }
}

/** Failures found; empty when every container ended stopped. */
export async function windDown(options: WindDownOptions): Promise<string[]> {
  const api = async <T>(path: string): Promise<T> => {
    const response = await fetch(`${options.url}${path}`, {
      headers: { authorization: `Bearer ${options.adminToken}` },
    });
    if (!response.ok) throw new Error(`GET ${path} answered ${response.status}`);
    return (await response.json()) as T;
  };
  // An admin's unfiltered listing: every container, read from status-index (no Scan).
  const listAll = async (): Promise<ContainerJson[]> => {
    const all: ContainerJson[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? '' : `&cursor=${encodeURIComponent(cursor)}`;
      const page = await api<{ containers: ContainerJson[]; nextCursor: string | null }>(
        `/v1/containers?limit=100${query}`,
      );
      all.push(...page.containers);
      cursor = page.nextCursor;
    } while (cursor !== null);
    return all;
  };

  const live = (await listAll()).filter((container) => LIVE.has(container.status));
  const sqs = createSqsClient();
  let released = 0;
  try {
    const commands = new CommandSender({ sqs, queueUrl: options.lifecycleCommandsUrl });
    for (const container of live.filter((c) => c.sessionCount > 0)) {
      const { sessions } = await api<{ sessions: SessionJson[] }>(
        `/v1/containers/${container.containerId}/sessions`,
      );
      for (const session of sessions.filter((s) => s.status === 'active')) {
        await commands.sendCommand('session.release', { sessionId: session.sessionId });
        released += 1;
      }
    }
  } finally {
    sqs.destroy();
  }
  options.say(
    `rehearsal: winding down: ${live.length} live containers, ${released} sessions released; the reaper must stop each once idle`,
  );

  const deadline = Date.now() + options.timeoutMs;
  let ended: ContainerJson[] = [];
  for (;;) {
    const ids = new Set(live.map((container) => container.containerId));
    ended = (await listAll()).filter((container) => ids.has(container.containerId));
    const remaining = ended.filter((container) => LIVE.has(container.status));
    if (remaining.length === 0) break;
    if (Date.now() > deadline) {
      return [
        `not stopped within ${Math.round(options.timeoutMs / 1000)} s of their sessions' release: ${remaining
          .map((container) => `${container.containerId} (${container.status})`)
          .join(', ')}`,
      ];
    }
    await delay(1000);
  }
  const failed = ended.filter((container) => container.status !== 'stopped');
  options.say(
    `rehearsal: every container stopped (${ended.length - failed.length} stopped, ${failed.length} otherwise)`,
  );
  return failed.map(
    (container) =>
      `${container.containerId} ended ${container.status} instead of stopped: ${container.stopReason ?? 'no reason'}`,
  );
}
