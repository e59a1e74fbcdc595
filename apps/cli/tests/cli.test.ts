/**
 * The real `berth` command line, run as a child process against one local stack: what it
 * prints, in human and JSON form, and its exit codes (0 ok, 2 bad input, 3 not found,
 * 4 not allowed, 5 unavailable).
 */
import { execFile, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BerthEvent, ContainerJson, SessionJson } from '@berth/domain';
import {
  CommandSender,
  createSqsClient,
  localLifecycleTopicArn,
  resolveMessaging,
  createSnsClient,
} from '@berth/messaging';
import { freePort } from '@berth/testing';
// eslint-disable-next-line @nx/enforce-module-boundaries -- end-to-end tests of the CLI run against the local stack's own test harness
import { startStack, type RunningStack } from '../../../tools/src/stack/harness.ts';

const CLI = fileURLToPath(new URL('../src/main.ts', import.meta.url));

let stack: RunningStack;

beforeAll(async () => {
  stack = await startStack({ BERTH_IDLE_TIMEOUT: '10m' });
}, 240_000);

afterAll(async () => {
  await stack?.stop();
}, 120_000);

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The environment a user of this stack has: its ports, data directory and AWS endpoints. */
function stackEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env))
    if (!name.startsWith('BERTH_')) env[name] = value;
  return { ...env, ...stack.env };
}

function berth(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: stackEnv(), timeout: 150_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : null) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const json = <T>(run: Run): T => JSON.parse(run.stdout) as T;

describe('berth --help', () => {
  it('names every command', async () => {
    // Act
    const [top, containers, sessions] = await Promise.all([
      berth('--help'),
      berth('containers', '--help'),
      berth('sessions', '--help'),
    ]);

    // Assess
    expect(top.code).toBe(0);
    for (const command of [
      'discover',
      'prewarm',
      'containers',
      'sessions',
      'send',
      'events',
      'history',
      'webhook',
      'usage',
      'token',
    ])
      expect(top.stdout).toContain(command);
    for (const command of ['ls', 'get', 'stop', 'history'])
      expect(containers.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
    for (const command of ['ls', 'get', 'assign', 'release', 'touch'])
      expect(sessions.stdout).toMatch(new RegExp(`^\\s+${command}\\b`, 'm'));
  });
});

describe('containers', () => {
  it('discovers a container, in words and in JSON, and finds the same one again', async () => {
    // Act
    const started = await berth('discover', 'acme', 'web', 'ann', '--wait', '30');
    const again = await berth('--json', 'discover', 'acme', 'web', 'ann');

    // Assess
    expect(started.code).toBe(0);
    expect(started.stdout).toMatch(/^started \(source: created\)/);
    expect(started.stdout).toMatch(/container\s+acme\.web\.ann \(generation 1\)/);
    expect(started.stdout).toMatch(/status\s+running/);
    expect(again.code).toBe(0);
    const body = json<{ container: ContainerJson; source: string }>(again);
    expect(['cache', 'store']).toContain(body.source);
    expect(body.container).toMatchObject({
      containerId: 'acme.web.ann',
      generation: 1,
      status: 'running',
    });
  });

  it('prewarms a container without waiting: a discover then finds that one, and a second prewarm starts nothing', async () => {
    // Act
    const hinted = await berth('prewarm', 'acme', 'web', 'pat');
    const found = await berth('--json', 'discover', 'acme', 'web', 'pat', '--wait', '30');
    const again = await berth('--json', 'prewarm', 'acme', 'web', 'pat');
    const badArgument = await berth('prewarm', 'acme', 'Web', 'pat');

    // Assess
    expect(hinted.code).toBe(0);
    expect(hinted.stdout).toMatch(/^prewarming acme\.web\.pat\b/);
    expect(found.code).toBe(0);
    expect(json<{ container: ContainerJson }>(found).container).toMatchObject({
      containerId: 'acme.web.pat',
      generation: 1,
      status: 'running',
    });
    expect(again.code).toBe(0);
    expect(json<{ containerId: string }>(again)).toEqual({ containerId: 'acme.web.pat' });
    const shown = await berth('--json', 'containers', 'get', 'acme.web.pat');
    expect(json<{ container: ContainerJson }>(shown).container).toMatchObject({
      generation: 1,
      status: 'running',
    });
    expect(badArgument.code).toBe(2);
    expect(badArgument.stderr).toContain('projectId');
  });

  it('lists and shows containers', async () => {
    // Act
    const [table, listed, shown, shownJson] = await Promise.all([
      berth('containers', 'ls'),
      berth('--json', 'containers', 'ls', '--client', 'acme', '--status', 'running'),
      berth('containers', 'get', 'acme.web.ann'),
      berth('--json', 'containers', 'get', 'acme.web.ann'),
    ]);

    // Assess
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^CONTAINER\s+STATUS\s+GEN\s+SESSIONS/);
    expect(table.stdout).toMatch(/^acme\.web\.ann\s+running\s+1\s+0/m);
    expect(
      json<{ containers: ContainerJson[] }>(listed).containers.map((c) => c.containerId),
    ).toContain('acme.web.ann');
    expect(shown.code).toBe(0);
    expect(shown.stdout).toMatch(/container\s+acme\.web\.ann \(generation 1\)/);
    expect(json<{ container: ContainerJson }>(shownJson).container).toMatchObject({
      containerId: 'acme.web.ann',
      status: 'running',
    });
  });

  it('answers a container that does not exist with exit code 3', async () => {
    // Act
    const missing = await berth('containers', 'get', 'acme.nothing.here');

    // Assess
    expect(missing.code).toBe(3);
    expect(missing.stderr).toContain('not_found');
    expect(missing.stdout).toBe('');
  });
});

