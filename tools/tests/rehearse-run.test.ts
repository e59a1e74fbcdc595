/**
 * The rehearsal's verdicts on real processes: a service whose task definition lacks a variable
 * it needs fails the rehearsal with that variable's name. (The whole rehearsal of the real
 * app runs in CI as `npm run rehearse`, .ci/run.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RehearsalError, startRehearsal } from '../src/rehearse/rehearsal.ts';
import {
  REPO_ROOT,
  serviceEnvironment,
  workspaceContainer,
  writeAssembly,
} from './rehearse-fixture.ts';

describe('a rehearsal of services as their task definitions run them', () => {
  let dataDir: string;

  beforeEach(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'berth-rehearsal-test-'));
  });

  afterEach(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('fails naming the variable a service needs and its task definition lacks', async () => {
    // Prepare: the reaper's task definition without BERTH_ECS_CLUSTER
    const { BERTH_ECS_CLUSTER: _cluster, ...withoutCluster } = serviceEnvironment();
    const assemblyDir = writeAssembly([
      workspaceContainer(),
      { id: 'Reaper', image: { app: 'reaper' }, environment: withoutCluster, service: true },
    ]);

    // Act
    const outcome = await startRehearsal({ assemblyDir, repoRoot: REPO_ROOT, dataDir }).then(
      async (rehearsal) => {
        await rehearsal.stop();
        return undefined;
      },
      (error: unknown) => error,
    );

    // Assess
    expect(outcome).toBeInstanceOf(RehearsalError);
    const reasons = (outcome as RehearsalError).reasons.join('\n');
    expect(reasons).toMatch(/^reaper exited with code 78: [\s\S]*BERTH_ECS_CLUSTER is required/);
    rmSync(assemblyDir, { recursive: true, force: true });
  }, 240_000);
});
