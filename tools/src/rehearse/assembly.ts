/**
 * Reads a synthesized cloud assembly (cdk.out: manifest.json, the stacks' templates and asset
 * manifests) into what the rehearsal runs: every ECS service's container and the task
 * definitions started by RunTask (the workspace), each with its command, working directory,
 * environment and secrets exactly as synthesized, its image related to an app of this
 * repository, and the target groups that check the load-balanced ones.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { imageDefaults } from './dockerfile.ts';
import {
  Resolver,
  UnresolvableValueError,
  type CfnTemplate,
  type StackTemplate,
} from './intrinsics.ts';

export interface SecretReference {
  /** The environment variable ECS fills with the secret. */
  name: string;
  kind: 'secretsmanager' | 'ssm';
  /** The secret's (stand-in) ARN or the parameter's name. */
  source: string;
}

export interface ContainerPlan {
  /** The task definition's construct path, e.g. `BerthDiscoveryStack/TaskDefinition`. */
  constructPath: string;
  stackName: string;
  family: string;
  containerName: string;
  /** The app of this repository whose Dockerfile builds the image (`apps/<app>`). */
  app: string;
  dockerfile: string;
  /** ENTRYPOINT + CMD, as the container would run them (container overrides win). */
  command: string[];
  /** Where the command runs inside the image. */
  workingDirectory: string;
  /** The image's WORKDIR: the Dockerfiles copy the repository's layout below it. */
  imageRoot: string;
  /** The image's ENV, then the container definition's environment, resolved. */
  environment: Record<string, string>;
  secrets: SecretReference[];
  containerPorts: number[];
  mountPoints: { containerPath: string; sourceVolume: string }[];
  stopTimeoutSeconds: number | undefined;
}

export interface TargetGroupPlan {
  constructPath: string;
  port: number;
  protocol: string;
  healthCheckPath: string;
  /** `traffic-port` or a number. */
  healthCheckPort: string;
  healthyHttpCodes: string;
}

export interface ServicePlan {
  constructPath: string;
  serviceName: string;
  task: ContainerPlan;
  loadBalancers: { containerName: string; containerPort: number; targetGroup: TargetGroupPlan }[];
}

export interface AssemblyPlan {
  services: ServicePlan[];
  /** Task definitions no ECS service runs: the ones services start with RunTask. */
  runTaskDefinitions: ContainerPlan[];
}

/** A task definition the rehearsal cannot run as a process of this machine. */
export class UnmappableTaskDefinitionError extends Error {
  readonly constructPath: string;

  constructor(constructPath: string, reason: string) {
    super(`${constructPath}: ${reason}`);
    this.name = 'UnmappableTaskDefinitionError';
    this.constructPath = constructPath;
  }
}

interface Manifest {
  artifacts?: Record<
    string,
    {
      type: string;
      environment?: string;
      displayName?: string;
      properties?: { templateFile?: string; file?: string };
      dependencies?: string[];
    }
  >;
}

interface AssetManifest {
  dockerImages?: Record<
    string,
    {
      source?: {
        directory?: string;
        dockerFile?: string;
        dockerBuildArgs?: Record<string, string>;
        dockerBuildTarget?: string;
      };
    }
  >;
}

interface LoadedStack extends StackTemplate {
  assets: AssetManifest;
}

const readJson = <T>(path: string): T => JSON.parse(readFileSync(path, 'utf8')) as T;

export function loadStacks(assemblyDir: string): LoadedStack[] {
  const manifestPath = join(assemblyDir, 'manifest.json');
  if (!existsSync(manifestPath))
    throw new Error(`${assemblyDir} is not a cloud assembly (no manifest.json)`);
  const artifacts = readJson<Manifest>(manifestPath).artifacts ?? {};
  return Object.entries(artifacts)
    .filter(([, artifact]) => artifact.type === 'aws:cloudformation:stack')
    .map(([stackName, artifact]) => {
      const templateFile = artifact.properties?.templateFile ?? `${stackName}.template.json`;
      const region = artifact.environment?.split('/').at(-1) ?? 'us-east-1';
      const assetFiles = (artifact.dependencies ?? [])
        .map((id) => artifacts[id])
        .filter((dependency) => dependency?.type === 'cdk:asset-manifest')
        .map((dependency) => dependency?.properties?.file ?? '');
      const assets: AssetManifest = { dockerImages: {} };
      for (const file of assetFiles) {
        Object.assign(
          assets.dockerImages ?? {},
          readJson<AssetManifest>(join(assemblyDir, file)).dockerImages,
        );
      }
      return {
        stackName,
        region: region === 'unknown-region' ? 'us-east-1' : region,
        template: readJson<CfnTemplate>(join(assemblyDir, templateFile)),
        assets,
      };
    });
}

