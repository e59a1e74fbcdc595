import {
  DEFAULT_DEV_SERVER_PORT,
  DEV_SERVER_READY_PATH_PATTERN,
  InvalidArgumentError,
  formatDuration,
  loadConfig,
  parseDuration,
} from '@berth/domain';
import type { Env } from '@berth/domain';

/** CPU units and memory of one Fargate task, and how many of them run. */
export interface ServiceSizing {
  cpu: number;
  memoryMiB: number;
  desiredCount: number;
}

/** A consumer that follows its queue's backlog between `minCount` and `maxCount` tasks. */
export interface QueueScaling {
  minCount: number;
  maxCount: number;
  /** Visible messages at which one more task is added; ten times this adds three. */
  backlogPerTask: number;
}

export interface AlarmThresholds {
  /** Live containers (starting + running + terminating) above this fire the alarm. */
  maxLiveContainers: number;
  /** Failed starts within one evaluation period at or above this fire. */
  startFailures: number;
  orphanedSessions: number;
  reaperErrors: number;
  watcherErrors: number;
  /** Messages visible in any dead-letter queue at or above this fire. */
  deadLetterMessages: number;
  /** Throttled DynamoDB requests per table within one period at or above this fire. */
  throttledRequests: number;
  /** Length of one evaluation period. */
  periodMinutes: number;
  /** Where alarm notifications go; none when unset (the alarms still show on the dashboard). */
  notificationEmail: string | undefined;
}

/**
 * Everything the deployment can be tuned with, typed and checked in one place. Values come
 * from defaults, then the contract's environment variables (BERTH_IDLE_TIMEOUT and friends,
 * the same ones the services read), then the `berth` object of the CDK context (cdk.json or
 * `cdk synth -c berth='{"...": ...}'`). Constructs read thresholds from here, never literals.
 */
export interface InfraConfig {
  /** Stacks are bound to a region (ALB access logs need it) but never to an account. */
  region: string;
  lifecycle: {
    idleTimeout: string;
    sweepInterval: string;
    shutdownGrace: string;
    sessionTtl: string;
    maxSessions: number;
    /** BERTH_POLICY_IDLE_TIMEOUT_MIN / _MAX: the bounds of a policy's idleTimeout. */
    policyIdleTimeoutMin: string;
    policyIdleTimeoutMax: string;
    /** BERTH_EXPIRY_NOTICE: container.expiring comes this long before a maxLifetime stop. */
    expiryNotice: string;
  };
  /** The warm pool (docs/design.md): generic agents kept running for a miss to claim. */
  pool: {
    /** BERTH_POOL_SIZE: members kept running; 0 turns the pool off. */
    size: number;
    /** BERTH_POOL_MAX_AGE: a free member older than this is replaced. */
    maxAge: string;
  };
  logLevel: string;
  logRetentionDays: number;
  network: {
    /** The VPC's range; a /16 leaves room for two /20 private subnets of Fargate tasks. */
    cidr: string;
    /** One NAT gateway serves both AZs: see docs/deploy.md for the cost argument. */
    natGateways: number;
    /** `REJECT` keeps flow-log ingestion cheap; `ALL` for investigations. */
    flowLogTraffic: 'ALL' | 'REJECT' | 'ACCEPT';
  };
  workspace: {
    cpu: number;
    memoryMiB: number;
    /** Run once per input message (BERTH_WORKLOAD_COMMAND); the agent's built-in when unset. */
    workloadCommand: string | undefined;
    /** Where a project's repository lives (BERTH_REPO_URL_TEMPLATE). */
    repoUrlTemplate: string | undefined;
    /** The dev server every workspace keeps running (BERTH_DEV_SERVER_COMMAND); none when unset. */
    devServerCommand: string | undefined;
    /** Its port (BERTH_DEV_SERVER_PORT), mapped in the workspace task definition. */
    devServerPort: number;
    /** What the agent GETs to call it `up` (BERTH_DEV_SERVER_READY_PATH); the agent's `/` when unset. */
    devServerReadyPath: string | undefined;
  };
  discovery: ServiceSizing & {
    /** With a certificate the ALB listens on HTTPS (443) and redirects 80; without, HTTP only. */
    certificateArn: string | undefined;
    /** Internet-facing needs a certificate: bearer tokens never cross the internet in clear. */
    internetFacing: boolean;
    /** Who may reach the load balancer; the VPC's own range when empty. */
    ingressCidrs: string[];
  };
  /** The preview gateway (issue 19): a load balancer of its own, so previews have their own origin. */
  previewGateway: ServiceSizing & {
    certificateArn: string | undefined;
    /** Internet-facing needs a certificate: preview cookies never cross the internet in clear. */
    internetFacing: boolean;
    ingressCidrs: string[];
    /** BERTH_PREVIEW_DOMAIN: `<containerId>.<domain>` names, pointed (wildcard DNS) at its load balancer. */
    domain: string | undefined;
  };
  session: ServiceSizing & { scaling: QueueScaling };
  reaper: ServiceSizing;
  taskWatcher: ServiceSizing & { scaling: QueueScaling };
  /** The webhook service: one task is enough (deliveries wait on receivers, not on CPU). */
  webhooks: ServiceSizing;
  alarms: AlarmThresholds;
}