describe('sessions', () => {
  it('assigns a session and waits for its event, then lists and shows it', async () => {
    // Act
    const assigned = await berth(
      'sessions',
      'assign',
      'cli-s1',
      'acme',
      'web',
      'ann',
      '--thread',
      'chat-1',
      '--wait',
    );
    const assignedJson = await berth(
      '--json',
      'sessions',
      'assign',
      'cli-s2',
      'acme',
      'web',
      'ann',
      '--wait',
    );
    const [table, shown] = await Promise.all([
      berth('sessions', 'ls', 'acme.web.ann'),
      berth('--json', 'sessions', 'get', 'cli-s1'),
    ]);

    // Assess
    expect(assigned.code).toBe(0);
    expect(assigned.stdout).toMatch(/^session\.assigned: /);
    expect(assigned.stdout).toContain('"containerId":"acme.web.ann"');
    expect(assignedJson.code).toBe(0);
    expect(json<BerthEvent>(assignedJson)).toMatchObject({
      type: 'session.assigned',
      sessionId: 'cli-s2',
      payload: { containerId: 'acme.web.ann', sessionCount: 2, reused: true },
    });
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^SESSION\s+STATUS\s+CONTAINER\s+THREAD/);
    expect(table.stdout).toMatch(/^cli-s1\s+active\s+acme\.web\.ann\s+chat-1/m);
    expect(table.stdout).toMatch(/^cli-s2\s+active\s+acme\.web\.ann/m);
    expect(json<{ session: SessionJson }>(shown).session).toMatchObject({
      sessionId: 'cli-s1',
      status: 'active',
      threadId: 'chat-1',
    });
  });

  it('refuses an invalid payload or argument, naming the field, with exit code 2', async () => {
    // Act
    const [badField, extraField, notJson] = await Promise.all([
      berth(
        'send',
        'session.assign',
        '{"sessionId":"x","clientId":"Bad_Client","projectId":"web","userId":"ann"}',
      ),
      berth('send', 'session.release', '{"sessionId":"x","force":true}'),
      berth('send', 'session.touch', '{sessionId'),
    ]);
    const badArgument = await berth('discover', 'Acme', 'web', 'ann');

    // Assess
    expect(badField.code).toBe(2);
    expect(badField.stderr).toContain('payload.clientId');
    expect(extraField.code).toBe(2);
    expect(extraField.stderr).toContain('payload.force');
    expect(notJson.code).toBe(2);
    expect(notJson.stderr).toContain('not valid JSON');
    expect(badArgument.code).toBe(2);
    expect(badArgument.stderr).toContain('clientId');
  });
});