const pathOf = (stack: StackTemplate, logicalId: string): string => {
  const path = stack.template.Resources?.[logicalId]?.Metadata?.['aws:cdk:path'];
  return typeof path === 'string'
    ? path.replace(/\/Resource$/, '')
    : `${stack.stackName}/${logicalId}`;
};

type Props = Record<string, unknown>;
const asProps = (value: unknown): Props =>
  value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Props) : {};
const asList = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

export function readAssembly(assemblyDir: string, repoRoot: string): AssemblyPlan {
  const stacks = loadStacks(assemblyDir);
  const resolver = new Resolver(stacks);
  const services: ServicePlan[] = [];
  const usedByServices = new Set<string>();
  const containers = new Map<string, ContainerPlan>();

  const containerOf = (stack: LoadedStack, logicalId: string): ContainerPlan => {
    const key = `${stack.stackName}/${logicalId}`;
    const known = containers.get(key);
    if (known) return known;
    const plan = planContainer(stack, logicalId, resolver, assemblyDir, repoRoot);
    containers.set(key, plan);
    return plan;
  };

  for (const stack of stacks) {
    for (const [logicalId, resource] of Object.entries(stack.template.Resources ?? {})) {
      if (resource.Type !== 'AWS::ECS::Service') continue;
      const props = asProps(resource.Properties);
      const constructPath = pathOf(stack, logicalId);
      const taskRef = resolver.referencedResource(stack, props['TaskDefinition']);
      if (taskRef === undefined || taskRef.resource.Type !== 'AWS::ECS::TaskDefinition') {
        throw new UnmappableTaskDefinitionError(
          constructPath,
          'its task definition is not a task definition of this app',
        );
      }
      usedByServices.add(`${taskRef.stack.stackName}/${taskRef.logicalId}`);
      const task = containerOf(taskRef.stack as LoadedStack, taskRef.logicalId);
      const loadBalancers = asList(props['LoadBalancers']).map((entry) => {
        const balancer = asProps(entry);
        const groupRef = resolver.referencedResource(stack, balancer['TargetGroupArn']);
        if (groupRef === undefined) {
          throw new UnmappableTaskDefinitionError(
            constructPath,
            'a load balancer entry names a target group that is not in this app',
          );
        }
        const group = asProps(groupRef.resource.Properties);
        const where = pathOf(groupRef.stack, groupRef.logicalId);
        const str = (value: unknown, fallback: string): string =>
          value === undefined ? fallback : resolver.string(groupRef.stack, value, where);
        return {
          containerName: str(balancer['ContainerName'], task.containerName),
          containerPort: Number(str(balancer['ContainerPort'], '0')),
          targetGroup: {
            constructPath: where,
            port: Number(str(group['Port'], '0')),
            protocol: str(group['Protocol'], 'HTTP'),
            healthCheckPath: str(group['HealthCheckPath'], '/'),
            healthCheckPort: str(group['HealthCheckPort'], 'traffic-port'),
            healthyHttpCodes: str(asProps(group['Matcher'])['HttpCode'], '200'),
          },
        };
      });
      const serviceName =
        typeof props['ServiceName'] === 'string' ? props['ServiceName'] : task.family;
      services.push({ constructPath, serviceName, task, loadBalancers });
    }
  }

  const runTaskDefinitions: ContainerPlan[] = [];
  for (const stack of stacks) {
    for (const [logicalId, resource] of Object.entries(stack.template.Resources ?? {})) {
      if (resource.Type !== 'AWS::ECS::TaskDefinition') continue;
      if (usedByServices.has(`${stack.stackName}/${logicalId}`)) continue;
      runTaskDefinitions.push(containerOf(stack, logicalId));
    }
  }
  return { services, runTaskDefinitions };
}