export const DEFAULT_INFRA_CONFIG: InfraConfig = {
  region: 'us-east-1',
  lifecycle: {
    idleTimeout: '20m',
    sweepInterval: '10m',
    shutdownGrace: '60s',
    sessionTtl: '2h',
    maxSessions: 10,
    policyIdleTimeoutMin: '1m',
    policyIdleTimeoutMax: '8h',
    expiryNotice: '5m',
  },
  pool: { size: 0, maxAge: '1h' },
  logLevel: 'info',
  logRetentionDays: 30,
  network: { cidr: '10.40.0.0/16', natGateways: 1, flowLogTraffic: 'REJECT' },
  workspace: {
    cpu: 1024,
    memoryMiB: 2048,
    workloadCommand: undefined,
    repoUrlTemplate: undefined,
    devServerCommand: undefined,
    devServerPort: DEFAULT_DEV_SERVER_PORT,
    devServerReadyPath: undefined,
  },
  discovery: {
    cpu: 512,
    memoryMiB: 1024,
    desiredCount: 2,
    certificateArn: undefined,
    internetFacing: false,
    ingressCidrs: [],
  },
  previewGateway: {
    cpu: 256,
    memoryMiB: 512,
    desiredCount: 2,
    certificateArn: undefined,
    internetFacing: false,
    ingressCidrs: [],
    domain: undefined,
  },
  session: {
    cpu: 256,
    memoryMiB: 512,
    desiredCount: 1,
    scaling: { minCount: 1, maxCount: 4, backlogPerTask: 100 },
  },
  reaper: { cpu: 256, memoryMiB: 512, desiredCount: 1 },
  taskWatcher: {
    cpu: 256,
    memoryMiB: 512,
    desiredCount: 1,
    scaling: { minCount: 1, maxCount: 3, backlogPerTask: 100 },
  },
  webhooks: { cpu: 256, memoryMiB: 512, desiredCount: 1 },
  alarms: {
    maxLiveContainers: 50,
    startFailures: 1,
    orphanedSessions: 1,
    reaperErrors: 1,
    watcherErrors: 1,
    deadLetterMessages: 1,
    throttledRequests: 1,
    periodMinutes: 5,
    notificationEmail: undefined,
  },
};

/** Fargate sends SIGKILL at most this long after SIGTERM. */
export const MAX_FARGATE_STOP_TIMEOUT_MS = 120_000;

/** Fargate's valid CPU units and, for each, the memory sizes (MiB) it accepts. */
const FARGATE_SIZES: Readonly<Record<number, (memory: number) => boolean>> = {
  256: (m) => [512, 1024, 2048].includes(m),
  512: (m) => m >= 1024 && m <= 4096 && m % 1024 === 0,
  1024: (m) => m >= 2048 && m <= 8192 && m % 1024 === 0,
  2048: (m) => m >= 4096 && m <= 16384 && m % 1024 === 0,
  4096: (m) => m >= 8192 && m <= 30720 && m % 1024 === 0,
};

type DeepPartial<T> = {
  [K in keyof T]?: T[K] extends object ? (T[K] extends unknown[] ? T[K] : DeepPartial<T[K]>) : T[K];
};
export type InfraConfigOverrides = DeepPartial<InfraConfig>;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function merge<T>(base: T, override: unknown, path: string): T {
  if (override === undefined) return base;
  if (!isPlainObject(base)) return override as T;
  if (!isPlainObject(override)) {
    throw new InvalidArgumentError(`${path || 'berth'} must be an object`, path || 'berth');
  }
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    const field = path ? `${path}.${key}` : key;
    if (!(key in base)) throw new InvalidArgumentError(`unknown setting ${field}`, field);
    out[key] = merge((base as Record<string, unknown>)[key], value, field);
  }
  return out as T;
}

const LIFECYCLE_VARIABLES = [
  'BERTH_IDLE_TIMEOUT',
  'AUTO_SHUTDOWN_MINUTES',
  'IDLE_THRESHOLD_MINUTES',
  'BERTH_SWEEP_INTERVAL',
  'CLEANUP_INTERVAL_MINUTES',
  'BERTH_SHUTDOWN_GRACE',
  'BERTH_SESSION_TTL',
  'BERTH_MAX_SESSIONS',
  'BERTH_POLICY_IDLE_TIMEOUT_MIN',
  'BERTH_POLICY_IDLE_TIMEOUT_MAX',
  'BERTH_EXPIRY_NOTICE',
  'BERTH_LOG_LEVEL',
  'BERTH_WORKLOAD_COMMAND',
  'BERTH_REPO_URL_TEMPLATE',
  'BERTH_POOL_SIZE',
  'BERTH_POOL_MAX_AGE',
] as const;

