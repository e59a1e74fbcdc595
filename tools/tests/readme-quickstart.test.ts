/**
 * The README's quick start, as a new user types it: every command line of it, verbatim, in an
 * environment with no AWS variable, no BERTH_* variable and no ~/.aws (HOME is an empty
 * directory), from a checkout whose `.berth` is the running stack's data directory. The one
 * liberty taken: the stack listens on free ports (other stacks may run on this machine), so
 * curl's `localhost:8080` is pointed at the stack's port; the CLI needs no such help, it reads
 * `.berth/stack.json`.
 */
import { exec, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startStack, type RunningStack } from '../src/stack/harness.ts';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The command lines of the README's quick start block, continuation lines joined. */
function quickStartLines(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const after = readme.slice(readme.indexOf('Then, in another terminal'));
  const block = /```sh\n([\s\S]*?)```/.exec(after)?.[1] ?? '';
  return block
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '');
}

/** A directory that looks like a fresh checkout, with its own `.berth`. */
function checkout(): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-readme-'));
  for (const entry of readdirSync(ROOT)) {
    if (entry === '.berth' || entry === '.git' || entry === '.nx') continue;
    symlinkSync(join(ROOT, entry), join(dir, entry));
  }
  return dir;
}

/** The environment of a user who has set nothing: no AWS_*, BERTH_*, npm_* and an empty HOME. */
function bareEnvironment(home: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (/^(AWS_|BERTH_|npm_|NODE_OPTIONS$|JEST_|NX_)/i.test(name)) continue;
    env[name] = value;
  }
  return { ...env, HOME: home };
}

interface Run {
  line: string;
  code: number;
  stdout: string;
  stderr: string;
}

let stack: RunningStack;
let dir: string;
let home: string;

beforeAll(async () => {
  dir = checkout();
  home = mkdtempSync(join(tmpdir(), 'berth-home-'));
  mkdirSync(join(dir, '.berth'));
  stack = await startStack({ BERTH_DATA_DIR: join(dir, '.berth'), BERTH_IDLE_TIMEOUT: '10m' });
}, 240_000);

afterAll(async () => {
  await stack?.stop();
  rmSync(home, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
}, 120_000);

function sh(line: string): Promise<Run> {
  return new Promise((resolve) => {
    exec(
      line,
      { cwd: dir, env: bareEnvironment(home), timeout: 150_000 },
      (error, stdout, stderr) => {
        const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
        resolve({ line, code, stdout, stderr });
      },
    );
  });
}

describe("the README's quick start", () => {
  it('runs line by line against the local stack with nothing configured', async () => {
    // Prepare
    const lines = quickStartLines();
    const [eventsLine, ...rest] = lines;
    const port = new URL(stack.url).port;
    expect(eventsLine).toMatch(/^npm run berth -- events\b/);
    expect(rest.length).toBeGreaterThanOrEqual(7);
    const events = spawn('sh', ['-c', eventsLine ?? ''], {
      cwd: dir,
      env: bareEnvironment(home),
      stdio: ['ignore', 'pipe', 'pipe'],
      detached: true,
    });
    let eventsOut = '';
    let eventsErr = '';
    const assignedSeen = new Promise<void>((resolve) => {
      events.stdout.on('data', (chunk: Buffer) => {
        eventsOut += chunk.toString();
        if (eventsOut.includes('session.assigned')) resolve();
      });
    });
    const following = new Promise<void>((resolve, reject) => {
      events.stderr.on('data', (chunk: Buffer) => {
        eventsErr += chunk.toString();
        if (eventsErr.includes('following')) resolve();
      });
      events.once('exit', (code) => reject(new Error(`events exited (${code}): ${eventsErr}`)));
    });

    // Act
    const runs: Run[] = [];
    try {
      await following;
      for (const line of rest)
        runs.push(await sh(line.replaceAll('localhost:8080', `localhost:${port}`)));
      await Promise.race([assignedSeen, once(events, 'exit')]);
    } finally {
      if (events.pid !== undefined && events.exitCode === null) process.kill(-events.pid, 'SIGINT');
    }
    await once(events, 'exit').catch(() => undefined);
    const verbose = await sh('npm run berth -- --verbose containers ls');

    // Assess
    expect(runs.filter((run) => run.code !== 0)).toEqual([]);
    const output = (fragment: string): string =>
      runs.find((run) => run.line.includes(fragment))?.stdout ?? '';
    expect(output('--wait 30')).toMatch(/started \(source: created\)/);
    expect(output('finds it again')).toMatch(/found \(source: (cache|store)\)/);
    expect(output('berth -- prewarm')).toMatch(/^prewarming acme\.website\.bob\b/m);
    expect(output('sessions assign')).toMatch(/session\.assigned: /);
    expect(output('send-message')).toContain('hello, berth');
    expect(output('containers ls')).toMatch(/acme\.website\.alice\s+running/);
    expect(output('berth -- token')).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/m);
    expect(JSON.parse(output('curl'))).toMatchObject({
      container: { containerId: 'acme.website.alice', status: 'running' },
    });
    expect(eventsOut).toMatch(/container\.created\s+acme\.website\.alice/);
    expect(eventsOut).toMatch(/session\.assigned\s+acme\.website\.alice\s+s1/);
    expect(verbose.code).toBe(0);
    expect(verbose.stderr).toContain(
      `discovery ${stack.url} (from ${join(dir, '.berth', 'stack.json')})`,
    );
  }, 480_000);
});