function planContainer(
  stack: LoadedStack,
  logicalId: string,
  resolver: Resolver,
  assemblyDir: string,
  repoRoot: string,
): ContainerPlan {
  const constructPath = pathOf(stack, logicalId);
  const fail = (reason: string): never => {
    throw new UnmappableTaskDefinitionError(constructPath, reason);
  };
  const props = asProps(stack.template.Resources?.[logicalId]?.Properties);
  const definitions = asList(props['ContainerDefinitions']).map(asProps);
  const [definition] = definitions;
  if (definition === undefined || definitions.length !== 1)
    fail(`has ${definitions.length} containers; the rehearsal runs tasks of exactly one`);
  const container = definition as Props;
  const containerName = typeof container['Name'] === 'string' ? container['Name'] : '';
  const where = (field: string): string => `${constructPath} container ${containerName} ${field}`;
  const resolveString = (value: unknown, field: string): string => {
    try {
      return resolver.string(stack, value, where(field));
    } catch (error) {
      if (error instanceof UnresolvableValueError) return fail(error.message);
      throw error;
    }
  };

  // The image: a docker image asset of this app, built from apps/<app>/Dockerfile.
  const image = resolveString(container['Image'], 'Image');
  const tag = image.includes(':') ? image.slice(image.lastIndexOf(':') + 1) : '';
  const asset = stack.assets.dockerImages?.[tag];
  if (asset?.source?.directory === undefined || asset.source.dockerFile === undefined)
    fail(`its image ${image} is not a docker image asset of this app`);
  const dockerfile = asset?.source?.dockerFile ?? '';
  // The app: its own Dockerfile (apps/<app>/Dockerfile), or the shared one built with APP=<app>.
  const app =
    /^apps\/([a-z0-9-]+)\/Dockerfile$/.exec(dockerfile)?.[1] ??
    asset?.source?.dockerBuildArgs?.['APP'];
  if (app === undefined || !/^[a-z0-9-]+$/.test(app) || !existsSync(join(repoRoot, 'apps', app))) {
    fail(
      `its image is built from ${dockerfile}${app ? ` with APP=${app}` : ''}, which relates it to no app of this repository`,
    );
  }
  const dockerfilePath = join(assemblyDir, asset?.source?.directory ?? '', dockerfile);
  const defaults = imageDefaults(
    readFileSync(dockerfilePath, 'utf8'),
    dockerfilePath,
    asset?.source?.dockerBuildTarget,
  );

  const strings = (value: unknown, field: string): string[] | undefined =>
    value === undefined ? undefined : asList(value).map((part) => resolveString(part, field));
  const entryPoint = strings(container['EntryPoint'], 'EntryPoint') ?? defaults.entryPoint;
  const command =
    strings(container['Command'], 'Command') ??
    (container['EntryPoint'] === undefined ? defaults.command : []);
  const environment: Record<string, string> = { ...defaults.environment };
  for (const entry of asList(container['Environment']).map(asProps)) {
    const name = String(entry['Name']);
    environment[name] = resolveString(entry['Value'], `environment ${name}`);
  }
  const secrets = asList(container['Secrets']).map((entry): SecretReference => {
    const secret = asProps(entry);
    const name = String(secret['Name']);
    const source = resolveString(secret['ValueFrom'], `secret ${name}`);
    if (/^arn:aws[\w-]*:secretsmanager:/.test(source))
      return { name, kind: 'secretsmanager', source };
    if (/^arn:aws[\w-]*:ssm:[^:]*:[^:]*:parameter\//.test(source))
      return { name, kind: 'ssm', source: `/${source.split(':parameter/')[1] ?? ''}` };
    return fail(`secret ${name} comes from ${source}, which is neither Secrets Manager nor SSM`);
  });
  const stopTimeout = container['StopTimeout'];
  return {
    constructPath,
    stackName: stack.stackName,
    family: resolveString(props['Family'] ?? logicalId, 'Family'),
    containerName,
    app: app ?? '',
    dockerfile,
    command: [...entryPoint, ...command],
    workingDirectory:
      container['WorkingDirectory'] === undefined
        ? defaults.workingDirectory
        : resolveString(container['WorkingDirectory'], 'WorkingDirectory'),
    imageRoot: defaults.workingDirectory,
    environment,
    secrets,
    containerPorts: asList(container['PortMappings']).map((entry) =>
      Number(resolveString(asProps(entry)['ContainerPort'], 'PortMappings')),
    ),
    mountPoints: asList(container['MountPoints']).map((entry) => ({
      containerPath: resolveString(asProps(entry)['ContainerPath'], 'MountPoints'),
      sourceVolume: resolveString(asProps(entry)['SourceVolume'], 'MountPoints'),
    })),
    stopTimeoutSeconds: stopTimeout === undefined ? undefined : Number(stopTimeout),
  };
}