/**
 * The effective configuration. `env` supplies the contract's variables (the services' own
 * defaults and aliases apply, through the domain's loader); `context` is the CDK context's
 * `berth` object, which wins. Throws InvalidArgumentError naming the first bad field.
 */
export function resolveInfraConfig(env: Env, context?: unknown): InfraConfig {
  // Only the lifecycle variables: the rest of the services' configuration (ports, runtime
  // selection) describes a process, not the deployment, and must not fail a synth.
  const lifecycleEnv = Object.fromEntries(LIFECYCLE_VARIABLES.map((name) => [name, env[name]]));
  const runtime = loadConfig(lifecycleEnv);
  const fromEnv: InfraConfigOverrides = {
    region: env['CDK_DEFAULT_REGION'] ?? env['AWS_REGION'] ?? DEFAULT_INFRA_CONFIG.region,
    lifecycle: {
      idleTimeout: formatDuration(runtime.idleTimeoutMs),
      sweepInterval: formatDuration(runtime.sweepIntervalMs),
      shutdownGrace: formatDuration(runtime.shutdownGraceMs),
      sessionTtl: formatDuration(runtime.sessionTtlMs),
      maxSessions: runtime.maxSessions,
      policyIdleTimeoutMin: formatDuration(runtime.policyIdleTimeoutMinMs),
      policyIdleTimeoutMax: formatDuration(runtime.policyIdleTimeoutMaxMs),
      expiryNotice: formatDuration(runtime.expiryNoticeMs),
    },
    pool: { size: runtime.poolSize, maxAge: formatDuration(runtime.poolMaxAgeMs) },
    logLevel: runtime.logLevel,
    workspace: {
      workloadCommand: runtime.workloadCommand,
      repoUrlTemplate: runtime.repoUrlTemplate,
      ...(env['BERTH_DEV_SERVER_COMMAND']?.trim()
        ? { devServerCommand: env['BERTH_DEV_SERVER_COMMAND'] }
        : {}),
      ...(env['BERTH_DEV_SERVER_READY_PATH']?.trim()
        ? { devServerReadyPath: env['BERTH_DEV_SERVER_READY_PATH'].trim() }
        : {}),
    },
  };
  const parsedContext: unknown = typeof context === 'string' ? JSON.parse(context) : context;
  const config = merge(merge(DEFAULT_INFRA_CONFIG, fromEnv, ''), parsedContext, '');
  validate(config);
  return config;
}

