import { UnmappableTaskDefinitionError, readAssembly } from '../src/rehearse/assembly.ts';
import {
  REPO_ROOT,
  STACK,
  serviceEnvironment,
  workspaceContainer,
  writeAssembly,
} from './rehearse-fixture.ts';

const refusal = (assemblyDir: string): UnmappableTaskDefinitionError => {
  try {
    readAssembly(assemblyDir, REPO_ROOT);
  } catch (error) {
    if (error instanceof UnmappableTaskDefinitionError) return error;
    throw error;
  }
  throw new Error('the assembly was mapped');
};

describe('reading a cloud assembly for the rehearsal', () => {
  it("takes each service's command, working directory and environment from its task definition and image", () => {
    // Prepare
    const dir = writeAssembly([
      workspaceContainer(),
      { id: 'Reaper', image: { app: 'reaper' }, environment: serviceEnvironment(), service: true },
    ]);

    // Act
    const plan = readAssembly(dir, REPO_ROOT);

    // Assess
    expect(plan.services).toHaveLength(1);
    expect(plan.services[0]?.task).toMatchObject({
      constructPath: `${STACK}/Reaper`,
      app: 'reaper',
      command: ['node', 'apps/reaper/src/main.ts'],
      workingDirectory: '/app',
      environment: { NODE_ENV: 'production', ...serviceEnvironment() },
    });
    expect(plan.runTaskDefinitions.map((task) => task.constructPath)).toEqual([
      `${STACK}/WorkspaceTaskDefinition`,
    ]);
  });

  it('names the construct path of a task definition whose image is no app of this repository', () => {
    // Prepare
    const dir = writeAssembly([
      workspaceContainer(),
      {
        id: 'Sidecar',
        image: { reference: 'public.ecr.aws/nginx/nginx:1' },
        environment: {},
        service: true,
      },
    ]);

    // Act
    const error = refusal(dir);

    // Assess
    expect(error.constructPath).toBe(`${STACK}/Sidecar`);
    expect(error.message).toContain(`${STACK}/Sidecar`);
    expect(error.message).toContain('public.ecr.aws/nginx/nginx:1');
  });

  it('names the construct path of a task definition whose secret comes from an unknown source', () => {
    // Prepare
    const dir = writeAssembly([
      workspaceContainer(),
      {
        id: 'Discovery',
        image: { app: 'discovery' },
        environment: serviceEnvironment(),
        secrets: { BERTH_AUTH_SECRET: 'arn:aws:s3:::a-bucket/the-secret' },
        service: true,
      },
    ]);

    // Act
    const error = refusal(dir);

    // Assess
    expect(error.constructPath).toBe(`${STACK}/Discovery`);
    expect(error.message).toContain('secret BERTH_AUTH_SECRET');
    expect(error.message).toContain('arn:aws:s3:::a-bucket/the-secret');
  });
});
