/**
 * Runs a synthesized berth on this machine as ECS would run it: DynamoDB Local and fauxqs in
 * place of the data stack's tables, queues and topic (created from the templates, data.ts),
 * the local runtime in place of ECS (with
 * the workspace task definition's command and environment), and every ECS service as a process
 * with its task definition's command, working directory and environment. Then checks each
 * load-balanced service the way its target group would.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';
import { join, resolve } from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { QUEUE_NAMES, createSnsClient, createSqsClient } from '@berth/messaging';
import { mintToken } from '@berth/platform';
import {
  freePort,
  localAwsEnvironment,
  startDynamoDbLocal,
  startFauxqs,
  type Engine,
} from '@berth/testing';
import { ServiceProcess } from '../stack/service-process.ts';
import { createData, planData } from './data.ts';
import {
  UnmappableTaskDefinitionError,
  loadStacks,
  readAssembly,
  type ContainerPlan,
  type ServicePlan,
} from './assembly.ts';
import { listeningAddresses, waitHealthy } from './health.ts';
import { STAND_IN_ACCOUNT } from './intrinsics.ts';
import { hostCommand, portVariable, targetAddress, type HostCommand } from './host.ts';

export interface RehearsalOptions {
  assemblyDir: string;
  repoRoot: string;
  /** Engines' data, logs, volumes, call logs; made if missing. */
  dataDir: string;
  say?: (line: string) => void;
  /** How long a load-balanced service may take to answer its health check. */
  healthTimeoutMs?: number;
}

/** What the end-to-end tests need to drive a running rehearsal (tools/tests/stack-helpers.ts). */
export interface StackDescriptor {
  url: string;
  /** The preview gateway, when the app has one. */
  previewUrl?: string;
  dataDir: string;
  adminToken: string;
  env: Record<string, string>;
  /** Container paths of the workspace volume and the directories standing in for them. */
  mounts: { containerPath: string; hostPath: string }[];
}

export interface RunningRehearsal {
  descriptor: StackDescriptor;
  descriptorFile: string;
  /** `<dir>/<service>.log` (stdout) and `<dir>/<service>.jsonl` (AWS calls) of every process. */
  serviceDir: string;
  services: string[];
  /** The lifecycle command queue as the templates made it. */
  lifecycleCommandsUrl: string;
  /** ECS as the services address it: the local runtime's endpoint and the task definitions' names. */
  ecs: { endpoint: string; cluster: string; taskDefinition: string; containerName: string };
  /** Exits nobody asked for since the start (a kill by signal from a test is not one). */
  crashes(): string[];
  stop(): Promise<void>;
}

export class RehearsalError extends Error {
  readonly reasons: string[];

  constructor(reasons: string[]) {
    super(`the rehearsal failed:\n${reasons.map((reason) => `  - ${reason}`).join('\n')}`);
    this.name = 'RehearsalError';
    this.reasons = reasons;
  }
}

interface Planned {
  name: string;
  plan: ContainerPlan;
  host: HostCommand;
  service?: ServicePlan;
  /** For a load-balanced service: the variable holding the port and the port used here. */
  port?: { variable: string; containerPort: number; hostPort: number };
}

/** Only the base image's own variables come from this machine (node:24-slim sets PATH). */
function baseImageEnvironment(home: string): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', HOME: home };
}