describe('tokens and access', () => {
  it('mints a token that works for its own user and not for another one (exit code 4)', async () => {
    // Act
    const [minted, mintedForBob] = await Promise.all([
      berth('token', '--client', 'acme', '--user', 'ann', '--role', 'user'),
      berth('--json', 'token', '--client', 'acme', '--user', 'bob', '--role', 'user'),
    ]);
    const token = minted.stdout.trim();
    const bobToken = json<{ token: string }>(mintedForBob).token;
    const [own, other, forged] = await Promise.all([
      berth('--token', token, 'containers', 'get', 'acme.web.ann'),
      berth('--token', bobToken, 'containers', 'get', 'acme.web.ann'),
      berth('--token', `${token.slice(0, -4)}AAAA`, 'containers', 'get', 'acme.web.ann'),
    ]);

    // Assess
    expect(minted.code).toBe(0);
    const claims = JSON.parse(
      Buffer.from(token.split('.')[1] ?? '', 'base64url').toString('utf8'),
    ) as Record<string, unknown>;
    expect(claims).toMatchObject({ client: 'acme', sub: 'ann', role: 'user' });
    expect(own.code).toBe(0);
    expect(other.code).toBe(4);
    expect(other.stderr).toContain('forbidden');
    expect(forged.code).toBe(4);
    expect(forged.stderr).toContain('unauthenticated');
  });

  it('says berth is unavailable, with exit code 5, when nothing answers at the URL', async () => {
    // Prepare
    const closed = await freePort();

    // Act
    const unreachable = await berth('--url', `http://127.0.0.1:${closed}`, 'containers', 'ls');

    // Assess
    expect(unreachable.code).toBe(5);
    expect(unreachable.stderr).toContain(`cannot reach berth at http://127.0.0.1:${closed}`);
  });
});

describe('events', () => {
  it('prints an event from the lifecycle topic and stops after --count', async () => {
    // Prepare: the subscription exists only once the CLI has opened it, so keep causing
    // events (a bad command answers with command.rejected) until the CLI has printed one
    for (const [name, value] of Object.entries(stack.env))
      if (name.startsWith('AWS_')) process.env[name] = value;
    const sqs = createSqsClient();
    const sns = createSnsClient();
    const { lifecycleCommandsUrl } = await resolveMessaging({
      sqs,
      sns,
      topicArn: await localLifecycleTopicArn(sns, process.env.BERTH_LIFECYCLE_TOPIC_ARN),
    });
    const sender = new CommandSender({ sqs, queueUrl: lifecycleCommandsUrl });
    const child = spawn(
      process.execPath,
      [CLI, '--json', 'events', '--count', '1', '--type', 'command.rejected'],
      {
        env: stackEnv(),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    const exited = once(child, 'exit') as Promise<[number | null]>;
    let done = false;
    void exited.then(() => (done = true));

    // Act
    const deadline = Date.now() + 60_000;
    try {
      while (!done && Date.now() < deadline) {
        await sender.send('not json: cause a command.rejected');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 1_000))]);
      }
    } finally {
      if (!done) child.kill('SIGINT');
      sqs.destroy();
      sns.destroy();
    }
    const [code] = await exited;

    // Assess
    expect(code).toBe(0);
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '')).toMatchObject({
      type: 'command.rejected',
      payload: { reason: 'body is not valid JSON' },
    });
  });
});

describe('containers stop', () => {
  it('stops a container gracefully and records the reason', async () => {
    // Act
    const stopping = await berth('containers', 'stop', 'acme.web.ann', '--reason', 'cli test');
    const after = await berth('--json', 'containers', 'get', 'acme.web.ann');

    // Assess
    expect(stopping.code).toBe(0);
    expect(stopping.stdout).toMatch(/^stopping/);
    const { container } = json<{ container: ContainerJson }>(after);
    expect(['terminating', 'stopped']).toContain(container.status);
    expect(container.stopReason).toBe('manual:cli test');
  });

  it('shows the stopped generation, its events and the usage from the lifecycle history', async () => {
    // Prepare: the task watcher keeps the stop once it is published (a few seconds).
    type Generations = { generations: Array<{ status: string; stopReason: string | null }> };
    let history: Run | undefined;
    for (const deadline = Date.now() + 90_000; Date.now() < deadline;) {
      history = await berth('--json', 'containers', 'history', 'acme.web.ann');
      if (history.code === 0 && json<Generations>(history).generations[0]?.status === 'stopped')
        break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }

    // Act
    const words = await berth('containers', 'history', 'acme.web.ann');
    const events = await berth(
      '--json',
      'history',
      '--container',
      'acme.web.ann',
      '--type',
      'container.*',
    );
    const usage = await berth('usage', '--client', 'acme');
    const bad = await berth('history', '--type', 'container.nope');

    // Assess
    expect(json<Generations>(history!).generations[0]).toMatchObject({
      status: 'stopped',
      stopReason: 'manual:cli test',
    });
    expect(words.stdout).toMatch(/^GEN\s+STATUS/);
    expect(words.stdout).toContain('manual:cli test');
    const types = json<{ events: BerthEvent[] }>(events).events.map((event) => event.type);
    expect(types[0]).toBe('container.stopped');
    expect(types).toContain('container.created');
    expect(usage.code).toBe(0);
    expect(usage.stdout).toMatch(/^DAY\s+CLIENT\s+PROJECT/);
    expect(usage.stdout).toMatch(/acme\s+web\s+\d+\.\d{3}/);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('type');
  });
});

