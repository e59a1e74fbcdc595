/**
 * The warm pool on the local stack (issue 16): real DynamoDB Local, fauxqs, the local runtime
 * and the workspace agent. docs/design.md, "The warm pool".
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ContainerJson, PoolMemberRecord } from '@berth/domain';
import type { RunningStack } from '../src/stack/harness.ts';
import {
  connect,
  eventually,
  http,
  isProcessAlive,
  onHost,
  receiveAnswer,
  sendToContainer,
  startStackRetrying,
  type StackClients,
} from './stack-helpers.ts';

type Discovered = { container: ContainerJson; source: string };

const POOL_SIZE = 5;
const MAX_AGE_SECONDS = 45;

let stack: RunningStack;
let clients: StackClients;

beforeAll(async () => {
  stack = await startStackRetrying({
    BERTH_IDLE_TIMEOUT: '10m',
    BERTH_POOL_SIZE: String(POOL_SIZE),
    BERTH_POOL_MAX_AGE: `${MAX_AGE_SECONDS}s`,
  });
  clients = await connect(stack);
}, 180_000);

afterAll(async () => {
  await clients?.close();
  await stack?.stop();
}, 120_000);

async function members(): Promise<PoolMemberRecord[]> {
  return (await clients.store.readPool(POOL_SIZE)).flatMap(({ member }) =>
    member ? [member] : [],
  );
}

/** Waits until every slot holds a free member (the reaper fills the pool on its tick). */
async function poolFull(): Promise<PoolMemberRecord[]> {
  return eventually(
    `${POOL_SIZE} free pool members`,
    async () => {
      const all = await members();
      const free = all.filter((member) => member.state === 'free' && member.controlQueueUrl);
      return free.length === POOL_SIZE ? free : undefined;
    },
    90_000,
  );
}

/** The agent process of a task, from the local runtime's log. */
function pidOfTask(taskArn: string): number | undefined {
  const log = readFileSync(join(stack.dataDir, 'logs', 'local-runtime.log'), 'utf8');
  for (const line of log.split('\n')) {
    if (!line.includes(taskArn) || !line.includes('task started')) continue;
    const entry = JSON.parse(line) as { taskArn?: string; pid?: number };
    if (entry.taskArn === taskArn && entry.pid !== undefined) return entry.pid;
  }
  return undefined;
}

const discover = (userId: string, projectId = 'site') =>
  http<Discovered>(stack, 'POST', '/v1/containers/discover', {
    body: { clientId: 'acme', projectId, userId },
  });

