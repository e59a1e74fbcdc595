/**
 * `npm run rehearse`: synthesizes the CDK app, runs every service of the cloud assembly on
 * this machine as ECS would run it (tools/src/rehearse/rehearsal.ts), checks the load-balanced
 * ones as their target groups would, drives the end-to-end tests through it, releases every
 * session and waits for the reaper to stop every container (wind-down.ts), then hands the
 * recorded AWS calls and service output to the checks that judge them (checks.ts).
 *
 *   npm run rehearse [-- --assembly <cdk.out>] [--data <dir>] [--no-e2e] [--keep] [--pool <n>, default 1]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import { runChecks } from './checks.ts';
import { RehearsalError, startRehearsal } from './rehearsal.ts';
import { strayTaskIsStopped, windDown } from './wind-down.ts';
import { synthesizeApp } from '../synth.ts';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
const say = (line: string): void => void process.stdout.write(`${line}\n`);

/** The end-to-end files that run against a stack whose configuration is the deployed one. */
export const E2E_FILES = ['tests/e2e-discovery.test.ts', 'tests/e2e-sessions.test.ts'];

/**
 * The one lifecycle setting the rehearsal tunes (a deployment may too: `berth.lifecycle` in
 * the CDK context): idle containers are stopped after seconds, not twenty minutes, so the
 * wind-down sees the reaper save and stop every container within the run.
 */
export const REHEARSAL_IDLE_TIMEOUT_MS = 15_000;

const { values } = parseArgs({
  options: {
    assembly: { type: 'string' },
    data: { type: 'string' },
    'no-e2e': { type: 'boolean', default: false },
    keep: { type: 'boolean', default: false },
    // The warm pool's size (pool.size): with a member, the pool's own paths run and their
    // grants are proven by recorded calls too (docs/deploy.md); 0 for a deployment without.
    pool: { type: 'string', default: '1' },
  },
});
const poolSize = Number(values.pool);
if (!Number.isInteger(poolSize) || poolSize < 0) {
  console.error(`--pool must be a whole number of members (0 for none), got ${values.pool}`);
  process.exit(2);
}
const dataDir = resolve(values.data ?? mkdtempSync(join(tmpdir(), 'berth-rehearsal-')));
const started = Date.now();
const seconds = (): string => `${Math.round((Date.now() - started) / 1000)} s`;

async function run(
  command: string,
  args: string[],
  cwd: string,
  env: NodeJS.ProcessEnv,
): Promise<number> {
  const child = spawn(command, args, { cwd, env, stdio: 'inherit' });
  const [code] = (await once(child, 'exit')) as [number | null];
  return code ?? 1;
}

/**
 * The app as a deployment would synthesize it; the one setting the rehearsal gives is where
 * the projects' git repositories are (a deployment must set it too, or no workspace starts).
 */
async function synthesize(): Promise<string> {
  const out = join(dataDir, 'cdk.out');
  say(`rehearsal: synthesizing infra/ into ${out}`);
  try {
    await synthesizeApp(out, {
      context: {
        workspace: { repoUrlTemplate: join(dataDir, 'repos/{clientId}/{projectId}.git') },
        lifecycle: { idleTimeout: `${REHEARSAL_IDLE_TIMEOUT_MS / 1000}s` },
        pool: { size: poolSize },
      },
    });
  } catch (error) {
    throw new RehearsalError([
      `cdk synth failed: ${error instanceof Error ? error.message : String(error)}`,
    ]);
  }
  return out;
}

async function main(): Promise<number> {
  const assemblyDir = values.assembly ? resolve(values.assembly) : await synthesize();
  say(`rehearsal: synthesized (${seconds()})`);
  const rehearsal = await startRehearsal({ assemblyDir, repoRoot, dataDir, say });
  say(`rehearsal: every service is up as its task definition runs it (${seconds()})`);
  const failures: string[] = [];
  try {
    if (!values['no-e2e']) {
      say(`rehearsal: end-to-end tests against ${rehearsal.descriptor.url}`);
      const code = await run(
        process.execPath,
        [join(repoRoot, 'node_modules/jest/bin/jest.js'), '--runInBand', ...E2E_FILES],
        join(repoRoot, 'tools'),
        {
          ...process.env,
          BERTH_E2E_STACK: rehearsal.descriptorFile,
          NODE_OPTIONS: '--experimental-vm-modules --no-warnings=ExperimentalWarning',
        },
      );
      if (code !== 0) failures.push(`the end-to-end tests failed (jest exited with code ${code})`);
      say(`rehearsal: end-to-end tests done (${seconds()})`);
    }
    failures.push(
      ...(await strayTaskIsStopped({
        ecsEndpoint: rehearsal.ecs.endpoint,
        cluster: rehearsal.ecs.cluster,
        taskDefinition: rehearsal.ecs.taskDefinition,
        containerName: rehearsal.ecs.containerName,
        workspaceRoot: rehearsal.descriptor.mounts[0]?.containerPath ?? join(dataDir, 'workspaces'),
        timeoutMs: 60_000,
        say,
      })),
    );
    failures.push(
      ...(await windDown({
        url: rehearsal.descriptor.url,
        adminToken: rehearsal.descriptor.adminToken,
        lifecycleCommandsUrl: rehearsal.lifecycleCommandsUrl,
        // Idle timeout, a reaper tick, the agent's save and the task's end, with room for load.
        timeoutMs: REHEARSAL_IDLE_TIMEOUT_MS + 90_000,
        say,
      })),
    );
    say(`rehearsal: wound down (${seconds()})`);
    failures.push(...rehearsal.crashes());
  } finally {
    await rehearsal.stop();
  }
  failures.push(
    ...(await runChecks({
      serviceDir: rehearsal.serviceDir,
      assemblyDir,
      services: rehearsal.services,
      say,
    })),
  );
  if (failures.length > 0) throw new RehearsalError(failures);
  say(`rehearsal: passed in ${seconds()} (logs and recorded calls in ${rehearsal.serviceDir})`);
  return 0;
}

main()
  .then((code) => {
    if (!values.keep && !values.data) rmSync(dataDir, { recursive: true, force: true });
    process.exit(code);
  })
  .catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : String(error));
    console.error(`rehearsal: failed after ${seconds()}; everything it wrote is in ${dataDir}`);
    process.exit(1);
  });