/** `berth` with `input` on its standard input (then closed), as a script drives `chat`. */
function berthWithInput(input: string, ...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: stackEnv() });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

describe('chat, checkpoints and revert (issue 15)', () => {
  interface Reply {
    text: string;
    exitCode: number;
    checkpoint: string | null;
  }
  interface Listed {
    checkpoints: { commit: string; revertOf: string | null; files: string[] }[];
    nextCursor: string | null;
  }

  /** The checkpoints once `count` are recorded (they are recorded as they are announced). */
  async function checkpointsOnce(sessionId: string, count: number): Promise<Listed> {
    const deadline = Date.now() + 60_000;
    for (;;) {
      const listed = await berth('--json', 'checkpoints', sessionId);
      if (listed.code === 0 && json<Listed>(listed).checkpoints.length >= count)
        return json<Listed>(listed);
      if (Date.now() > deadline)
        throw new Error(`fewer than ${count} checkpoints: ${listed.stdout}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  it('chats line by line with a checkpoint per reply, lists them newest first, reverts, and hides them from another user', async () => {
    const assigned = await berth(
      'sessions',
      'assign',
      'cli-cp1',
      'acme',
      'notes',
      'eve',
      '--thread',
      'diary',
      '--wait',
    );
    expect(assigned.code).toBe(0);

    // Act: two lines, two replies, each a checkpoint (the default workload appends to CHAT.md).
    const chat = await berthWithInput('first entry\nsecond entry\n', '--json', 'chat', 'cli-cp1');
    const replies = chat.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Reply);
    const listed = await checkpointsOnce('cli-cp1', 2);
    const first = replies[0]?.checkpoint ?? '';
    const reverted = await berth('--json', 'revert', 'cli-cp1', first);
    const after = await checkpointsOnce('cli-cp1', 3);
    const again = await berthWithInput('third entry\n', '--json', 'chat', 'cli-cp1');
    const notACheckpoint = await berth('revert', 'cli-cp1', 'f'.repeat(40));
    const othersToken = await berth(
      'token',
      '--client',
      'acme',
      '--user',
      'mallory',
      '--role',
      'user',
    );
    const others = await berth('--token', othersToken.stdout.trim(), 'checkpoints', 'cli-cp1');

    // Assess
    expect(chat.code).toBe(0);
    expect(replies.map((r) => r.text)).toEqual(['first entry', 'second entry']);
    expect(replies.every((r) => /^[0-9a-f]{40}$/.test(r.checkpoint ?? ''))).toBe(true);
    expect(listed.checkpoints.map((c) => c.commit)).toEqual(
      [...replies].reverse().map((r) => r.checkpoint),
    );
    expect(listed.checkpoints[0]?.files).toEqual(['CHAT.md']);
    expect(reverted.code).toBe(0);
    expect(after.checkpoints[0]?.revertOf).toBe(first);
    // The thread's next message sees the earlier tree: CHAT.md has the first entry only.
    expect((JSON.parse(again.stdout.trim()) as Reply).text).toBe('third entry');
    const fourth = await checkpointsOnce('cli-cp1', 4);
    expect(fourth.checkpoints[0]?.files).toEqual(['CHAT.md']);
    // On the project's repository before any stop, on the user's own branch of the thread.
    const onBranch = execFileSync('git', ['show', 'thread/eve/diary:CHAT.md'], {
      cwd: `${stack.dataDir}/repos/acme/notes.git`,
      encoding: 'utf8',
    });
    expect(onBranch).toBe('first entry\nthird entry\n');
    expect(notACheckpoint.code).toBe(2);
    expect(notACheckpoint.stderr).toContain('checkpoint');
    expect(others.code).toBe(3);
  });
});

describe('webhook', () => {
  it('sets, reads, lists and removes a webhook; the secret comes from a file and is never printed', async () => {
    // Arrange: the local stack allows http to this machine's loopback.
    const secret = `whsec-cli-${Date.now()}-0123456789`;
    const secretFile = join(mkdtempSync(join(tmpdir(), 'berth-cli-')), 'secret');
    writeFileSync(secretFile, `${secret}\n`);
    const port = await freePort();

    // Act
    const set = await berth(
      '--json',
      'webhook',
      'set',
      'hookco',
      '--endpoint',
      `http://127.0.0.1:${port}/hook`,
      '--event',
      'container.*',
      'session.released',
      '--secret-file',
      secretFile,
    );
    const read = await berth('webhook', 'get', 'hookco');
    const listed = await berth('--json', 'webhook', 'deliveries', 'hookco', '--status', 'dead');
    const ssrf = await berth(
      'webhook',
      'set',
      'hookco',
      '--endpoint',
      'http://169.254.169.254/latest/meta-data/',
      '--event',
      '*',
      '--secret-file',
      secretFile,
    );
    const removed = await berth('webhook', 'rm', 'hookco');
    const gone = await berth('webhook', 'get', 'hookco');

    // Assess
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    expect(json<{ events: string[] }>(set).events).toEqual(['container.*', 'session.released']);
    expect(read.stdout).toContain(`url: http://127.0.0.1:${port}/hook`);
    expect(listed.code).toBe(0);
    expect(json<{ deliveries: unknown[] }>(listed).deliveries).toEqual([]);
    expect(ssrf.code).toBe(2);
    expect(ssrf.stderr).toContain('metadata');
    expect(removed.code).toBe(0);
    expect(gone.code).toBe(3);
    for (const run of [set, read, listed, ssrf, removed, gone])
      expect(run.stdout + run.stderr).not.toContain(secret);
  });
});

