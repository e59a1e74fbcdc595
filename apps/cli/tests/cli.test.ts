/**
 * The real `berth` command line, run as a child process against one local stack: what it
 * prints, in human and JSON form, and its exit codes (0 ok, 2 bad input, 3 not found,
 * 4 not allowed, 5 unavailable).
 */
import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
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
    for (const command of ['discover', 'containers', 'sessions', 'send', 'events', 'token'])
      expect(top.stdout).toContain(command);
    for (const command of ['ls', 'get', 'stop'])
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
      topicArn: await localLifecycleTopicArn(sns),
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
});
