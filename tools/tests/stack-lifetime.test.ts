/**
 * The local stack cannot be orphaned: whatever ends it (SIGKILL of its main process, SIGTERM
 * to `npm start`, the death of whatever started it), no process of it is left holding a
 * port; and it starts nothing when one of its ports is taken, naming the port and its holder.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@berth/testing';
import { startStack, type RunningStack } from '../src/stack/harness.ts';
import { eventually, http } from './stack-helpers.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MAIN = join(ROOT, 'tools/src/stack/main.ts');

/** Every living process (zombies are dead: they only wait for their parent to reap them). */
function processTable(): Map<number, { ppid: number; command: string }> {
  const table = new Map<number, { ppid: number; command: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const [state, ppid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (state === 'Z') continue;
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      table.set(Number(entry), { ppid: Number(ppid), command });
    } catch {
      // ended while we looked
    }
  }
  return table;
}

function descendants(root: number): Map<number, string> {
  const table = processTable();
  const found = new Map<number, string>();
  let frontier = [root];
  while (frontier.length > 0) {
    const next: number[] = [];
    for (const [pid, { ppid, command }] of table)
      if (frontier.includes(ppid) && !found.has(pid)) {
        found.set(pid, command);
        next.push(pid);
      }
    frontier = next;
  }
  return found;
}

function stillAlive(pids: Map<number, string>): string[] {
  const table = processTable();
  return [...pids].filter(([pid]) => table.has(pid)).map(([pid, cmd]) => `${pid} ${cmd}`);
}

/** The processes still alive once all have ended or the time is up: none, we hope. */
async function ended(pids: Map<number, string>, timeoutMs: number): Promise<string[]> {
  return eventually(
    'every process of the stack to end',
    () => Promise.resolve(stillAlive(pids).length === 0 ? [] : undefined),
    timeoutMs,
  ).catch(() => stillAlive(pids));
}

async function stackPorts(): Promise<Record<string, string>> {
  const [http, sqs, dynamodb, runtime, preview] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  return {
    BERTH_HTTP_PORT: String(http),
    BERTH_SQS_PORT: String(sqs),
    BERTH_DYNAMODB_PORT: String(dynamodb),
    BERTH_RUNTIME_PORT: String(runtime),
    BERTH_PREVIEW_PORT: String(preview),
  };
}

async function bindable(port: number): Promise<boolean> {
  const server = createServer();
  server.listen(port, '127.0.0.1');
  try {
    await once(server, 'listening');
  } catch {
    return false;
  }
  server.close();
  await once(server, 'close');
  return true;
}

/** Resolves once the stack says it is running; rejects if it exits first. */
function running(child: ChildProcess): Promise<void> {
  let output = '';
  return new Promise((resolve, reject) => {
    child.stdout?.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      if (output.includes('berth is running')) resolve();
    });
    child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`exited (${code}) during start:\n${output}`)));
  });
}

/** The stack with a running container, so that an agent process is part of it. */
async function withContainer(stack: RunningStack): Promise<void> {
  const answer = await http(stack, 'POST', '/v1/containers/discover?wait=60', {
    body: { clientId: 'acme', projectId: 'web', userId: 'ann' },
  });
  expect(answer.body).toMatchObject({ container: { status: 'running' } });
}

describe('the local stack', () => {
  it('leaves no process behind within 10 s when its main process is killed by SIGKILL', async () => {
    // Prepare
    const stack = await startStack({ BERTH_IDLE_TIMEOUT: '10m' }, 240_000);
    await withContainer(stack);
    const main = stack.process?.pid ?? 0;
    const pids = descendants(main);
    const commands = [...pids.values()].join('\n');
    expect(commands).toContain('DynamoDBLocal.jar');
    expect(commands).toContain('fauxqs-main.ts');
    expect(commands).toContain('workspace-agent');
    expect(pids.size).toBeGreaterThanOrEqual(9);

    // Act
    const killedAt = Date.now();
    process.kill(main, 'SIGKILL');
    const left = await ended(pids, 10_000);
    const tookMs = Date.now() - killedAt;

    // Assess
    expect(left).toEqual([]);
    expect(tookMs).toBeLessThanOrEqual(10_000);
    for (const port of ['BERTH_HTTP_PORT', 'BERTH_SQS_PORT', 'BERTH_DYNAMODB_PORT'])
      expect(await bindable(Number(stack.env[port]))).toBe(true);
  }, 300_000);

  it('stops everything when `npm start` gets SIGTERM', async () => {
    // Prepare
    const dataDir = mkdtempSync(join(tmpdir(), 'berth-npm-'));
    const npm = spawn('npm', ['start'], {
      cwd: ROOT,
      env: { ...process.env, ...(await stackPorts()), BERTH_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await running(npm);
    const pids = descendants(npm.pid ?? 0);
    expect([...pids.values()].join('\n')).toContain('DynamoDBLocal.jar');

    // Act
    npm.kill('SIGTERM');
    const left = await ended(pids, 60_000);

    // Assess
    expect(left).toEqual([]);
    expect(existsSync(join(dataDir, 'stack.json'))).toBe(false);
  }, 300_000);

  it('stops everything when the process that started it dies, even without passing a signal on', async () => {
    // Prepare: a shell that waits for the stack rather than exec it, as npm's own does
    const dataDir = mkdtempSync(join(tmpdir(), 'berth-parent-'));
    const shell = spawn('sh', ['-c', `"${process.execPath}" "${MAIN}"; true`], {
      env: { ...process.env, ...(await stackPorts()), BERTH_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    await running(shell);
    const pids = descendants(shell.pid ?? 0);
    expect(pids.size).toBeGreaterThanOrEqual(8);

    // Act
    shell.kill('SIGKILL');
    const left = await ended(pids, 60_000);

    // Assess
    expect(left).toEqual([]);
  }, 300_000);

  it('starts nothing when a port is taken, and names the port and its holder', async () => {
    // Prepare
    const taken = createServer();
    taken.listen(0, '127.0.0.1');
    await once(taken, 'listening');
    const port = (taken.address() as { port: number }).port;
    const ports: Record<string, string> = { ...(await stackPorts()), BERTH_SQS_PORT: String(port) };
    const dataDir = join(mkdtempSync(join(tmpdir(), 'berth-busy-')), 'data');

    // Act
    const stack = spawn(process.execPath, [MAIN], {
      env: { ...process.env, ...ports, BERTH_DATA_DIR: dataDir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    stack.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    stack.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const [code] = (await once(stack, 'exit')) as [number | null];
    taken.close();

    // Assess
    expect(code).toBe(1);
    expect(output).toContain(
      `port ${port} (BERTH_SQS_PORT) is already in use; held by pid ${process.pid} (`,
    );
    expect(output).toContain('nothing was started');
    expect(existsSync(dataDir)).toBe(false);
    for (const name of [
      'BERTH_HTTP_PORT',
      'BERTH_DYNAMODB_PORT',
      'BERTH_RUNTIME_PORT',
      'BERTH_PREVIEW_PORT',
    ])
      expect(await bindable(Number(ports[name]))).toBe(true);
  });
});