describe('policy', () => {
  it('sets, reads and unsets a policy as an admin; a user token may not change it (exit code 4)', async () => {
    // Arrange
    const userToken = (
      await berth('token', '--client', 'polco', '--user', 'ann', '--role', 'user')
    ).stdout.trim();

    // Act
    const set = await berth(
      '--json',
      'policy',
      'set',
      'polco',
      '--idle-timeout',
      '30m',
      '--max-sessions',
      '3',
    );
    const merged = await berth('--json', 'policy', 'set', 'polco', '--max-lifetime', '2h');
    const read = await berth('policy', 'get', 'polco');
    const byUser = await berth(
      '--token',
      userToken,
      'policy',
      'set',
      'polco',
      '--max-sessions',
      '9',
    );
    const fieldRemoved = await berth(
      '--json',
      'policy',
      'unset',
      'polco',
      '--field',
      'maxSessions',
    );
    const removed = await berth('policy', 'unset', 'polco');
    const gone = await berth('policy', 'get', 'polco');
    const bad = await berth('policy', 'set', 'polco', '--idle-timeout', '9h');

    // Assess
    expect(set.code).toBe(0);
    expect(json<{ policy: object }>(set).policy).toEqual({ idleTimeout: '30m', maxSessions: 3 });
    expect(json<{ policy: object }>(merged).policy).toEqual({
      idleTimeout: '30m',
      maxSessions: 3,
      maxLifetime: '2h',
    });
    expect(read.stdout).toContain('maxLifetime: 2h');
    expect(byUser.code).toBe(4);
    expect(json<{ policy: object }>(fieldRemoved).policy).toEqual({
      idleTimeout: '30m',
      maxLifetime: '2h',
    });
    expect(removed.code).toBe(0);
    expect(gone.code).toBe(3);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('BERTH_POLICY_IDLE_TIMEOUT_MAX');
  });
});
