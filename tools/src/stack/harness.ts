/**
 * Starts the local stack (`npm start`'s entry) as a child process on free ports and a fresh
 * data directory, for end-to-end tests, benchmarks and the soak test.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '@berth/testing';

export { STATIC_SITE_COMMAND } from './dev-server.ts';

const MAIN = fileURLToPath(new URL('./main.ts', import.meta.url));

export interface RunningStack {
  url: string;
  /** The preview gateway (BERTH_PREVIEW_PORT). */
  previewUrl: string;
  dataDir: string;
  adminToken: string;
  /** The environment a client process needs to reach this stack (AWS endpoints, ports, data). */
  env: Record<string, string>;
  /** Absent when the stack is someone else's (attachStack). */
  process?: ChildProcess;
  /** Container paths of the workspace volume and the directories standing in for them. */
  mounts: { containerPath: string; hostPath: string }[];
  output(): string;
  stop(): Promise<void>;
}

export async function startStack(
  overrides: Record<string, string> = {},
  timeoutMs = 120_000,
): Promise<RunningStack> {
  const [http, sqs, dynamodb, runtime, preview] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const dataDir = overrides.BERTH_DATA_DIR ?? mkdtempSync(join(tmpdir(), 'berth-stack-'));
  const env: Record<string, string> = {
    BERTH_HTTP_PORT: String(http),
    BERTH_SQS_PORT: String(sqs),
    BERTH_DYNAMODB_PORT: String(dynamodb),
    BERTH_RUNTIME_PORT: String(runtime),
    BERTH_PREVIEW_PORT: String(preview),
    BERTH_DATA_DIR: dataDir,
    BERTH_LOG_LEVEL: 'info',
    // A harness stack runs without the warm pool unless asked (BERTH_POOL_SIZE): tests and
    // benchmarks that count tasks or compare cold starts must not share the machine with it.
    BERTH_POOL_SIZE: '0',
    // Nor with a dev server per container unless asked (STATIC_SITE_COMMAND is `npm start`'s):
    // a soak's hundred containers would each run one.
    BERTH_DEV_SERVER_COMMAND: '',
    ...overrides,
  };
  const child = spawn(process.execPath, [MAIN], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`stack did not start within ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
    const onData = () => {
      if (output.includes('berth is running')) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout?.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`stack exited with code ${code} during start:\n${output}`));
    });
  });

  const adminToken = readFileSync(join(dataDir, 'admin-token'), 'utf8').trim();
  const clientEnv: Record<string, string> = {
    ...env,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'local',
    AWS_SECRET_ACCESS_KEY: 'local',
    // The engines' own ports, also when the caller chose them (the soak test puts its fault
    // proxies in front of them and needs to know them before the stack starts).
    AWS_ENDPOINT_URL_DYNAMODB: `http://127.0.0.1:${env.BERTH_DYNAMODB_PORT}`,
    AWS_ENDPOINT_URL_SQS: `http://127.0.0.1:${env.BERTH_SQS_PORT}`,
    AWS_ENDPOINT_URL_SNS: `http://127.0.0.1:${env.BERTH_SQS_PORT}`,
  };
  return {
    url: `http://127.0.0.1:${env.BERTH_HTTP_PORT}`,
    previewUrl: `http://127.0.0.1:${env.BERTH_PREVIEW_PORT}`,
    dataDir,
    adminToken,
    env: clientEnv,
    process: child,
    mounts: [],
    output: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/**
 * A stack that is already running, described by the file its starter wrote (the deploy
 * rehearsal's `e2e-stack.json`: url, dataDir, adminToken, env, mounts). Stopping it is its
 * starter's business.
 */
export function attachStack(descriptorFile: string): RunningStack {
  const descriptor = JSON.parse(readFileSync(descriptorFile, 'utf8')) as Pick<
    RunningStack,
    'url' | 'dataDir' | 'adminToken' | 'env' | 'mounts'
  > & { previewUrl?: string };
  return {
    ...descriptor,
    previewUrl: descriptor.previewUrl ?? '',
    output: () => '',
    stop: () => Promise.resolve(),
  };
}