function validate(config: InfraConfig): void {
  const positiveInt = (
    value: number,
    field: string,
    min = 1,
    max = Number.MAX_SAFE_INTEGER,
  ): void => {
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new InvalidArgumentError(
        `${field} must be a whole number from ${min} to ${max}; got ${String(value)}`,
        field,
      );
    }
  };
  for (const [key, value] of Object.entries(config.lifecycle)) {
    if (key === 'maxSessions') positiveInt(value as number, `lifecycle.${key}`, 1, 1000);
    else parseDuration(value as string, `lifecycle.${key}`);
  }
  if (
    parseDuration(config.lifecycle.policyIdleTimeoutMin, 'lifecycle.policyIdleTimeoutMin') >
    parseDuration(config.lifecycle.policyIdleTimeoutMax, 'lifecycle.policyIdleTimeoutMax')
  ) {
    throw new InvalidArgumentError(
      'lifecycle.policyIdleTimeoutMin must not be greater than lifecycle.policyIdleTimeoutMax',
      'lifecycle.policyIdleTimeoutMin',
    );
  }
  const sweepMs = parseDuration(config.lifecycle.sweepInterval, 'lifecycle.sweepInterval');
  if (sweepMs % 60_000 !== 0) {
    throw new InvalidArgumentError(
      `lifecycle.sweepInterval must be whole minutes (an EventBridge rate); got ${config.lifecycle.sweepInterval}`,
      'lifecycle.sweepInterval',
    );
  }
  if (!/^[a-z]{2}(-[a-z]+)+-\d$/.test(config.region)) {
    throw new InvalidArgumentError(
      `region must be an AWS region such as eu-west-1; got ${config.region}`,
      'region',
    );
  }
  positiveInt(config.pool.size, 'pool.size', 0, 100);
  if (parseDuration(config.pool.maxAge, 'pool.maxAge') <= 0) {
    throw new InvalidArgumentError('pool.maxAge must be greater than zero', 'pool.maxAge');
  }
  positiveInt(config.logRetentionDays, 'logRetentionDays', 1, 3653);
  // The workspace image runs as an unprivileged user: no port below 1024.
  positiveInt(config.workspace.devServerPort, 'workspace.devServerPort', 1024, 65535);
  const readyPath = config.workspace.devServerReadyPath;
  if (readyPath !== undefined && !DEV_SERVER_READY_PATH_PATTERN.test(readyPath)) {
    throw new InvalidArgumentError(
      `workspace.devServerReadyPath must be a path starting with a single "/" (printable ASCII, no spaces or "#", at most 1024 characters); got "${String(readyPath)}"`,
      'workspace.devServerReadyPath',
    );
  }
  positiveInt(config.network.natGateways, 'network.natGateways', 1, 2);
  if (!/^\d{1,3}(\.\d{1,3}){3}\/16$/.test(config.network.cidr)) {
    throw new InvalidArgumentError(
      `network.cidr must be an IPv4 /16; got ${config.network.cidr}`,
      'network.cidr',
    );
  }
  if (!['ALL', 'REJECT', 'ACCEPT'].includes(config.network.flowLogTraffic)) {
    throw new InvalidArgumentError(
      `network.flowLogTraffic must be ALL, REJECT or ACCEPT; got ${String(config.network.flowLogTraffic)}`,
      'network.flowLogTraffic',
    );
  }
  if (
    parseDuration(config.lifecycle.shutdownGrace, 'lifecycle.shutdownGrace') >
    MAX_FARGATE_STOP_TIMEOUT_MS
  ) {
    throw new InvalidArgumentError(
      `lifecycle.shutdownGrace must be at most 120s: Fargate kills a container 120s after SIGTERM whatever it is told; got ${config.lifecycle.shutdownGrace}`,
      'lifecycle.shutdownGrace',
    );
  }
  const sizing: [string, { cpu: number; memoryMiB: number }][] = [
    ['workspace', config.workspace],
    ['discovery', config.discovery],
    ['previewGateway', config.previewGateway],
    ['session', config.session],
    ['reaper', config.reaper],
    ['taskWatcher', config.taskWatcher],
    ['webhooks', config.webhooks],
  ];
  for (const [name, size] of sizing) {
    const fits = FARGATE_SIZES[size.cpu];
    if (fits === undefined || !fits(size.memoryMiB)) {
      throw new InvalidArgumentError(
        `${name}: ${size.cpu} CPU units with ${size.memoryMiB} MiB is not a Fargate size`,
        `${name}.memoryMiB`,
      );
    }
  }
  for (const [name, scaling] of [
    ['session', config.session.scaling],
    ['taskWatcher', config.taskWatcher.scaling],
  ] as const) {
    // At least one: step scaling adds a task only once the backlog reaches backlogPerTask,
    // so from zero a small backlog would wait for ever.
    positiveInt(scaling.minCount, `${name}.scaling.minCount`, 1, 100);
    positiveInt(scaling.maxCount, `${name}.scaling.maxCount`, scaling.minCount, 100);
    positiveInt(scaling.backlogPerTask, `${name}.scaling.backlogPerTask`);
  }
  if (config.discovery.internetFacing && config.discovery.certificateArn === undefined) {
    throw new InvalidArgumentError(
      'discovery.internetFacing needs discovery.certificateArn: bearer tokens must not cross the internet over plain HTTP',
      'discovery.certificateArn',
    );
  }
  if (config.previewGateway.internetFacing && config.previewGateway.certificateArn === undefined) {
    throw new InvalidArgumentError(
      'previewGateway.internetFacing needs previewGateway.certificateArn: preview tokens and cookies must not cross the internet over plain HTTP',
      'previewGateway.certificateArn',
    );
  }
  for (const name of ['discovery', 'previewGateway'] as const) {
    for (const cidr of config[name].ingressCidrs) {
      if (!/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/.test(cidr)) {
        throw new InvalidArgumentError(
          `${name}.ingressCidrs: "${cidr}" is not an IPv4 CIDR`,
          `${name}.ingressCidrs`,
        );
      }
    }
  }
  const domain = config.previewGateway.domain;
  if (domain !== undefined && !/^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}$/.test(domain)) {
    throw new InvalidArgumentError(
      `previewGateway.domain must be a DNS name such as preview.example.com; got "${domain}"`,
      'previewGateway.domain',
    );
  }
  const alarms = config.alarms;
  positiveInt(alarms.maxLiveContainers, 'alarms.maxLiveContainers', 0);
  for (const key of [
    'startFailures',
    'orphanedSessions',
    'reaperErrors',
    'watcherErrors',
    'deadLetterMessages',
    'throttledRequests',
  ] as const) {
    positiveInt(alarms[key], `alarms.${key}`);
  }
  positiveInt(alarms.periodMinutes, 'alarms.periodMinutes', 1, 1440);
}
