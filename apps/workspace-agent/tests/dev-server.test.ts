/**
 * The dev server (issue 19): BERTH_DEV_SERVER_COMMAND run by a real agent process, as a real
 * child process listening on a real port, its states read from a real reports queue (fauxqs).
 */
import { describe, expect, it } from '@jest/globals';
import {
  CreateQueueCommand,
  DeleteMessageCommand,
  DeleteQueueCommand,
  ReceiveMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { threadRefName, worktreePathFor } from '@berth/domain';
import { existsSync } from 'node:fs';
import { readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { connect, createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  eventually,
  receiveOutputs,
  sendInput,
  showInBare,
  useAgentFixture,
  type AgentProcess,
} from './harness.ts';

const TIMEOUT = 90_000;
const fx = useAgentFixture('devserver');
const FIXTURE = fileURLToPath(new URL('./fixtures/dev-server.ts', import.meta.url));
const COMMAND = `"${process.execPath}" "${FIXTURE}"`;
const STATIC_SITE = fileURLToPath(new URL('../src/static-site.ts', import.meta.url));

interface Report {
  type: string;
  commandId: string;
  payload: {
    containerId: string;
    generation: number;
    state: string;
    port: number;
    restarts: number;
    since: string;
    sequence: number;
  };
}

/** A port nothing listens on now (the OS's pick), as the local runtime chooses one. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (typeof address !== 'object' || address === null) throw new Error('no port');
  return address.port;
}

/** Whether something accepts a TCP connection on 127.0.0.1:port (listening, HTTP or not). */
function portAnswers(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    const done = (answered: boolean): void => {
      socket.destroy();
      resolve(answered);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** What the fixture server saw: `connection` and `GET <url> <answer>` lines, in order. */
async function probesSeen(workspace: string): Promise<string[]> {
  const log = await readFile(join(workspace, 'probes.log'), 'utf8').catch(() => '');
  return log.split('\n').filter((line) => line !== '');
}

/** Makes the fixture answer every request so (a status, or `silent`); atomic, so no request reads half. */
async function answerWith(workspace: string, answer: string): Promise<void> {
  await writeFile(join(workspace, 'answer.next'), answer);
  await rename(join(workspace, 'answer.next'), join(workspace, 'answer'));
}

async function reportsQueue(sqs: SQSClient): Promise<string> {
  const { QueueUrl } = await sqs.send(
    new CreateQueueCommand({ QueueName: `agent-reports-${Date.now().toString(36)}` }),
  );
  if (!QueueUrl) throw new Error('no reports queue');
  return QueueUrl;
}

/** Reads reports off the queue until `count` arrived in all; ordered by sequence. */
function reportReader(sqs: SQSClient, queueUrl: string) {
  const seen: Report[] = [];
  return async (count: number): Promise<Report[]> => {
    await eventually(
      `${count} dev server reports (have ${JSON.stringify(seen.map((r) => r.payload.state))})`,
      async () => {
        const { Messages = [] } = await sqs.send(
          new ReceiveMessageCommand({
            QueueUrl: queueUrl,
            MaxNumberOfMessages: 10,
            WaitTimeSeconds: 1,
          }),
        );
        for (const message of Messages) {
          seen.push(JSON.parse(message.Body ?? '{}') as Report);
          await sqs.send(
            new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }),
          );
        }
        return seen.length >= count;
      },
      45_000,
    );
    return [...seen].sort((a, b) => a.payload.sequence - b.payload.sequence);
  };
}

/** The process groups the agent told its runtime about (its workloads', its dev server's). */
const processGroups = (agent: AgentProcess): number[] =>
  agent.notices.flatMap((notice) => {
    const pgid = (notice as { pgid?: unknown }).pgid;
    return notice.type === 'workload' && typeof pgid === 'number' ? [pgid] : [];
  });

function isGroupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * An agent running `command` as its dev server on a free port, reporting to a fresh reports
 * queue; `extra` adds to (or overrides) its environment. Resolves once the agent is ready.
 */
async function startAgentWithDevServer(
  options: { command?: string; extra?: Record<string, string> } = {},
) {
  const port = await freePort();
  const queue = await reportsQueue(fx.sqs);
  const reports = reportReader(fx.sqs, queue);
  const workspace = join(fx.root, 'workspace');
  const agent = fx.agent({
    workspacePath: workspace,
    extra: {
      BERTH_AGENT_REPORTS_URL: queue,
      BERTH_DEV_SERVER_COMMAND: options.command ?? COMMAND,
      BERTH_DEV_SERVER_PORT: String(port),
      ...options.extra,
    },
  });
  await agent.ready;
  return { port, reports, workspace, agent };
}

describe('the dev server', () => {
  it(
    'starts once the workspace is ready, in the main checkout with PORT, and is up only once it answers HTTP on BERTH_DEV_SERVER_READY_PATH',
    async () => {
      // Prepare
      const port = await freePort();
      const queue = await reportsQueue(fx.sqs);
      const reports = reportReader(fx.sqs, queue);
      const workspace = join(fx.root, 'workspace');

      // Act 1: the agent starts; the server runs but does not listen yet.
      const agent = fx.agent({
        workspacePath: workspace,
        generation: 4,
        extra: {
          BERTH_AGENT_REPORTS_URL: queue,
          BERTH_DEV_SERVER_COMMAND: COMMAND,
          BERTH_DEV_SERVER_PORT: String(port),
          BERTH_DEV_SERVER_READY_PATH: '/ready?probe=1',
          DEV_SERVER_WAIT_FOR_GO: '1',
        },
      });
      await agent.ready;
      const [starting] = await reports(1);
      await eventually('the server writing in the main checkout', () =>
        existsSync(join(workspace, 'served.log')),
      );
      const answeredWhileStarting = await portAnswers(port);

      // Act 2: it listens.
      await writeFile(join(workspace, 'go'), '');
      const [, up] = await reports(2);
      const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();

      // Assess
      expect(starting).toEqual({
        type: 'devserver.state',
        commandId: expect.stringMatching(
          /^agent-devserver\.state-[0-9a-f]{40}$/,
        ) as unknown as string,
        payload: {
          containerId: 'acme.website.john',
          generation: 4,
          state: 'starting',
          port,
          restarts: 0,
          since: expect.any(String) as unknown as string,
          sequence: 1,
        },
      });
      expect(answeredWhileStarting).toBe(false);
      expect(up?.payload).toMatchObject({ state: 'up', port, restarts: 0, sequence: 2 });
      expect(Date.parse(up?.payload.since ?? '')).toBeGreaterThanOrEqual(
        Date.parse(starting?.payload.since ?? ''),
      );
      expect(page).toMatch(/^dev server \d+ in /);
      // Readiness was asked on BERTH_DEV_SERVER_READY_PATH.
      expect(await probesSeen(workspace)).toContain('GET /ready?probe=1 200');
      // The workspace was prepared (cloned) before the server was started.
      const messages = agent.logs.map((line) => line.msg);
      expect(messages.indexOf('workspace prepared')).toBeGreaterThanOrEqual(0);
      expect(messages.indexOf('workspace prepared')).toBeLessThan(
        messages.indexOf('starting the dev server'),
      );
      expect((await agent.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'is up only once it answers HTTP below 500: never while it answers 500 or never answers, up on a 404, starting again on 500s while up',
    async () => {
      // Prepare: a server that will listen and answer every request with 500.
      const { port, reports, workspace, agent } = await startAgentWithDevServer({
        extra: { DEV_SERVER_WAIT_FOR_GO: '1' },
      });
      await reports(1);
      await eventually('the server running in the main checkout', () =>
        existsSync(join(workspace, 'served.log')),
      );
      await answerWith(workspace, '500');

      // Act 1: it listens (connections accepted) and answers every request with 500.
      await writeFile(join(workspace, 'go'), '');
      await eventually(
        'three connections to the listening server',
        async () =>
          (await probesSeen(workspace)).filter((line) => line === 'connection').length >= 3,
      );
      const whileErrors = await probesSeen(workspace);
      const reportedWhileErrors = await reports(1);
      // Checked now: the phases below would wait forever for requests a TCP-only probe never makes.
      expect(reportedWhileErrors.map((r) => r.payload.state)).toEqual(['starting']);

      // Act 2: it accepts connections and never answers.
      await answerWith(workspace, 'silent');
      await eventually(
        'two unanswered requests (the first one given up)',
        async () =>
          (await probesSeen(workspace)).filter((line) => line === 'GET / silent').length >= 2,
      );
      const reportedWhileSilent = await reports(1);

      // Act 3: it answers 404 on / (serving, just no page there).
      const servingFrom = Date.now();
      await answerWith(workspace, '404');
      const [, up] = await reports(2);

      // Act 4: while up, it answers 500 again (an edit broke it).
      await answerWith(workspace, '500');
      const all = await reports(3);

      // Assess
      expect(whileErrors.filter((line) => line.startsWith('GET ')).length).toBeGreaterThan(0);
      expect(whileErrors.filter((line) => line.startsWith('GET ') && line !== 'GET / 500')).toEqual(
        [],
      );
      expect(reportedWhileSilent.map((r) => r.payload.state)).toEqual(['starting']);
      expect(up?.payload).toMatchObject({ state: 'up', port, restarts: 0, sequence: 2 });
      expect(Date.parse(up?.payload.since ?? '')).toBeGreaterThanOrEqual(servingFrom);
      expect(all.map((r) => [r.payload.state, r.payload.sequence, r.payload.restarts])).toEqual([
        ['starting', 1, 0],
        ['up', 2, 0],
        ['starting', 3, 0],
      ]);
      // Not restarted: the same process answered throughout.
      expect(processGroups(agent)).toHaveLength(1);
      expect((await agent.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'starts a crashed server again after a backoff, reporting crashed, then starting and up',
    async () => {
      // Prepare: a server that is up.
      const { port, reports, agent } = await startAgentWithDevServer();
      await reports(2);
      const [first] = processGroups(agent);
      const before = await (await fetch(`http://127.0.0.1:${port}/`)).text();

      // Act: it dies (killed, as an out-of-memory kill would).
      process.kill(-(first ?? 0), 'SIGKILL');
      const all = await reports(5);
      const page = await (await fetch(`http://127.0.0.1:${port}/`)).text();

      // Assess
      expect(all.map((r) => [r.payload.state, r.payload.restarts, r.payload.sequence])).toEqual([
        ['starting', 0, 1],
        ['up', 0, 2],
        ['crashed', 0, 3],
        ['starting', 1, 4],
        ['up', 1, 5],
      ]);
      const crashedAt = Date.parse(all[2]?.payload.since ?? '');
      const restartedAt = Date.parse(all[3]?.payload.since ?? '');
      // The first restart waits 1 s times a factor of at least 0.5.
      expect(restartedAt - crashedAt).toBeGreaterThanOrEqual(500);
      const groups = processGroups(agent);
      expect(groups).toHaveLength(2);
      expect(groups[1]).not.toBe(first);
      // Another process answers now.
      expect(page).toMatch(/^dev server \d+ in /);
      expect(page).not.toBe(before);
      expect((await agent.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'is starting again while an up server stops answering on its port, and up once it answers, without a restart',
    async () => {
      // Prepare: a server that is up.
      const { port, reports, workspace, agent } = await startAgentWithDevServer();
      await reports(2);
      const before = await (await fetch(`http://127.0.0.1:${port}/`)).text();

      // Act: it stops listening (hung, or reloading), then listens again.
      await writeFile(join(workspace, 'pause'), '');
      const [, , notAnswering] = await reports(3);
      await rm(join(workspace, 'pause'));
      const all = await reports(4);
      const after = await (await fetch(`http://127.0.0.1:${port}/`)).text();

      // Assess
      expect(notAnswering?.payload).toMatchObject({ state: 'starting', restarts: 0 });
      expect(all.map((r) => r.payload.state)).toEqual(['starting', 'up', 'starting', 'up']);
      expect(all[3]?.payload.restarts).toBe(0);
      expect(processGroups(agent)).toHaveLength(1);
      expect(after).toBe(before);
      expect((await agent.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'reports the latest state once the reports queue is reachable again, the older one superseded',
    async () => {
      // Prepare: the reports queue is gone when the agent starts.
      const port = await freePort();
      const name = `agent-reports-gone-${Date.now().toString(36)}`;
      const { QueueUrl: queue = '' } = await fx.sqs.send(
        new CreateQueueCommand({ QueueName: name }),
      );
      await fx.sqs.send(new DeleteQueueCommand({ QueueUrl: queue }));
      const agent = fx.agent({
        workspacePath: join(fx.root, 'workspace'),
        extra: {
          BERTH_AGENT_REPORTS_URL: queue,
          BERTH_DEV_SERVER_COMMAND: COMMAND,
          BERTH_DEV_SERVER_PORT: String(port),
        },
      });
      await agent.ready;
      await eventually(
        'a failed report and the server up',
        async () =>
          agent.logs.some(
            (line) => line.msg === 'could not report the dev server state; trying again',
          ) && (await portAnswers(port)),
      );

      // Act: the queue is back.
      await fx.sqs.send(new CreateQueueCommand({ QueueName: name }));
      const [first] = await reportReader(fx.sqs, queue)(1);

      // Assess: the state now, not the one that failed first.
      expect(first?.payload).toMatchObject({ state: 'up', sequence: 2 });
      expect((await agent.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'is stopped before the final save: what it wrote until then is saved, nothing after',
    async () => {
      // Prepare: a server up and writing in the main checkout.
      const { port, reports, workspace, agent } = await startAgentWithDevServer();
      await reports(2);
      const [pgid] = processGroups(agent);

      // Act
      const { code } = await agent.stop();

      // Assess: its SIGTERM came before the save, which has its last line.
      expect(code).toBe(0);
      const saved = await showInBare(fx.bare, 'workspace/john', 'served.log');
      expect(saved?.trimEnd().split('\n').at(-1)).toBe('stopped');
      expect(await readFile(join(workspace, 'served.log'), 'utf8')).toBe(saved);
      expect(isGroupAlive(pgid ?? 0)).toBe(false);
      expect(await portAnswers(port)).toBe(false);
    },
    TIMEOUT,
  );

  it(
    "runs in BERTH_DEV_SERVER_THREAD's worktree, which a closing session leaves in place",
    async () => {
      // Prepare
      const port = await freePort();
      const queue = await reportsQueue(fx.sqs);
      const reports = reportReader(fx.sqs, queue);
      const workspace = join(fx.root, 'workspace');
      const worktree = worktreePathFor(workspace, 'site');
      const agent = fx.agent({
        workspacePath: workspace,
        extra: {
          BERTH_AGENT_REPORTS_URL: queue,
          BERTH_DEV_SERVER_COMMAND: COMMAND,
          BERTH_DEV_SERVER_PORT: String(port),
          BERTH_DEV_SERVER_THREAD: 'site',
        },
      });
      await agent.ready;
      await reports(2);

      // Act: a session opens and leaves the thread.
      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.open',
        threadId: 'site',
        sessionId: 's-1',
      });
      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.close',
        threadId: 'site',
        sessionId: 's-1',
      });
      await eventually('the close handled', () =>
        agent.logs.some((line) => line.msg === "the dev server's thread stays open"),
      );
      const { code } = await agent.stop();

      // Assess
      expect(existsSync(join(worktree, 'served.log'))).toBe(true);
      expect(existsSync(join(workspace, 'served.log'))).toBe(false);
      expect(code).toBe(0);
      const saved = await showInBare(fx.bare, 'thread/john/site', 'served.log');
      expect(saved?.trimEnd().split('\n').at(-1)).toBe('stopped');
    },
    TIMEOUT,
  );

  it(
    "the local stack's static server serves what a session wrote, and nothing through .git or outside the workspace",
    async () => {
      // Prepare: the static server as the dev server; a link out of the workspace.
      const { port, reports, workspace, agent } = await startAgentWithDevServer({
        command: `"${process.execPath}" "${STATIC_SITE}"`,
      });
      await reports(2);
      await writeFile(join(fx.root, 'secret.txt'), 'outside\n');
      await symlink(join(fx.root, 'secret.txt'), join(workspace, 'link.txt'));

      // Act: a session's message writes CHAT.md in its thread's worktree (the built-in workload).
      await sendInput(fx.sqs, fx.queues.input, {
        type: 'thread.open',
        threadId: 'chat:1',
        sessionId: 's-1',
      });
      await sendInput(fx.sqs, fx.queues.input, {
        sessionId: 's-1',
        threadId: 'chat:1',
        text: 'hello preview',
      });
      await receiveOutputs(fx.sqs, fx.queues.output, 1);
      const base = `http://127.0.0.1:${port}`;
      const get = async (path: string) => {
        const response = await fetch(`${base}${path}`);
        return { status: response.status, body: await response.text() };
      };
      const chat = await get(
        `/.berth/worktrees/${encodeURIComponent(threadRefName('chat:1'))}/CHAT.md`,
      );
      const readme = await get('/README.md');
      const listing = await get('/');
      const threads = await get('/.berth/worktrees');
      const refused = await Promise.all(
        [
          '/.git/config',
          '/.git/HEAD',
          `/.berth/worktrees/${encodeURIComponent(threadRefName('chat:1'))}/.git`,
          '/%2egit/config',
          '/a/%2e%2e/%2e%2e/secret.txt',
          '/..%2fsecret.txt',
          '/link.txt',
        ].map(get),
      );

      // Assess
      expect(chat).toEqual({ status: 200, body: 'hello preview\n' });
      expect(readme).toEqual({ status: 200, body: '# project\n' });
      // No index.html: the directory's entries, linked relatively, never .git.
      expect(listing.status).toBe(200);
      expect(listing.body).toContain('<a href="README.md">README.md</a>');
      expect(listing.body).toContain('<a href=".berth/">.berth/</a>');
      expect(listing.body).not.toContain('.git/');
      expect(threads.body).toContain(
        `<a href="worktrees/${encodeURIComponent(threadRefName('chat:1'))}/">`,
      );
      for (const answer of refused) {
        expect([400, 404]).toContain(answer.status);
        expect(answer.body).not.toContain('outside');
        expect(answer.body).not.toContain('[core]');
      }
      expect((await agent.stop()).code).toBe(0);
    },
    TIMEOUT,
  );
});
