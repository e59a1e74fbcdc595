/**
 * The runtime as the local stack runs it: `main.ts` as a process of its own, finding the
 * task event queue by name, and leaving no agent behind when it is told to stop.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { UnavailableError } from '@berth/domain';
import { freePort } from '@berth/testing';
import { TaskEventSender, createSqsClient } from '@berth/messaging';
import {
  EventCollector,
  FIXTURE_AGENT,
  createQueue,
  ecsRuntimeFor,
  eventually,
  isAlive,
  specFor,
} from './harness.ts';

const MAIN = fileURLToPath(new URL('../src/main.ts', import.meta.url));

describe('the local runtime process', () => {
  // A process started cold on a busy 2-core machine can take a minute to listen.
  it('stops every agent on SIGTERM, reports them STOPPED and exits 0', async () => {
    // Prepare
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-local-runtime-main-'));
    const sqs = createSqsClient();
    const queueUrl = await createQueue(sqs, 'berth-task-events');
    const events = new EventCollector(sqs, queueUrl);
    const port = await freePort();
    const child = spawn(process.execPath, [MAIN], {
      env: {
        ...process.env,
        BERTH_DATA_DIR: dataDir,
        BERTH_RUNTIME_PORT: String(port),
        BERTH_SHUTDOWN_GRACE: '2s',
        BERTH_AGENT_ENTRY: FIXTURE_AGENT,
        BERTH_TASK_EVENTS_QUEUE_URL: '',
        BERTH_LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const exited = once(child, 'exit');
    try {
      const runtime = ecsRuntimeFor(`http://127.0.0.1:${port}`, join(dataDir, 'workspaces'));
      await eventually(
        () =>
          runtime.listTasks().then(
            () => true,
            () => false,
          ),
        120_000,
      );
      const task = await runtime.startTask(specFor(runtime));
      await events.waitFor(
        (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'RUNNING',
      );
      const agentPid = await readPid(join(dataDir, 'logs', `${task.containerId}.g1.log`));

      // Act
      child.kill('SIGTERM');
      const [code] = (await exited) as [number | null];

      // Assess
      expect(code).toBe(0);
      expect(isAlive(agentPid)).toBe(false);
      const stopped = await events.waitFor(
        (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'STOPPED',
      );
      expect(stopped.detail).toMatchObject({
        stopCode: 'UserInitiated',
        stoppedReason: 'runtime shutting down',
        containers: [{ exitCode: 0 }],
      });
      await rm(dataDir, { recursive: true, force: true });
    } finally {
      // A failed wait above must not leave the runtime (and its agents) running after Jest.
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }, 240_000);

  // Issue 12: after a SIGKILL of the runtime, the new one said nothing about the old one's
  // agents; they ran on unseen (DescribeTasks: MISSING) while a new generation could start.
  it('answers nothing until the agents of a runtime that was SIGKILLed have ended, and logs their end', async () => {
    // Prepare: runtime A starts an agent that stays up when A dies.
    const dataDir = await mkdtemp(join(tmpdir(), 'berth-local-runtime-orphans-'));
    await createQueue(createSqsClient(), 'berth-task-events');
    const port = await freePort();
    const env = {
      ...process.env,
      BERTH_DATA_DIR: dataDir,
      BERTH_RUNTIME_PORT: String(port),
      BERTH_SHUTDOWN_GRACE: '2s',
      BERTH_AGENT_ENTRY: FIXTURE_AGENT,
      BERTH_TASK_EVENTS_QUEUE_URL: '',
      BERTH_FIXTURE_MODE: 'outlive-supervisor',
      BERTH_LOG_LEVEL: 'info',
    };
    const first = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'ignore', 'inherit'] });
    let second: ReturnType<typeof spawn> | undefined;
    let agentPid: number | undefined;
    try {
      const runtime = ecsRuntimeFor(`http://127.0.0.1:${port}`, join(dataDir, 'workspaces'));
      await eventually(
        () =>
          runtime.listTasks().then(
            () => true,
            () => false,
          ),
        120_000,
      );
      const task = await runtime.startTask(specFor(runtime));
      const logPath = join(dataDir, 'logs', `${task.containerId}.g1.log`);
      await eventually(
        () =>
          readPid(logPath).then(
            () => true,
            () => false,
          ),
        60_000,
      );
      agentPid = await readPid(logPath);
      const firstExited = once(first, 'exit');
      first.kill('SIGKILL');
      await firstExited;
      expect(isRunning(agentPid)).toBe(true);

      // Act: runtime B on the same data directory.
      second = spawn(process.execPath, [MAIN], { env, stdio: ['ignore', 'pipe', 'inherit'] });
      let log = '';
      second.stdout?.on('data', (chunk: Buffer) => (log += chunk.toString()));
      await eventually(
        () =>
          runtime.listTasks().then(
            () => true,
            () => false,
          ),
        120_000,
      );

      // Assess: by the time B answers, the agent is gone, and B's log says when it ended.
      expect(isRunning(agentPid)).toBe(false);
      const stopped = log
        .split('\n')
        .filter((line) => line.includes('"task stopped"'))
        .map((line) => JSON.parse(line) as Record<string, unknown>);
      expect(stopped).toEqual([
        expect.objectContaining({
          taskArn: task.taskArn,
          containerId: task.containerId,
          generation: 1,
          orphaned: true,
          stoppedReason: expect.stringContaining('forced:killed by SIGKILL') as unknown,
        }),
      ]);
      await rm(dataDir, { recursive: true, force: true });
    } finally {
      for (const child of [first, second])
        if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      if (agentPid !== undefined && isAlive(agentPid)) process.kill(-agentPid, 'SIGKILL');
    }
  }, 300_000);

  it('cannot find a task event queue that does not exist', async () => {
    // Act
    const lookup = TaskEventSender.forQueueName({ queueName: 'no-such-queue' });

    // Assess
    await expect(lookup).rejects.toBeInstanceOf(UnavailableError);
  });
});

/**
 * Alive and not a zombie: an agent whose runtime died is reparented to whatever reaps
 * orphans here, which may leave it a zombie for a while after it ended.
 */
function isRunning(pid: number): boolean {
  if (!isAlive(pid)) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

async function readPid(logPath: string): Promise<number> {
  const line = (await readFile(logPath, 'utf8'))
    .split('\n')
    .find((entry) => entry.includes('"fixture":"started"'));
  if (!line) throw new Error(`no start line in ${logPath}`);
  return (JSON.parse(line) as { pid: number }).pid;
}