describe('the warm pool on the local stack', () => {
  it("serves a miss from a free member, which becomes that user's container with the workspace checked out", async () => {
    // Prepare
    const free = await poolFull();
    const freeTasks = new Set(free.map((member) => member.taskArn));

    // Act
    const answer = await discover('ann');

    // Assess
    expect(answer.status).toBe(201);
    expect(answer.body.source).toBe('pool');
    expect(answer.body.container).toMatchObject({
      containerId: 'acme.site.ann',
      generation: 1,
      status: 'running',
      fromPool: true,
    });
    expect(freeTasks.has(answer.body.container.taskArn)).toBe(true);
    // Read by its own key: the reaper may already have refilled its slot with the next member.
    const taken = free.find((m) => m.taskArn === answer.body.container.taskArn);
    const claimed = taken && (await clients.store.getPoolMember(taken.slot, taken.generation));
    expect(claimed).toMatchObject({ claimedBy: 'acme.site.ann', claimedGeneration: 1 });
    expect(['claimed', 'handed']).toContain(claimed?.state);
    // A message reaches the agent, which works in the project's checkout.
    const { inputQueueUrl, outputQueueUrl, workspacePath } = answer.body.container;
    await sendToContainer(clients.sqs, inputQueueUrl ?? '', {
      sessionId: 's-ann',
      threadId: 't-ann',
      text: 'hello from the pool',
    });
    const reply = await receiveAnswer(
      clients.sqs,
      outputQueueUrl ?? '',
      (a) => a.sessionId === 's-ann',
    );
    expect(reply.exitCode).toBe(0);
    expect(reply.text).toContain('hello from the pool');
    const workspace = onHost(stack, workspacePath ?? '');
    expect(existsSync(join(workspace, '.git'))).toBe(true);
    expect(existsSync(join(workspace, 'README.md'))).toBe(true);
    const stored = await clients.store.getContainer('acme.site.ann');
    expect(stored).toMatchObject({ status: 'running', fromPool: true });
  });

  it('never shows a pool member in a list of containers', async () => {
    // Prepare
    await poolFull();

    // Act: unfiltered (a scan) and by status (the status index)
    const all = await http<{ containers: ContainerJson[] }>(
      stack,
      'GET',
      '/v1/containers?limit=100',
    );
    const running = await http<{ containers: ContainerJson[] }>(
      stack,
      'GET',
      '/v1/containers?status=running&limit=100',
    );

    // Assess
    expect(all.status).toBe(200);
    expect(all.body.containers.length).toBeGreaterThan(0);
    for (const container of [...all.body.containers, ...running.body.containers]) {
      expect(container.containerId).toMatch(/^[a-z0-9-]+\.[a-z0-9-]+\.[a-z0-9-]+$/);
    }
    const poolTasks = new Set(
      (await members()).filter((m) => m.state === 'free').map((m) => m.taskArn),
    );
    expect(all.body.containers.some((c) => poolTasks.has(c.taskArn))).toBe(false);
  });

  it(`serves 20 simultaneous misses of 20 users with a pool of ${POOL_SIZE}: ${POOL_SIZE} from the pool, the rest cold, no member claimed twice`, async () => {
    // Prepare
    await poolFull();
    const users = Array.from({ length: 20 }, (_, n) => `burst-${n}`);

    // Act
    const answers = await Promise.all(users.map((user) => discover(user, 'burst')));

    // Assess
    for (const [n, answer] of answers.entries()) {
      expect(answer.status).toBe(201);
      expect(answer.body.container.containerId).toBe(`acme.burst.burst-${n}`);
      expect(answer.body.container.taskArn).toEqual(expect.any(String));
    }
    const sources = answers.map((answer) => answer.body.source);
    const fromPool = sources.filter((source) => source === 'pool').length;
    // The pool is refilled on the reaper's tick while the cold starts run, so a late request
    // may find a member that became free meanwhile: at least the pool's size, never a claim
    // without a member behind it.
    expect(fromPool).toBeGreaterThanOrEqual(POOL_SIZE);
    expect(sources.filter((source) => source === 'created')).toHaveLength(20 - fromPool);
    const taskArns = answers.map((answer) => answer.body.container.taskArn);
    expect(new Set(taskArns).size).toBe(20);
    for (const answer of answers) {
      expect(answer.body.container.fromPool).toBe(answer.body.source === 'pool');
    }
    // Every answer names one live container, as the store has it.
    const live = await eventually(
      'every burst container running',
      async () => {
        const stored = await Promise.all(
          users.map((user) => clients.store.getContainer(`acme.burst.${user}`)),
        );
        return stored.every((c) => c?.status === 'running') ? stored : undefined;
      },
      120_000,
    );
    expect(live.map((c) => c?.taskArn)).toEqual(taskArns);
  }, 180_000);

  it('falls back to a cold start when a claimed member is killed', async () => {
    // Prepare
    await poolFull();
    const first = await discover('kim');
    expect(first.body.source).toBe('pool');
    const pid = pidOfTask(first.body.container.taskArn ?? '');
    expect(pid).toEqual(expect.any(Number));

    // Act
    process.kill(pid ?? 0, 'SIGKILL');

    // Assess: the member's end fails the container it became, and the next discover is cold
    const failed = await eventually('kim failed', async () => {
      const stored = await clients.store.getContainer('acme.site.kim');
      return stored?.status === 'failed' ? stored : undefined;
    });
    expect(failed.stopReason).toMatch(/^crashed/);
    expect(isProcessAlive(pid ?? 0)).toBe(false);
    // The next discover starts generation 2: cold, or from the pool when a member is free.
    const again = await eventually('a cold generation 2', async () => {
      const answer = await discover('kim');
      return answer.body.container.generation === 2 ? answer : undefined;
    });
    expect(['pool', 'created']).toContain(again.body.source);
    expect(again.body.container.fromPool).toBe(again.body.source === 'pool');
  }, 120_000);

  it('leaves no member claimed by nobody when the claimer is SIGKILLed during claims', async () => {
    // Prepare
    await poolFull();
    const discoveryPid = Number(readFileSync(join(stack.dataDir, 'run', 'discovery.pid'), 'utf8'));

    // Act: five misses in flight, and the discovery process killed under them
    const inFlight = Array.from({ length: 5 }, (_, n) =>
      discover(`killed-${n}`, 'sigkill').catch(() => undefined),
    );
    await new Promise((resolve) => setTimeout(resolve, 30));
    process.kill(discoveryPid, 'SIGKILL');
    await Promise.all(inFlight);

    // Assess: every claimed member has a container that holds its task, and none stays
    // claimed (the reaper's tick finishes a hand-over its claimer left)
    const settled = await eventually(
      'no member left claimed',
      async () => {
        const all = await members();
        return all.some((member) => member.state === 'claimed') ? undefined : all;
      },
      60_000,
    );
    let claimedHere = 0;
    for (let slot = 0; slot < POOL_SIZE; slot += 1) {
      for (let generation = 1; ; generation += 1) {
        const member = await clients.store.getPoolMember(slot, generation);
        if (!member) break;
        // Members claimed by this test's users (earlier tests' containers moved on since).
        if (!member.claimedBy?.startsWith('acme.sigkill.')) continue;
        claimedHere += 1;
        expect(member.state).toBe('handed');
        const container = await clients.store.getContainer(member.claimedBy ?? '');
        expect(container?.taskArn).toBe(member.taskArn);
        expect(container?.generation).toBe(member.claimedGeneration);
      }
    }
    expect(settled.every((member) => member.state !== 'claimed')).toBe(true);
    // And every container of this test that says it came from the pool has its member.
    const fromPool = (
      await Promise.all(
        Array.from({ length: 5 }, (_, n) => clients.store.getContainer(`acme.sigkill.killed-${n}`)),
      )
    ).filter((container) => container?.fromPool);
    expect(fromPool).toHaveLength(claimedHere);
  }, 180_000);

  it('drains a free member of another task definition (after a deploy) and replaces it', async () => {
    // Prepare: a member as if started before a deploy changed the task definition
    const [member] = await poolFull();
    if (!member) throw new Error('no free member');
    const fromOldDeploy = {
      ...member,
      taskDefinition: 'berth-workspace:0',
      version: member.version + 1,
    };
    await clients.store.writePool({
      members: [{ record: fromOldDeploy, expectVersion: member.version }],
    });

    // Act: the reaper's next ticks
    const drained = await eventually('the old member drained', async () => {
      const current = await clients.store.getPoolMember(member.slot, member.generation);
      return current?.state === 'retired' ? current : undefined;
    });

    // Assess
    expect(drained.retiredReason).toBe('task_definition');
    const replacement = await eventually(
      'its slot refilled',
      async () => {
        const next = (await members()).find((m) => m.slot === member.slot);
        return next && next.generation > member.generation && next.state === 'free'
          ? next
          : undefined;
      },
      60_000,
    );
    expect(replacement.taskDefinition).toBe('berth-workspace');
    await eventually('its task stopped', () =>
      Promise.resolve(isProcessAlive(pidOfTask(member.taskArn ?? '') ?? 0) ? undefined : true),
    );
  }, 120_000);

  it(`replaces a free member older than BERTH_POOL_MAX_AGE (${MAX_AGE_SECONDS}s)`, async () => {
    // Prepare
    const before = await poolFull();
    const oldest = before.reduce((a, b) => (a.createdAt <= b.createdAt ? a : b));

    // Act: wait past its maximum age
    const retired = await eventually(
      'the oldest member retired for its age',
      async () => {
        const member = await clients.store.getPoolMember(oldest.slot, oldest.generation);
        return member?.state === 'retired' ? member : undefined;
      },
      (MAX_AGE_SECONDS + 30) * 1000,
    );

    // Assess
    expect(retired.retiredReason).toBe('max_age');
    const replacement = await eventually(
      'its slot refilled',
      async () => {
        const member = (await members()).find((m) => m.slot === oldest.slot);
        return member && member.generation > oldest.generation && member.state === 'free'
          ? member
          : undefined;
      },
      60_000,
    );
    expect(replacement.taskArn).not.toBe(oldest.taskArn);
    await eventually('its task stopped', async () =>
      (await clients.store.getPoolMember(oldest.slot, oldest.generation)) &&
      !isProcessAlive(pidOfTask(oldest.taskArn ?? '') ?? 0)
        ? true
        : undefined,
    );
  }, 180_000);
});

