/**
 * A small cloud assembly written by hand, shaped as `cdk synth` writes berth's (manifest,
 * templates, asset manifests, staged Dockerfiles), for tests of the rehearsal that must not
 * pay for a synth: one stack, the workspace task definition and the services asked for.
 */
import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { TTL_ATTRIBUTE, tableDefinitions } from '@berth/dynamodb';
import { QUEUE_NAMES, TOPIC_NAME } from '@berth/messaging';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const STACK = 'RehearsalFixtureStack';

export interface FixtureContainer {
  /** Logical id; the construct path is `<STACK>/<id>`. */
  id: string;
  /** The app whose Dockerfile builds the image, or a literal image reference. */
  image: { app: string } | { reference: string };
  environment: Record<string, string>;
  secrets?: Record<string, unknown>;
  /** An ECS service runs it (otherwise it is a RunTask definition). */
  service?: boolean;
}

/** The environment infra gives every service (service-stack.ts), with stand-in ids. */
export function serviceEnvironment(): Record<string, string> {
  return {
    AWS_REGION: 'us-east-1',
    BERTH_RUNTIME: 'ecs',
    BERTH_ECS_CLUSTER: 'berth',
    BERTH_ECS_TASK_DEFINITION: 'berth-workspace',
    BERTH_ECS_CONTAINER_NAME: 'workspace',
    BERTH_ECS_SUBNETS: 'subnet-1,subnet-2',
    BERTH_ECS_SECURITY_GROUPS: 'sg-1',
    BERTH_ECS_ASSIGN_PUBLIC_IP: 'false',
    CONTAINER_TABLE: 'berth-containers',
    SESSION_TABLE: 'berth-sessions',
    BERTH_LOG_LEVEL: 'info',
    BERTH_EMF: 'true',
  };
}

export function workspaceContainer(): FixtureContainer {
  return {
    id: 'WorkspaceTaskDefinition',
    image: { app: 'workspace-agent' },
    environment: { AWS_REGION: 'us-east-1', BERTH_RUNTIME: 'ecs', WORKSPACE_PATH: '/workspace' },
  };
}

const path = (id: string): { 'aws:cdk:path': string } => ({
  'aws:cdk:path': `${STACK}/${id}/Resource`,
});

/**
 * The data stack's tables, queues and topic as CloudFormation resources, shaped as
 * infra/src/data-stack.ts synthesizes them (the tables from the adapter's definitions).
 */
export function dataResources(): Record<string, unknown> {
  const tables = tableDefinitions({
    containerTable: 'berth-containers',
    sessionTable: 'berth-sessions',
  });
  const resources: Record<string, unknown> = {};
  for (const [id, table] of Object.entries(tables)) {
    resources[id] = {
      Type: 'AWS::DynamoDB::Table',
      Properties: {
        ...table,
        TimeToLiveSpecification: { AttributeName: TTL_ATTRIBUTE, Enabled: true },
        DeletionProtectionEnabled: true,
      },
      Metadata: path(id),
    };
  }
  for (const [id, name, dlq] of [
    ['LifecycleQueue', QUEUE_NAMES.lifecycleCommands, 'LifecycleDlq'],
    ['AgentReportsQueue', QUEUE_NAMES.agentReports, 'AgentReportsDlq'],
    ['TaskEventsQueue', QUEUE_NAMES.taskEvents, 'TaskEventsDlq'],
  ] as const) {
    resources[dlq] = {
      Type: 'AWS::SQS::Queue',
      Properties: { QueueName: `${name}-dlq`, SqsManagedSseEnabled: true },
      Metadata: path(dlq),
    };
    resources[id] = {
      Type: 'AWS::SQS::Queue',
      Properties: {
        QueueName: name,
        VisibilityTimeout: 60,
        RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [dlq, 'Arn'] }, maxReceiveCount: 5 },
      },
      Metadata: path(id),
    };
  }
  resources['LifecycleTopic'] = {
    Type: 'AWS::SNS::Topic',
    Properties: { TopicName: TOPIC_NAME },
    Metadata: path('LifecycleTopic'),
  };
  return resources;
}

/** The assembly of the given task definitions, with `data` (dataResources() unless given). */
export function writeAssembly(
  containers: FixtureContainer[],
  data: Record<string, unknown> = dataResources(),
): string {
  const dir = mkdtempSync(join(tmpdir(), 'berth-assembly-'));
  const resources: Record<string, unknown> = { ...data };
  const dockerImages: Record<string, unknown> = {};
  containers.forEach((container, index) => {
    let image: unknown;
    if ('app' in container.image) {
      const hash = `${index}`.padStart(64, 'a');
      const assetDir = `asset.${hash}`;
      const app = container.image.app;
      mkdirSync(join(dir, assetDir), { recursive: true });
      copyFileSync(join(REPO_ROOT, 'Dockerfile'), join(dir, assetDir, 'Dockerfile'));
      dockerImages[hash] = {
        source: {
          directory: assetDir,
          dockerFile: 'Dockerfile',
          dockerBuildArgs: { APP: app },
          dockerBuildTarget: app === 'workspace-agent' ? 'workspace' : 'service',
        },
      };
      image = {
        'Fn::Sub': `\${AWS::AccountId}.dkr.ecr.us-east-1.\${AWS::URLSuffix}/assets:${hash}`,
      };
    } else {
      image = container.image.reference;
    }
    resources[container.id] = {
      Type: 'AWS::ECS::TaskDefinition',
      Properties: {
        Family: container.id.toLowerCase(),
        ContainerDefinitions: [
          {
            Name: container.id.toLowerCase(),
            Image: image,
            // As infra/src/images.ts writes them: what ECS runs is readable from the template.
            ...('app' in container.image
              ? {
                  Command: ['node', `apps/${container.image.app}/src/main.ts`],
                  WorkingDirectory: '/app',
                }
              : {}),
            Environment: Object.entries(container.environment).map(([Name, Value]) => ({
              Name,
              Value,
            })),
            ...(container.secrets
              ? {
                  Secrets: Object.entries(container.secrets).map(([Name, ValueFrom]) => ({
                    Name,
                    ValueFrom,
                  })),
                }
              : {}),
          },
        ],
      },
      Metadata: { 'aws:cdk:path': `${STACK}/${container.id}/Resource` },
    };
    if (container.service) {
      resources[`${container.id}Service`] = {
        Type: 'AWS::ECS::Service',
        Properties: { TaskDefinition: { Ref: container.id } },
        Metadata: { 'aws:cdk:path': `${STACK}/${container.id}Service/Service` },
      };
    }
  });
  writeFileSync(join(dir, `${STACK}.template.json`), JSON.stringify({ Resources: resources }));
  writeFileSync(
    join(dir, `${STACK}.assets.json`),
    JSON.stringify({ version: '55.0.0', dockerImages }),
  );
  writeFileSync(
    join(dir, 'manifest.json'),
    JSON.stringify({
      version: '55.0.0',
      artifacts: {
        [`${STACK}.assets`]: {
          type: 'cdk:asset-manifest',
          properties: { file: `${STACK}.assets.json` },
        },
        [STACK]: {
          type: 'aws:cloudformation:stack',
          environment: 'aws://unknown-account/us-east-1',
          properties: { templateFile: `${STACK}.template.json` },
          dependencies: [`${STACK}.assets`],
        },
      },
    }),
  );
  return dir;
}
