/**
 * The local runtime driven as berth drives ECS: the real EcsRuntime adapter and ECS client
 * against the supervisor on a free port, agents as real processes (a fixture agent), task
 * events read back from a real SQS queue (fauxqs).
 */
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidArgumentError } from '@berth/domain';
import { git } from '../src/repos.ts';
import { SHUTDOWN_REASON } from '../src/index.ts';
import { GRACE_MS, eventually, isAlive, specFor, startHarness, type Harness } from './harness.ts';

let harness: Harness;

beforeAll(async () => {
  harness = await startHarness();
});

afterAll(async () => {
  await harness.close();
});

async function agentLog(path: string): Promise<{ env: Record<string, string | undefined> }> {
  const text = await readFile(path, 'utf8');
  const line = text.split('\n').find((entry) => entry.includes('"fixture":"started"'));
  if (!line) throw new Error(`no start line in ${path}: ${text}`);
  return JSON.parse(line) as { env: Record<string, string | undefined> };
}

function pidOf(taskArn: string): number {
  const pid = harness.local.supervisor.pidOf(taskArn);
  if (pid === undefined) throw new Error(`no process for ${taskArn}`);
  return pid;
}

describe('starting a task', () => {
  it('reports PENDING, then RUNNING once the agent is ready, with tags, group and versions', async () => {
    // Prepare
    const spec = specFor(harness.runtime, { generation: 4, environment: { BERTH_EXTRA: 'yes' } });

    // Act
    const started = await harness.runtime.startTask(spec);
    const running = await harness.events.waitFor(
      (event) => event.detail.taskArn === started.taskArn && event.detail.lastStatus === 'RUNNING',
    );

    // Assess
    expect(started).toMatchObject({
      containerId: spec.containerId,
      generation: 4,
      lastStatus: 'PENDING',
      desiredStatus: 'RUNNING',
      endpoint: '127.0.0.1',
    });
    expect(started.taskArn).toMatch(/^arn:aws:ecs:local:000000000000:task\/berth\/[0-9a-f-]{36}$/);
    const pending = await harness.events.waitFor(
      (event) => event.detail.taskArn === started.taskArn && event.detail.lastStatus === 'PENDING',
    );
    expect(pending.detail.version).toBe(1);
    expect(running).toMatchObject({
      'detail-type': 'ECS Task State Change',
      source: 'aws.ecs',
      resources: [started.taskArn],
      detail: {
        taskArn: started.taskArn,
        lastStatus: 'RUNNING',
        desiredStatus: 'RUNNING',
        version: 2,
        group: 'berth',
        startedBy: 'berth',
        containers: [{ name: 'workspace', lastStatus: 'RUNNING' }],
      },
    });
    expect(running.detail.tags).toEqual(
      expect.arrayContaining([
        { key: 'ContainerId', value: spec.containerId },
        { key: 'ClientId', value: 'acme' },
        { key: 'ProjectId', value: 'website' },
        { key: 'UserId', value: spec.userId },
        { key: 'ManagedBy', value: 'berth' },
        { key: 'Generation', value: '4' },
      ]),
    );
    const described = await harness.runtime.describeTask(started.taskArn);
    expect(described).toMatchObject({
      lastStatus: 'RUNNING',
      containerId: spec.containerId,
      generation: 4,
    });
    expect(Date.parse(described!.startedAt!)).toBeGreaterThan(0);
  });

  it('hands the agent its environment, the repository and the grace period, logging to its own file', async () => {
    // Prepare
    const spec = specFor(harness.runtime, { generation: 2 });

    // Act
    const task = await harness.runtime.startTask(spec);
    await harness.events.waitFor(
      (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'RUNNING',
    );

    // Assess
    const log = await agentLog(join(harness.dataDir, 'logs', `${spec.containerId}.g2.log`));
    expect(log.env).toEqual({
      CONTAINER_ID: spec.containerId,
      WORKSPACE_PATH: join(harness.dataDir, 'workspaces', 'acme', 'website', spec.userId),
      BERTH_GENERATION: '2',
      BERTH_REPO_URL: join(harness.dataDir, 'repos', 'acme', 'website.git'),
      BERTH_SHUTDOWN_GRACE: `${GRACE_MS / 1000}s`,
      BERTH_DEV_SERVER_PORT: expect.stringMatching(/^\d+$/),
    });
  });

  it('gives every task a dev server port of its own (issue 19)', async () => {
    // Prepare: two containers, as on one machine.
    const first = specFor(harness.runtime);
    const second = specFor(harness.runtime);

    // Act
    const tasks = await Promise.all([
      harness.runtime.startTask(first),
      harness.runtime.startTask(second),
    ]);
    for (const task of tasks)
      await harness.events.waitFor(
        (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'RUNNING',
      );

    // Assess
    const ports = await Promise.all(
      [first, second].map(async (spec) => {
        const log = await agentLog(join(harness.dataDir, 'logs', `${spec.containerId}.g1.log`));
        return Number(log.env.BERTH_DEV_SERVER_PORT);
      }),
    );
    expect(ports.every((port) => Number.isInteger(port) && port > 0 && port < 65536)).toBe(true);
    expect(ports[0]).not.toBe(ports[1]);
  });

  it('starts one task for one client token, however often and concurrently RunTask is repeated', async () => {
    // Prepare
    const spec = specFor(harness.runtime);

    // Act
    const [first, second] = await Promise.all([
      harness.runtime.startTask(spec),
      harness.runtime.startTask(spec),
    ]);
    const third = await harness.runtime.startTask(spec);
    const next = await harness.runtime.startTask({ ...spec, generation: 2 });

    // Assess
    expect(second.taskArn).toBe(first.taskArn);
    expect(third.taskArn).toBe(first.taskArn);
    expect(next.taskArn).not.toBe(first.taskArn);
    const listed = await harness.runtime.listTasks();
    expect(
      listed
        .filter((task) => task.containerId === spec.containerId)
        .map((task) => task.generation)
        .sort(),
    ).toEqual([1, 2]);
  });

  it('creates the project repository once, with an initial commit on main, however many start at once', async () => {
    // Prepare
    const project = `proj-${Date.now()}`;
    const specs = [1, 2, 3].map(() =>
      specFor(harness.runtime, { clientId: 'repo-client', projectId: project }),
    );

    // Act
    await Promise.all(specs.map((spec) => harness.runtime.startTask(spec)));
    const repo = join(harness.dataDir, 'repos', 'repo-client', `${project}.git`);
    const headAfterFirst = await git(['--git-dir', repo, 'rev-parse', 'refs/heads/main']);
    await harness.runtime.startTask(
      specFor(harness.runtime, { clientId: 'repo-client', projectId: project }),
    );

    // Assess
    expect(await git(['--git-dir', repo, 'rev-parse', 'refs/heads/main'])).toBe(headAfterFirst);
    expect(await git(['--git-dir', repo, 'rev-list', '--count', 'main'])).toBe('1');
    expect(await git(['--git-dir', repo, 'ls-tree', '--name-only', 'main'])).toBe('README.md');
    expect(await git(['--git-dir', repo, 'rev-parse', '--is-bare-repository'])).toBe('true');
    expect(await git(['--git-dir', repo, 'symbolic-ref', 'HEAD'])).toBe('refs/heads/main');
    expect(await readdir(join(harness.dataDir, 'repos', 'repo-client'))).toEqual([
      `${project}.git`,
    ]);
  });

  it('refuses tags that are not valid ids, as invalid input', async () => {
    // Prepare
    const spec = { ...specFor(harness.runtime), projectId: '../escape' };

    // Act / Assess
    await expect(harness.runtime.startTask(spec)).rejects.toBeInstanceOf(InvalidArgumentError);
  });
});

describe('stopping a task', () => {
  it('stops it gracefully: exit code 0, UserInitiated and the reason given', async () => {
    // Prepare
    const task = await harness.runtime.startTask(specFor(harness.runtime));
    await harness.events.waitFor(
      (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'RUNNING',
    );
    const pid = pidOf(task.taskArn);

    // Act
    await harness.runtime.stopTask(task.taskArn, 'idle');
    const stopped = await harness.events.waitFor(
      (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'STOPPED',
    );

    // Assess
    expect(stopped.detail).toMatchObject({
      lastStatus: 'STOPPED',
      desiredStatus: 'STOPPED',
      stopCode: 'UserInitiated',
      stoppedReason: 'idle',
      version: 3,
      containers: [{ name: 'workspace', exitCode: 0, lastStatus: 'STOPPED' }],
    });
    expect(await harness.runtime.describeTask(task.taskArn)).toMatchObject({
      lastStatus: 'STOPPED',
      exitCode: 0,
      stopCode: 'UserInitiated',
      stoppedReason: 'idle',
    });
    expect(isAlive(pid)).toBe(false);
  });

  it('kills an agent that ignores SIGTERM once the grace period is over, and says so', async () => {
    // Prepare
    const task = await harness.runtime.startTask(
      specFor(harness.runtime, { environment: { BERTH_FIXTURE_MODE: 'ignore-sigterm' } }),
    );
    await harness.events.waitFor(
      (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'RUNNING',
    );
    const startedStopping = Date.now();

    // Act
    await harness.runtime.stopTask(task.taskArn, 'manual');
    const stillRunning = await harness.runtime.describeTask(task.taskArn);
    const stopped = await harness.events.waitFor(
      (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'STOPPED',
    );

    // Assess
    expect(stillRunning).toMatchObject({ lastStatus: 'RUNNING', desiredStatus: 'STOPPED' });
    expect(Date.now() - startedStopping).toBeGreaterThanOrEqual(GRACE_MS);
    expect(stopped.detail.stopCode).toBe('UserInitiated');
    expect(stopped.detail.containers?.[0]?.exitCode).toBe(137);
    expect(stopped.detail.stoppedReason).toBe(
      'forced:killed by SIGKILL after the 1s grace period (manual)',
    );
  });

  it('keeps the reason the agent gave before it exited (a failed save)', async () => {
    // Prepare
    const task = await harness.runtime.startTask(
      specFor(harness.runtime, { environment: { BERTH_FIXTURE_MODE: 'save-fails' } }),
    );
    await harness.events.waitFor(
      (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'RUNNING',
    );

    // Act
    await harness.runtime.stopTask(task.taskArn, 'idle');
    const stopped = await harness.events.waitFor(
      (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'STOPPED',
    );

    // Assess
    expect(stopped.detail).toMatchObject({
      stopCode: 'UserInitiated',
      stoppedReason: 'save_failed:push rejected',
      containers: [{ exitCode: 3 }],
    });
  });

  it('treats stopping an unknown or stopped task as done', async () => {
    // Prepare
    const task = await harness.runtime.startTask(specFor(harness.runtime));
    await harness.runtime.stopTask(task.taskArn, 'manual');
    await harness.local.supervisor.waitForStop(task.taskArn);

    // Act / Assess
    await expect(harness.runtime.stopTask(task.taskArn, 'again')).resolves.toBeUndefined();
    await expect(
      harness.runtime.stopTask(
        'arn:aws:ecs:local:000000000000:task/berth/00000000-0000-0000-0000-000000000000',
        'x',
      ),
    ).resolves.toBeUndefined();
    expect(await harness.runtime.describeTask(task.taskArn)).toMatchObject({
      stoppedReason: 'manual',
    });
  });
});

describe('a task that ends on its own', () => {
  it('reports kill -9 from outside as EssentialContainerExited with exit code 137', async () => {
    // Prepare
    const task = await harness.runtime.startTask(specFor(harness.runtime));
    await harness.events.waitFor(
      (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'RUNNING',
    );

    // Act
    process.kill(pidOf(task.taskArn), 'SIGKILL');
    const stopped = await harness.events.waitFor(
      (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'STOPPED',
    );

    // Assess
    expect(stopped.detail).toMatchObject({
      lastStatus: 'STOPPED',
      stopCode: 'EssentialContainerExited',
      stoppedReason: 'killed by SIGKILL',
      containers: [{ exitCode: 137 }],
    });
    expect(stopped.detail.stoppedAt).toBeDefined();
  });

  it('reports an agent that exits by itself with its exit code', async () => {
    // Prepare / Act
    const task = await harness.runtime.startTask(
      specFor(harness.runtime, {
        environment: { BERTH_FIXTURE_MODE: 'exit-after-ready', BERTH_FIXTURE_EXIT_CODE: '2' },
      }),
    );
    const stopped = await harness.events.waitFor(
      (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'STOPPED',
    );

    // Assess
    expect(stopped.detail).toMatchObject({
      stopCode: 'EssentialContainerExited',
      stoppedReason: 'Essential container in task exited',
      containers: [{ exitCode: 2 }],
    });
    const earlier = await Promise.all(
      (['PENDING', 'RUNNING'] as const).map((status) =>
        harness.events.waitFor(
          (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === status,
        ),
      ),
    );
    expect([...earlier, stopped].map((event) => event.detail.version)).toEqual([1, 2, 3]);
  });
});

describe('the processes of a task (issue 12, case 5)', () => {
  /** The workload group the fixture started, read from its log once it is there. */
  async function workloadGroupOf(taskArn: string): Promise<number> {
    const task = await harness.runtime.describeTask(taskArn);
    const logPath = join(harness.dataDir, 'logs', `${task?.containerId}.g1.log`);
    let pgid: number | undefined;
    await eventually(async () => {
      const text = await readFile(logPath, 'utf8').catch(() => '');
      const line = text.split('\n').find((entry) => entry.includes('"fixture":"workload"'));
      if (line) pgid = (JSON.parse(line) as { pgid: number }).pgid;
      return pgid !== undefined;
    });
    return pgid ?? 0;
  }

  function groupAlive(pgid: number): boolean {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }

  function killGroup(pgid: number | undefined): void {
    if (pgid !== undefined && groupAlive(pgid)) process.kill(-pgid, 'SIGKILL');
  }

  it.each([
    ['a forced stop', 'ignore-sigterm'],
    ['kill -9 of the agent from outside', 'clean'],
  ])('ends the workload process groups of the agent with it after %s', async (how, mode) => {
    // Prepare
    let pgid: number | undefined;
    try {
      const task = await harness.runtime.startTask(
        specFor(harness.runtime, {
          environment: { BERTH_FIXTURE_MODE: mode, BERTH_FIXTURE_WORKLOAD: '1' },
        }),
      );
      await harness.events.waitFor(
        (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'RUNNING',
      );
      pgid = await workloadGroupOf(task.taskArn);
      expect(groupAlive(pgid)).toBe(true);

      // Act
      if (how === 'a forced stop') await harness.runtime.stopTask(task.taskArn, 'manual');
      else process.kill(pidOf(task.taskArn), 'SIGKILL');
      await harness.events.waitFor(
        (event) => event.detail.taskArn === task.taskArn && event.detail.lastStatus === 'STOPPED',
      );

      // Assess
      const group = pgid;
      await eventually(() => !groupAlive(group), 5000);
    } finally {
      killGroup(pgid);
    }
  });
});

describe('listing and describing', () => {
  it('lists the tasks not yet stopped and describes unknown ones as missing', async () => {
    // Prepare
    const pending = await harness.runtime.startTask(
      specFor(harness.runtime, { environment: { BERTH_FIXTURE_MODE: 'never-ready' } }),
    );
    const stopped = await harness.runtime.startTask(specFor(harness.runtime));
    await harness.runtime.stopTask(stopped.taskArn, 'manual');
    await harness.local.supervisor.waitForStop(stopped.taskArn);

    // Act
    const listed = await harness.runtime.listTasks();
    const unknown = await harness.runtime.describeTask(
      'arn:aws:ecs:local:000000000000:task/berth/00000000-0000-0000-0000-000000000000',
    );

    // Assess
    const arns = listed.map((task) => task.taskArn);
    expect(arns).toContain(pending.taskArn);
    expect(arns).not.toContain(stopped.taskArn);
    expect(listed.find((task) => task.taskArn === pending.taskArn)).toMatchObject({
      lastStatus: 'PENDING',
      containerId: pending.containerId,
    });
    expect(unknown).toBeUndefined();
  });
});

describe('shutting the runtime down', () => {
  it('stops every agent, reports each STOPPED and refuses new tasks', async () => {
    // Prepare: a runtime of its own, so the other tests keep theirs.
    const own = await startHarness();
    const polite = await own.runtime.startTask(specFor(own.runtime));
    const stubborn = await own.runtime.startTask(
      specFor(own.runtime, { environment: { BERTH_FIXTURE_MODE: 'ignore-sigterm' } }),
    );
    await own.events.waitFor(
      (event) => event.detail.taskArn === stubborn.taskArn && event.detail.lastStatus === 'RUNNING',
    );
    const pids = [polite, stubborn].map((task) => own.local.supervisor.pidOf(task.taskArn)!);

    // Act
    await own.local.supervisor.shutdown();

    // Assess
    for (const pid of pids) expect(isAlive(pid)).toBe(false);
    const politeStop = await own.events.waitFor(
      (event) => event.detail.taskArn === polite.taskArn && event.detail.lastStatus === 'STOPPED',
    );
    const stubbornStop = await own.events.waitFor(
      (event) => event.detail.taskArn === stubborn.taskArn && event.detail.lastStatus === 'STOPPED',
    );
    expect(politeStop.detail).toMatchObject({
      stoppedReason: SHUTDOWN_REASON,
      stopCode: 'UserInitiated',
    });
    expect(stubbornStop.detail.stoppedReason).toMatch(
      /^forced:.*grace period \(runtime shutting down\)$/,
    );
    await expect(own.runtime.startTask(specFor(own.runtime))).rejects.toMatchObject({
      code: 'unavailable',
    });
    await own.close();
  });
});

describe('waiting helpers', () => {
  it('fails when a condition is never met', async () => {
    await expect(eventually(() => false, 50)).rejects.toThrow(/not met/);
  });
});