function tail(file: string, lines: number): string {
  if (!existsSync(file)) return '';
  return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/** The last error a pino log reports, for a crash's reason. */
function lastLoggedError(file: string): string | undefined {
  if (!existsSync(file)) return undefined;
  const lines = readFileSync(file, 'utf8').trimEnd().split('\n').reverse();
  for (const line of lines) {
    try {
      const entry = JSON.parse(line) as {
        level?: number;
        msg?: string;
        err?: { message?: string };
      };
      if ((entry.level ?? 0) >= 50)
        return [entry.msg, entry.err?.message].filter((part) => part !== undefined).join(': ');
    } catch {
      // not a log line (an EMF line is JSON without level; plain text is skipped)
    }
  }
  return undefined;
}

/**
 * A process that has bound its port to loopback only will not rebind: on ECS the target group,
 * which connects to the task's network interface, would never reach it.
 */
function loopbackOnly(port: number): string | undefined {
  const bound = listeningAddresses(port);
  const loopback = (address: string): boolean =>
    address.startsWith('127.') || address.startsWith('[::1]');
  return bound.length > 0 && bound.every(loopback)
    ? `it listens on ${bound.join(', ')} only, which a load balancer cannot reach`
    : undefined;
}

export async function startRehearsal(options: RehearsalOptions): Promise<RunningRehearsal> {
  const say = options.say ?? (() => undefined);
  const dataDir = resolve(options.dataDir);
  const serviceDir = join(dataDir, 'services');
  // The data is created as the templates define it, so the engines must start empty.
  for (const engineDir of ['dynamodb', 'sqs'])
    if (existsSync(join(dataDir, engineDir)))
      throw new RehearsalError([
        `${dataDir} holds a previous run's ${engineDir} data; give the rehearsal an empty --data directory`,
      ]);
  for (const dir of ['logs', 'run', 'services', 'volumes', 'home'])
    mkdirSync(join(dataDir, dir), { recursive: true });

  // Map everything before starting anything: a task definition the rehearsal cannot run is
  // an error naming its construct path, whatever else would have worked.
  const assembly = readAssembly(options.assemblyDir, options.repoRoot);
  const data = planData(loadStacks(options.assemblyDir));
  if (assembly.runTaskDefinitions.length !== 1) {
    const paths = assembly.runTaskDefinitions.map((plan) => plan.constructPath);
    throw new UnmappableTaskDefinitionError(
      paths.join(', ') || '(none)',
      `the rehearsal plays exactly one task definition that no service runs (the workspace's); found ${paths.length}`,
    );
  }
  const workspacePlan = assembly.runTaskDefinitions[0] as ContainerPlan;
  const planned: Planned[] = [];
  for (const service of assembly.services) {
    const entry: Planned = {
      name: service.task.containerName,
      plan: service.task,
      host: hostCommand(service.task, options.repoRoot),
      service,
    };
    const [balancer, ...more] = service.loadBalancers;
    if (more.length > 0)
      throw new UnmappableTaskDefinitionError(service.constructPath, 'has several load balancers');
    if (balancer !== undefined) {
      if (!service.task.containerPorts.includes(balancer.containerPort)) {
        throw new UnmappableTaskDefinitionError(
          service.constructPath,
          `its load balancer sends to port ${balancer.containerPort}, which the container does not map`,
        );
      }
      entry.port = {
        variable: portVariable(service.task, balancer.containerPort),
        containerPort: balancer.containerPort,
        hostPort: await freePort(),
      };
    }
    planned.push(entry);
  }
  const workspaceHost = hostCommand(workspacePlan, options.repoRoot);
  const address = targetAddress();
  if (address === undefined)
    throw new Error(
      'this machine has no non-loopback IPv4 address to reach tasks at as a load balancer would',
    );

  const engines: Engine[] = [];
  const processes: ServiceProcess[] = [];
  const crashes: string[] = [];
  const givenUp = new Map<string, string>();
  const stop = async (): Promise<void> => {
    const byName = (names: string[]) => processes.filter((p) => names.includes(p.name));
    const services = processes.filter((p) => p.name !== 'local-runtime');
    await Promise.all(services.map((p) => p.stop()));
    await Promise.all(byName(['local-runtime']).map((p) => p.stop(70_000)));
    await Promise.all(engines.map((engine) => engine.stop()));
  };

  try {
    say('rehearsal: starting DynamoDB Local and fauxqs');
    const [dynamodb, fauxqs] = await Promise.all([
      startDynamoDbLocal({ dbPath: join(dataDir, 'dynamodb') }),
      startFauxqs({ dataDir: join(dataDir, 'sqs') }),
    ]);
    engines.push(dynamodb, fauxqs);
    const aws = localAwsEnvironment(dynamodb.endpoint, fauxqs.endpoint);
    const runtimePort = await freePort();
    const endpoints: Record<string, string> = {
      AWS_ENDPOINT_URL_DYNAMODB: dynamodb.endpoint,
      AWS_ENDPOINT_URL_SQS: fauxqs.endpoint,
      AWS_ENDPOINT_URL_SNS: fauxqs.endpoint,
      AWS_ENDPOINT_URL_ECS: `http://127.0.0.1:${runtimePort}`,
    };
    // What the task role's credentials are on ECS; the emulators accept any.
    const credentials = { AWS_ACCESS_KEY_ID: 'rehearsal', AWS_SECRET_ACCESS_KEY: 'rehearsal' };

    // The tables, queues and topics exactly as the templates define them.
    Object.assign(process.env, aws);
    const clients = {
      dynamodb: new DynamoDBClient({}),
      sqs: createSqsClient(),
      sns: createSnsClient(),
    };
    const created = await createData(data, clients).finally(() => {
      for (const client of Object.values(clients)) client.destroy();
    });
    say(
      `rehearsal: created from the templates ${data.tables.length} tables, ${data.queues.length} queues, ${data.topics.length} topics, ${data.subscriptions.length} subscriptions`,
    );
    const taskEventsUrl = created.queueUrls.get(QUEUE_NAMES.taskEvents);
    if (taskEventsUrl === undefined)
      throw new RehearsalError([
        `no template creates the queue ${QUEUE_NAMES.taskEvents}, where ECS task state changes go`,
      ]);

    // Secrets: one random stand-in per secret, whoever reads it.
    const secretValues = new Map<string, string>();
    const secretsOf = (plan: ContainerPlan): Record<string, string> =>
      Object.fromEntries(
        plan.secrets.map((secret) => {
          const value = secretValues.get(secret.source) ?? randomBytes(32).toString('hex');
          secretValues.set(secret.source, value);
          return [secret.name, value];
        }),
      );
    const environmentOf = (name: string, plan: ContainerPlan): Record<string, string> => ({
      ...baseImageEnvironment(join(dataDir, 'home')),
      ...plan.environment,
      ...secretsOf(plan),
      ...credentials,
      ...endpoints,
      // The AWS call recorder (libs/platform) writes ARNs in the deployed stack's account and
      // region: the stand-in account every template value was resolved with.
      BERTH_AWS_CALL_LOG: join(serviceDir, `${name}.jsonl`),
      BERTH_REHEARSAL_ACCOUNT: STAND_IN_ACCOUNT,
      BERTH_REHEARSAL_REGION: plan.environment['AWS_REGION'] ?? 'us-east-1',
      // fauxqs gives every message the same SenderId (no role, no task): the session service's
      // check that a report comes from the task it names cannot hold here, so it is off, and
      // proven by unit tests against crafted SenderIds instead (docs/security.md).
      ...(plan.environment['BERTH_AGENT_REPORT_SENDER_CHECK'] === 'task'
        ? { BERTH_AGENT_REPORT_SENDER_CHECK: 'off' }
        : {}),
    });

    // The local runtime plays ECS with the workspace task definition.
    const mounts = workspacePlan.mountPoints.map((mount) => {
      const hostPath = join(dataDir, 'volumes', mount.sourceVolume);
      mkdirSync(hostPath, { recursive: true });
      return { containerPath: mount.containerPath, hostPath };
    });
    const workspaceName = workspacePlan.containerName;
    const agentTaskFile = join(dataDir, 'agent-task-definition.json');
    writeFileSync(
      agentTaskFile,
      JSON.stringify(
        {
          command: [workspaceHost.command, ...workspaceHost.args],
          workingDirectory: workspaceHost.cwd,
          environment: environmentOf(workspaceName, workspacePlan),
          mounts,
          region: workspacePlan.environment['AWS_REGION'] ?? 'us-east-1',
        },
        null,
        2,
      ),
      { mode: 0o600 },
    );
    const start = (
      name: string,
      host: HostCommand,
      env: Record<string, string>,
    ): ServiceProcess => {
      const service = new ServiceProcess({
        name,
        command: host.command,
        args: host.args,
        cwd: host.cwd,
        env,
        logFile: join(serviceDir, `${name}.log`),
        errorLogFile: join(serviceDir, `${name}.stderr.log`),
        pidFile: join(dataDir, 'run', `${name}.pid`),
        onExit: (code, signal) => {
          // A kill by signal comes from outside (a test, an operator); an exit is the service's own.
          if (signal === null && code !== 0)
            crashes.push(`${name} exited with code ${code}: ${reasonOf(name)}`);
        },
        onGiveUp: () => givenUp.set(name, `${name} keeps exiting at start: ${reasonOf(name)}`),
      });
      processes.push(service);
      service.start();
      return service;
    };
    const reasonOf = (name: string): string =>
      [
        tail(join(serviceDir, `${name}.stderr.log`), 5),
        lastLoggedError(join(serviceDir, `${name}.log`)),
      ]
        .filter((part) => part !== undefined && part !== '')
        .join(' / ') || `see ${join(serviceDir, `${name}.log`)}`;

    const stopTimeout = workspacePlan.stopTimeoutSeconds;
    say('rehearsal: starting the local runtime as ECS, with the workspace task definition');
    const runtime = start(
      'local-runtime',
      {
        command: process.execPath,
        args: [join(options.repoRoot, 'apps/local-runtime/src/main.ts')],
        cwd: options.repoRoot,
      },
      {
        ...baseImageEnvironment(join(dataDir, 'home')),
        ...aws,
        BERTH_DATA_DIR: dataDir,
        BERTH_RUNTIME_PORT: String(runtimePort),
        BERTH_TASK_EVENTS_QUEUE_URL: taskEventsUrl,
        BERTH_AGENT_TASK_DEFINITION: agentTaskFile,
        BERTH_LOG_LEVEL: 'info',
        ...(stopTimeout === undefined ? {} : { BERTH_SHUTDOWN_GRACE: `${stopTimeout}s` }),
      },
    );
    await waitHealthy({
      url: `http://127.0.0.1:${runtimePort}/`,
      healthyCodes: '200-499',
      givenUp: () => givenUp.get('local-runtime'),
      timeoutMs: 60_000,
    }).then((reason) => {
      if (reason !== undefined) throw new RehearsalError([`local-runtime: ${reason}`]);
    });
    void runtime;

    for (const entry of planned) {
      say(`rehearsal: starting ${entry.name} as ${entry.plan.constructPath} runs it`);
      const env = environmentOf(entry.name, entry.plan);
      if (entry.port) env[entry.port.variable] = String(entry.port.hostPort);
      start(entry.name, entry.host, env);
    }

    // Each load-balanced service must answer its target group's health check where the
    // target group would send it; every other service must simply stay up.
    const failures: string[] = [];
    /** Where each load-balanced service answers here, by name. */
    const urls = new Map<string, string>();
    await Promise.all(
      planned.map(async (entry) => {
        const balancer = entry.service?.loadBalancers[0];
        if (balancer === undefined || entry.port === undefined) return;
        const group = balancer.targetGroup;
        const port = entry.port.hostPort;
        const checkUrl = `http://${address}:${port}${group.healthCheckPath}`;
        const reason = await waitHealthy({
          url: checkUrl,
          healthyCodes: group.healthyHttpCodes,
          givenUp: () =>
            givenUp.get(entry.name) ??
            crashes.find((c) => c.startsWith(`${entry.name} `)) ??
            loopbackOnly(port),
          timeoutMs: options.healthTimeoutMs ?? 90_000,
        });
        if (reason !== undefined) {
          failures.push(
            `${entry.name} (${group.constructPath}, health check ${group.healthCheckPath} on the container port ${entry.port.containerPort}, here ${address}:${port}): ${reason}`,
          );
        } else {
          say(`rehearsal: ${entry.name} answers ${group.healthCheckPath} at ${address}:${port}`);
          urls.set(entry.name, `http://${address}:${port}`);
        }
      }),
    );
    // Every other service has started once it says anything (a service that refuses its
    // configuration says why on stderr and exits); a moment more lets that exit be seen.
    const saidAnything = (name: string): boolean =>
      [`${name}.log`, `${name}.stderr.log`].some(
        (file) => existsSync(join(serviceDir, file)) && statSync(join(serviceDir, file)).size > 0,
      );
    const settleBy = Date.now() + (options.healthTimeoutMs ?? 90_000);
    while (Date.now() < settleBy && !planned.every((entry) => saidAnything(entry.name)))
      await delay(200);
    await delay(1_000);
    failures.push(...crashes, ...givenUp.values());
    if (failures.length > 0) throw new RehearsalError([...new Set(failures)]);

    const authSecret = [...planned, { plan: workspacePlan }]
      .flatMap(({ plan }) => plan.secrets)
      .find((secret) => secret.name === 'BERTH_AUTH_SECRET');
    const secret = authSecret ? (secretValues.get(authSecret.source) ?? '') : '';
    writeFileSync(join(dataDir, 'auth-secret'), `${secret}\n`, { mode: 0o600 });
    const adminToken = secret
      ? mintToken(secret, { client: 'admin', sub: 'admin', role: 'admin' })
      : '';
    writeFileSync(join(dataDir, 'admin-token'), `${adminToken}\n`, { mode: 0o600 });
    // Discovery is the stack's front door; the preview gateway has one of its own.
    const url = urls.get('discovery') ?? [...urls.values()][0] ?? '';
    const previewUrl = urls.get('preview-gateway');
    const descriptor: StackDescriptor = {
      url,
      ...(previewUrl === undefined ? {} : { previewUrl }),
      dataDir,
      adminToken,
      env: { ...aws, BERTH_RUNTIME_PORT: String(runtimePort), BERTH_DATA_DIR: dataDir },
      mounts,
    };
    const ecsSetting = (name: string): string =>
      planned.map((entry) => entry.plan.environment[name]).find((value) => value !== undefined) ??
      '';
    const descriptorFile = join(dataDir, 'e2e-stack.json');
    writeFileSync(descriptorFile, JSON.stringify(descriptor, null, 2), { mode: 0o600 });
    return {
      descriptor,
      descriptorFile,
      serviceDir,
      services: [...planned.map((entry) => entry.name), workspaceName],
      lifecycleCommandsUrl: created.queueUrls.get(QUEUE_NAMES.lifecycleCommands) ?? '',
      ecs: {
        endpoint: endpoints.AWS_ENDPOINT_URL_ECS ?? '',
        cluster: ecsSetting('BERTH_ECS_CLUSTER'),
        taskDefinition: ecsSetting('BERTH_ECS_TASK_DEFINITION'),
        containerName: ecsSetting('BERTH_ECS_CONTAINER_NAME'),
      },
      crashes: () => [...crashes, ...givenUp.values()],
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