describe('a pool member that never starts', () => {
  let slow: RunningStack;
  let slowClients: StackClients;

  beforeAll(async () => {
    // Every agent waits a minute before it starts; a member must be running within 5 s.
    slow = await startStackRetrying({
      BERTH_POOL_SIZE: '1',
      BERTH_START_TIMEOUT: '5s',
      BERTH_LOCAL_START_DELAY: '60s',
    });
    slowClients = await connect(slow);
  }, 180_000);

  afterAll(async () => {
    await slowClients?.close();
    await slow?.stop();
  }, 120_000);

  it('is stopped and replaced once BERTH_START_TIMEOUT passes, and a miss meanwhile starts cold', async () => {
    // Act
    const timedOut = await eventually(
      'the first member timed out',
      async () => {
        const member = await slowClients.store.getPoolMember(0, 1);
        return member?.state === 'retired' ? member : undefined;
      },
      60_000,
    );
    const replacement = await eventually(
      'a second member starting',
      async () => {
        const [entry] = await slowClients.store.readPool(1);
        return entry?.member && entry.member.generation > 1 ? entry.member : undefined;
      },
      60_000,
    );
    const miss = await http<Discovered>(slow, 'POST', '/v1/containers/discover', {
      body: { clientId: 'acme', projectId: 'slow', userId: 'sam' },
    });

    // Assess
    expect(timedOut.retiredReason).toBe('start_timeout');
    expect(replacement.state).toBe('starting');
    expect(miss.status).toBe(201);
    expect(miss.body.source).toBe('created');
    expect(miss.body.container.fromPool).toBe(false);
  }, 150_000);
});
