import { AGENT_REPORT_SENDER_CHECKS, type AgentReportSenderCheck } from './agent-reports.ts';
import { parseDuration } from './duration.ts';
import { InvalidArgumentError, isBerthError } from './errors.ts';
import { OPAQUE_ID_PATTERN, isIdPart, parseContainerId, type ContainerKey } from './identity.ts';
import { parseNetworks, type WebhookNetworkPolicy } from './webhooks.ts';

export type RuntimeKind = 'local' | 'ecs';

/** Everything berth reads from its environment, parsed and checked in one place. */
export interface BerthConfig {
  idleTimeoutMs: number;
  /** The bounds a policy's idleTimeout must lie within (docs/design.md, "Lifecycle policies"). */
  policyIdleTimeoutMinMs: number;
  policyIdleTimeoutMaxMs: number;
  /** How long before a container's maxLifetime `container.expiring` is published. */
  expiryNoticeMs: number;
  sweepIntervalMs: number;
  maxSessions: number;
  sessionTtlMs: number;
  shutdownGraceMs: number;
  /** Workspace agent: how soon a checkpoint commit is pushed (pushes within it coalesce). */
  checkpointPushIntervalMs: number;
  /** A container still `starting` after this long is failed (`start_failed`). */
  startTimeoutMs: number;
  /** How often the reaper looks for containers whose idle time is up. */
  reaperTickMs: number;
  /** How often the reaper emits the container gauges (ContainersByStatus, SessionsPerContainer). */
  gaugeIntervalMs: number;
  /** How long discovery may answer from its in-process cache without reading the store. */
  cacheTtlMs: number;
  /** Discovery requests per minute per (client, user); 0 turns the limit off. */
  rateLimitPerMinute: number;
  /** Generic agents kept running for a miss to claim (docs/design.md, "The warm pool"); 0 is off. */
  poolSize: number;
  /** A free pool member older than this is replaced, so image updates reach the pool. */
  poolMaxAgeMs: number;
  /**
   * Soak only: the probability that a side effect of the core (a store write, RunTask,
   * StopTask, a queue created or deleted, a publish) faults: it fails or the process is killed,
   * right before or right after the step. 0 (the default) is off.
   */
  stepFaultRate: number;
  runtime: RuntimeKind;
  workloadCommand: string | undefined;
  dataDir: string;
  httpPort: number;
  /** The address discovery and the preview gateway listen on. */
  httpHost: string;
  /** The preview gateway (docs/design.md, "Preview URLs"). */
  preview: PreviewConfig;
  /**
   * Discovery's console: where a container's logs are, as a URL template with `{region}`,
   * `{taskId}`, `{containerId}` and `{generation}` (the AWS deployment: its CloudWatch log
   * stream); unset: no link.
   */
  consoleLogUrl: string | undefined;
  /** Session commands handled at once. */
  sessionConcurrency: number;
  /**
   * Session service: `task` accepts an agent report only from the task of the record it names
   * (SQS SenderId's role session name is the ECS task id); `off` (the local default) does not
   * look at the sender. Every report is checked against the store either way.
   */
  agentReportSenderCheck: AgentReportSenderCheck;
  /** Also write each metric as a CloudWatch embedded-metric log line. */
  emf: boolean;
  /** The lifecycle topic's ARN; required where the topic is not created (the ECS runtime). */
  lifecycleTopicArn: string | undefined;
  /** The local runtime's queue for task state changes; looked up by name when unset. */
  taskEventsQueueUrl: string | undefined;
  /** The local runtime's ECS-like mode: a task definition file it starts agents from. */
  agentTaskDefinitionFile: string | undefined;
  /** The agent program the local runtime runs per task; its own default when unset. */
  agentEntry: string | undefined;
  sqsPort: number;
  dynamodbPort: number;
  runtimePort: number;
  authSecret: string | undefined;
  containerTable: string;
  sessionTable: string;
  /** The lifecycle history's table (issue 18). */
  historyTable: string;
  /** How long the lifecycle history keeps an event (DynamoDB TTL; reads filter expired ones). */
  historyRetentionMs: number;
  /**
   * The clients whose usage metrics carry their own `ClientId` dimension; every other client's
   * is summed under `other`, so CloudWatch's custom metrics stay bounded (docs/design.md).
   */
  usageMetricClients: string[];
  awsRegion: string;
  awsEndpointUrl: string | undefined;
  logLevel: string;
  ecs: {
    cluster: string | undefined;
    taskDefinition: string | undefined;
    containerName: string;
    subnets: string[];
    securityGroups: string[];
    assignPublicIp: boolean;
  };
  /** Where a project's repository lives; `{clientId}` and `{projectId}` are filled in. */
  repoUrlTemplate: string | undefined;
  /** BERTH_AWS_CALL_LOG: where each AWS call is recorded (the rehearsal); undefined: none. */
  awsCallLogPath: string | undefined;
  /** The deployed stack the recorded calls' ARNs name. */
  rehearsalTarget: RehearsalTargetConfig;
  /** Signed webhooks (docs/contract.md, "Webhooks"). */
  webhooks: {
    /** The table of subscriptions and deliveries. */
    table: string;
    /** Where a webhook may point: http too, and private networks exempt from the SSRF refusal. */
    network: WebhookNetworkPolicy;
    /** One delivery attempt's limit, connection to answer. */
    timeoutMs: number;
    /** The first retry's wait; each next one doubles (capped at 1h), with jitter. */
    retryBaseMs: number;
    /** How long a delivery is retried before it is dead-lettered. */
    retryWindowMs: number;
    /** Deliveries in flight at once per client (each container's in order, one at a time). */
    concurrencyPerClient: number;
  };
}

export interface PreviewConfig {
  /** The port the preview gateway listens on. */
  port: number;
  /** The gateway's public base URL, which preview URLs start with (no trailing slash). */
  baseUrl: string;
  /** When set, preview URLs use the host-name form `<containerId>.<domain>`. */
  domain: string | undefined;
  /** How long a preview URL's token may be used. */
  tokenTtlMs: number;
  /** How long the cookie a preview URL is exchanged for lasts. */
  cookieTtlMs: number;
}

export type Env = Readonly<Record<string, string | undefined>>;

/** The tables' names when CONTAINER_TABLE and SESSION_TABLE are not set. */
export const DEFAULT_TABLES = {
  containerTable: 'berth-containers',
  sessionTable: 'berth-sessions',
  webhookTable: 'berth-webhooks',
  historyTable: 'berth-history',
} as const;

/** The agent's container in its task definition, when BERTH_ECS_CONTAINER_NAME is not set. */
export const DEFAULT_AGENT_CONTAINER_NAME = 'workspace';

/** Thrown with every problem found, not just the first, so one fix-and-retry is enough. */
export class ConfigError extends InvalidArgumentError {
  readonly problems: readonly InvalidArgumentError[];

  constructor(problems: InvalidArgumentError[]) {
    super(
      `invalid configuration:\n${problems.map((p) => `  - ${p.message}`).join('\n')}`,
      problems[0]?.field,
    );
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** At most this many clients get a usage metric dimension of their own (CloudWatch cost). */
export const MAX_USAGE_METRIC_CLIENTS = 50;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function loadConfig(env: Env): BerthConfig {
  const problems: InvalidArgumentError[] = [];
  const attempt = <T>(read: () => T, fallback: T): T => {
    try {
      return read();
    } catch (error) {
      if (isBerthError(error) && error instanceof InvalidArgumentError) {
        problems.push(error);
        return fallback;
      }
      throw error;
    }
  };

  const value = (name: string): string | undefined => {
    const raw = env[name];
    return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  };

  const duration = (name: string, fallback: string, minutesAliases: string[] = []): number =>
    attempt(() => {
      const own = value(name);
      if (own !== undefined) return positive(name, parseDuration(own, name));
      for (const alias of minutesAliases) {
        const minutes = value(alias);
        if (minutes !== undefined) {
          if (!/^\d+(\.\d+)?$/.test(minutes) || Number(minutes) <= 0) {
            throw new InvalidArgumentError(
              `${alias} must be a positive number of minutes; got "${minutes}"`,
              alias,
            );
          }
          return Math.round(Number(minutes) * 60_000);
        }
      }
      return parseDuration(fallback, name);
    }, 0);

  /** For settings where 0 means "off" (e.g. no cache). */
  const durationAllowingZero = (name: string, fallback: string): number =>
    attempt(() => {
      const own = value(name);
      if (own === '0') return 0;
      return own === undefined ? parseDuration(fallback, name) : parseDuration(own, name);
    }, 0);

  const positive = (name: string, ms: number): number => {
    if (ms <= 0) throw new InvalidArgumentError(`${name} must be greater than zero`, name);
    return ms;
  };

  const integer = (name: string, fallback: number, min: number, max: number): number =>
    attempt(() => {
      const raw = value(name);
      if (raw === undefined) return fallback;
      const n = Number(raw);
      if (!/^\d+$/.test(raw) || n < min || n > max) {
        throw new InvalidArgumentError(
          `${name} must be a whole number from ${min} to ${max}; got "${raw}"`,
          name,
        );
      }
      return n;
    }, fallback);

  const oneOf = <T extends string>(name: string, allowed: readonly T[], fallback: T): T =>
    attempt(() => {
      const raw = value(name);
      if (raw === undefined) return fallback;
      if (!(allowed as readonly string[]).includes(raw)) {
        throw new InvalidArgumentError(
          `${name} must be one of ${allowed.join(', ')}; got "${raw}"`,
          name,
        );
      }
      return raw as T;
    }, fallback);

  const list = (name: string): string[] =>
    (value(name) ?? '')
      .split(',')
      .map((item) => item.trim())
      .filter((item) => item !== '');

  const tableName = (name: string, fallback: string): string =>
    attempt(() => {
      const raw = value(name) ?? fallback;
      if (!/^[A-Za-z0-9_.-]{3,255}$/.test(raw)) {
        throw new InvalidArgumentError(
          `${name} must be a DynamoDB table name (3-255 of A-Z a-z 0-9 _ . -); got "${raw}"`,
          name,
        );
      }
      return raw;
    }, fallback);

  function loadPreviewConfig(): PreviewConfig {
    const port = integer('BERTH_PREVIEW_PORT', 8081, 0, 65535);
    const baseUrl = attempt(() => {
      const raw = value('BERTH_PREVIEW_URL');
      if (raw === undefined) return `http://127.0.0.1:${port}`;
      let url: URL;
      try {
        url = new URL(raw);
      } catch {
        url = new URL('invalid:');
      }
      if (
        (url.protocol !== 'http:' && url.protocol !== 'https:') ||
        url.search !== '' ||
        url.hash !== ''
      ) {
        throw new InvalidArgumentError(
          `BERTH_PREVIEW_URL must be an http(s) URL without query or fragment; got "${raw}"`,
          'BERTH_PREVIEW_URL',
        );
      }
      return raw.replace(/\/+$/, '');
    }, '');
    const domain = attempt(() => {
      const raw = value('BERTH_PREVIEW_DOMAIN')?.toLowerCase();
      if (raw !== undefined && !/^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,63}$/.test(raw)) {
        throw new InvalidArgumentError(
          `BERTH_PREVIEW_DOMAIN must be a DNS name such as preview.example.com; got "${raw}"`,
          'BERTH_PREVIEW_DOMAIN',
        );
      }
      return raw;
    }, undefined);
    return {
      port,
      baseUrl,
      domain,
      tokenTtlMs: duration('BERTH_PREVIEW_TOKEN_TTL', '5m'),
      cookieTtlMs: duration('BERTH_PREVIEW_COOKIE_TTL', '8h'),
    };
  }

  const config: BerthConfig = {
    idleTimeoutMs: duration('BERTH_IDLE_TIMEOUT', '20m', [
      'AUTO_SHUTDOWN_MINUTES',
      'IDLE_THRESHOLD_MINUTES',
    ]),
    policyIdleTimeoutMinMs: duration('BERTH_POLICY_IDLE_TIMEOUT_MIN', '1m'),
    policyIdleTimeoutMaxMs: duration('BERTH_POLICY_IDLE_TIMEOUT_MAX', '8h'),
    expiryNoticeMs: duration('BERTH_EXPIRY_NOTICE', '5m'),
    sweepIntervalMs: duration('BERTH_SWEEP_INTERVAL', '10m', ['CLEANUP_INTERVAL_MINUTES']),
    maxSessions: integer('BERTH_MAX_SESSIONS', 10, 1, 1000),
    sessionTtlMs: duration('BERTH_SESSION_TTL', '2h'),
    shutdownGraceMs: duration('BERTH_SHUTDOWN_GRACE', '60s'),
    checkpointPushIntervalMs: duration('BERTH_CHECKPOINT_PUSH_INTERVAL', '5s'),
    startTimeoutMs: duration('BERTH_START_TIMEOUT', '5m'),
    reaperTickMs: duration('BERTH_REAPER_TICK', '1s'),
    gaugeIntervalMs: duration('BERTH_GAUGE_INTERVAL', '60s'),
    cacheTtlMs: durationAllowingZero('BERTH_CACHE_TTL', '2s'),
    rateLimitPerMinute: integer('BERTH_RATE_LIMIT', 1200, 0, 1_000_000),
    poolSize: integer('BERTH_POOL_SIZE', 0, 0, 100),
    poolMaxAgeMs: duration('BERTH_POOL_MAX_AGE', '1h'),
    stepFaultRate: attempt(() => {
      const raw = value('BERTH_STEP_FAULT_RATE') ?? '0';
      const rate = Number(raw);
      if (!/^\d+(\.\d+)?$/.test(raw) || rate > 0.5) {
        throw new InvalidArgumentError(
          `BERTH_STEP_FAULT_RATE must be a probability from 0 to 0.5; got "${raw}"`,
          'BERTH_STEP_FAULT_RATE',
        );
      }
      return rate;
    }, 0),
    runtime: oneOf('BERTH_RUNTIME', ['local', 'ecs'] as const, 'local'),
    workloadCommand: value('BERTH_WORKLOAD_COMMAND'),
    dataDir: value('BERTH_DATA_DIR') ?? './.berth',
    httpPort: integer('BERTH_HTTP_PORT', 8080, 0, 65535),
    httpHost: value('BERTH_HTTP_HOST') ?? '127.0.0.1',
    preview: loadPreviewConfig(),
    consoleLogUrl: attempt(() => {
      const raw = value('BERTH_CONSOLE_LOG_URL');
      if (raw !== undefined && !/^https?:\/\/[^\s"<>]+$/.test(raw)) {
        throw new InvalidArgumentError(
          `BERTH_CONSOLE_LOG_URL must be an http(s) URL template (with {region}, {taskId}, {containerId}, {generation}); got "${raw}"`,
          'BERTH_CONSOLE_LOG_URL',
        );
      }
      return raw;
    }, undefined),
    sessionConcurrency: integer('BERTH_SESSION_CONCURRENCY', 16, 1, 1000),
    agentReportSenderCheck: oneOf(
      'BERTH_AGENT_REPORT_SENDER_CHECK',
      AGENT_REPORT_SENDER_CHECKS,
      'off',
    ),
    emf: value('BERTH_EMF') === 'true',
    lifecycleTopicArn: value('BERTH_LIFECYCLE_TOPIC_ARN'),
    taskEventsQueueUrl: value('BERTH_TASK_EVENTS_QUEUE_URL'),
    agentTaskDefinitionFile: value('BERTH_AGENT_TASK_DEFINITION'),
    agentEntry: value('BERTH_AGENT_ENTRY'),
    sqsPort: integer('BERTH_SQS_PORT', 4566, 0, 65535),
    dynamodbPort: integer('BERTH_DYNAMODB_PORT', 8000, 0, 65535),
    runtimePort: integer('BERTH_RUNTIME_PORT', 4599, 0, 65535),
    authSecret: value('BERTH_AUTH_SECRET'),
    containerTable: tableName('CONTAINER_TABLE', DEFAULT_TABLES.containerTable),
    sessionTable: tableName('SESSION_TABLE', DEFAULT_TABLES.sessionTable),
    historyTable: tableName('HISTORY_TABLE', DEFAULT_TABLES.historyTable),
    historyRetentionMs: duration('BERTH_HISTORY_RETENTION', '7d'),
    usageMetricClients: attempt(() => {
      const clients = list('BERTH_USAGE_METRIC_CLIENTS');
      const bad = clients.find((client) => !isIdPart(client) || client === 'other');
      if (bad !== undefined) {
        throw new InvalidArgumentError(
          `BERTH_USAGE_METRIC_CLIENTS must be client ids separated by commas (not "other"); got "${bad}"`,
          'BERTH_USAGE_METRIC_CLIENTS',
        );
      }
      if (clients.length > MAX_USAGE_METRIC_CLIENTS) {
        throw new InvalidArgumentError(
          `BERTH_USAGE_METRIC_CLIENTS names ${clients.length} clients; at most ${MAX_USAGE_METRIC_CLIENTS} (each is a custom metric per usage metric)`,
          'BERTH_USAGE_METRIC_CLIENTS',
        );
      }
      return clients;
    }, []),
    awsRegion: value('AWS_REGION') ?? value('AWS_DEFAULT_REGION') ?? 'us-east-1',
    awsEndpointUrl: value('AWS_ENDPOINT_URL'),
    logLevel: oneOf('BERTH_LOG_LEVEL', LOG_LEVELS, 'info'),
    ecs: {
      cluster: value('BERTH_ECS_CLUSTER'),
      taskDefinition: value('BERTH_ECS_TASK_DEFINITION'),
      containerName: value('BERTH_ECS_CONTAINER_NAME') ?? DEFAULT_AGENT_CONTAINER_NAME,
      subnets: list('BERTH_ECS_SUBNETS'),
      securityGroups: list('BERTH_ECS_SECURITY_GROUPS'),
      assignPublicIp: value('BERTH_ECS_ASSIGN_PUBLIC_IP') === 'true',
    },
    repoUrlTemplate: value('BERTH_REPO_URL_TEMPLATE'),
    awsCallLogPath: loadAwsCallLogPath(env),
    rehearsalTarget: loadRehearsalTarget(env),
    webhooks: {
      table: tableName('WEBHOOK_TABLE', DEFAULT_TABLES.webhookTable),
      network: {
        allowHttp:
          oneOf('BERTH_WEBHOOK_ALLOW_HTTP', ['true', 'false'] as const, 'false') === 'true',
        allowedNetworks: attempt(() => {
          const networks = list('BERTH_WEBHOOK_ALLOWED_NETWORKS');
          parseNetworks(networks, 'BERTH_WEBHOOK_ALLOWED_NETWORKS');
          return networks;
        }, []),
      },
      timeoutMs: duration('BERTH_WEBHOOK_TIMEOUT', '10s'),
      retryBaseMs: duration('BERTH_WEBHOOK_RETRY_BASE', '10s'),
      retryWindowMs: duration('BERTH_WEBHOOK_RETRY_WINDOW', '24h'),
      concurrencyPerClient: integer('BERTH_WEBHOOK_CONCURRENCY_PER_CLIENT', 4, 1, 64),
    },
  };

  if (config.authSecret !== undefined && config.authSecret.length < 32) {
    problems.push(
      new InvalidArgumentError(
        'BERTH_AUTH_SECRET must be at least 32 characters (HS256 needs 256 bits of key)',
        'BERTH_AUTH_SECRET',
      ),
    );
  }
  if (config.policyIdleTimeoutMinMs > config.policyIdleTimeoutMaxMs) {
    problems.push(
      new InvalidArgumentError(
        'BERTH_POLICY_IDLE_TIMEOUT_MIN must not be greater than BERTH_POLICY_IDLE_TIMEOUT_MAX',
        'BERTH_POLICY_IDLE_TIMEOUT_MIN',
      ),
    );
  }
  if (config.runtime === 'ecs') {
    if (config.ecs.cluster === undefined)
      problems.push(
        new InvalidArgumentError(
          'BERTH_ECS_CLUSTER is required when BERTH_RUNTIME=ecs',
          'BERTH_ECS_CLUSTER',
        ),
      );
    if (config.ecs.taskDefinition === undefined)
      problems.push(
        new InvalidArgumentError(
          'BERTH_ECS_TASK_DEFINITION is required when BERTH_RUNTIME=ecs',
          'BERTH_ECS_TASK_DEFINITION',
        ),
      );
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}

/** What the runtime hands the agent, parsed and checked once at start. */
export interface AgentConfig {
  containerId: string;
  key: ContainerKey;
  /** As given: the agent resolves a relative WORKSPACE_PATH against its working directory. */
  workspacePath: string;
  repoUrl: string;
  /**
   * Which generation of the container this is; only for logs, so a runtime that does not
   * pass BERTH_GENERATION still gets a working agent (a malformed value is refused).
   */
  generation: number | undefined;
  inputQueueUrl: string;
  outputQueueUrl: string;
  /** Undefined: the built-in workload (append to CHAT.md, print the text back). */
  workloadCommand: string | undefined;
  shutdownGraceMs: number;
  logLevel: string;
  /**
   * The agent reports queue (`berth-agent-reports`), where the agent announces its worktrees
   * (`thread.ready`) and checkpoints (`checkpoint.record`); the workspace role may only send
   * there. Undefined: it announces nothing (a bare agent in tests).
   */
  agentReportsUrl: string | undefined;
  /** How soon a checkpoint commit is pushed; pushes within one interval coalesce. */
  checkpointPushIntervalMs: number;
  /** BERTH_DEV_SERVER_COMMAND: the dev server the agent keeps running; undefined: none. */
  devServerCommand: string | undefined;
  /** BERTH_DEV_SERVER_PORT: given to the dev server as PORT. */
  devServerPort: number;
  /**
   * BERTH_DEV_SERVER_THREAD: the dev server runs in this thread's worktree (the container
   * user's branch of it); undefined: in the main checkout (WORKSPACE_PATH).
   */
  devServerThread: string | undefined;
  /**
   * BERTH_DEV_SERVER_READY_PATH: the path (and query) the agent GETs on 127.0.0.1:PORT to
   * decide that the dev server is `up` (any answer below 500).
   */
  devServerReadyPath: string;
}

/** BERTH_DEV_SERVER_READY_PATH's default. */
export const DEFAULT_DEV_SERVER_READY_PATH = '/';

/**
 * What BERTH_DEV_SERVER_READY_PATH may be: one leading "/" (a "//x" would name another host),
 * printable ASCII without spaces or "#" (it goes verbatim into a request line), at most 1024
 * characters.
 */
export const DEV_SERVER_READY_PATH_PATTERN = /^\/(?!\/)[!-"$-~]{0,1023}$/;

/** BERTH_DEV_SERVER_PORT's default: the port the workspace task definition maps. */
export const DEFAULT_DEV_SERVER_PORT = 3000;

const DEFAULT_AGENT_SHUTDOWN_GRACE = '60s';
const DEFAULT_AGENT_CHECKPOINT_PUSH_INTERVAL = '5s';

/**
 * Reads the agent's environment. Throws ConfigError listing every bad variable, so a runtime
 * that misconfigures the agent learns all of it from one failed start.
 */
export function loadAgentConfig(env: Env): AgentConfig {
  const problems: InvalidArgumentError[] = [];
  const value = (name: string): string | undefined => {
    const raw = env[name];
    return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  };
  const required = (name: string, what: string): string | undefined => {
    const raw = value(name);
    if (raw === undefined)
      problems.push(new InvalidArgumentError(`${name} is required (${what})`, name));
    return raw;
  };
  const check = <T>(read: () => T): T | undefined => {
    try {
      return read();
    } catch (error) {
      if (error instanceof InvalidArgumentError) {
        problems.push(error);
        return undefined;
      }
      throw error;
    }
  };
  const queueUrl = (name: string): string | undefined => {
    const raw = required(name, 'the SQS queue URL');
    if (raw === undefined) return undefined;
    return check(() => {
      const url = URL.parse(raw);
      if (url === null || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
        throw new InvalidArgumentError(
          `${name} must be an http(s) SQS queue URL; got "${raw}"`,
          name,
        );
      }
      return raw;
    });
  };

  const containerIdRaw = required('CONTAINER_ID', 'clientId.projectId.userId');
  const key =
    containerIdRaw === undefined
      ? undefined
      : check(() => parseContainerId(containerIdRaw, 'CONTAINER_ID'));
  const workspaceRaw = required('WORKSPACE_PATH', 'where the git checkout lives');
  const repoUrl = required('BERTH_REPO_URL', "the project's git remote");

  const generationRaw = value('BERTH_GENERATION');
  const generation =
    generationRaw === undefined
      ? undefined
      : check(() => {
          const n = Number(generationRaw);
          if (!/^\d+$/.test(generationRaw) || !Number.isSafeInteger(n) || n < 1) {
            throw new InvalidArgumentError(
              `BERTH_GENERATION must be a whole number from 1; got "${generationRaw}"`,
              'BERTH_GENERATION',
            );
          }
          return n;
        });

  const inputQueueUrl = queueUrl('BERTH_INPUT_QUEUE_URL');
  const outputQueueUrl = queueUrl('BERTH_OUTPUT_QUEUE_URL');

  const shutdownGraceMs = check(() => {
    const ms = parseDuration(
      value('BERTH_SHUTDOWN_GRACE') ?? DEFAULT_AGENT_SHUTDOWN_GRACE,
      'BERTH_SHUTDOWN_GRACE',
    );
    if (ms <= 0)
      throw new InvalidArgumentError(
        'BERTH_SHUTDOWN_GRACE must be greater than zero',
        'BERTH_SHUTDOWN_GRACE',
      );
    return ms;
  });

  const agentReportsUrl =
    value('BERTH_AGENT_REPORTS_URL') === undefined
      ? undefined
      : queueUrl('BERTH_AGENT_REPORTS_URL');
  const checkpointPushIntervalMs = check(() =>
    parseDuration(
      value('BERTH_CHECKPOINT_PUSH_INTERVAL') ?? DEFAULT_AGENT_CHECKPOINT_PUSH_INTERVAL,
      'BERTH_CHECKPOINT_PUSH_INTERVAL',
    ),
  );

  const devServerPortRaw = value('BERTH_DEV_SERVER_PORT');
  const devServerPort =
    devServerPortRaw === undefined
      ? DEFAULT_DEV_SERVER_PORT
      : check(() => {
          const n = Number(devServerPortRaw);
          if (!/^\d+$/.test(devServerPortRaw) || n < 1 || n > 65535) {
            throw new InvalidArgumentError(
              `BERTH_DEV_SERVER_PORT must be a port number from 1 to 65535; got "${devServerPortRaw}"`,
              'BERTH_DEV_SERVER_PORT',
            );
          }
          return n;
        });
  const devServerThread = value('BERTH_DEV_SERVER_THREAD');
  if (devServerThread !== undefined && !new RegExp(OPAQUE_ID_PATTERN).test(devServerThread)) {
    problems.push(
      new InvalidArgumentError(
        `BERTH_DEV_SERVER_THREAD must be a threadId (1-128 characters of A-Z a-z 0-9 . _ : -); got "${devServerThread}"`,
        'BERTH_DEV_SERVER_THREAD',
      ),
    );
  }

  const devServerReadyPath = value('BERTH_DEV_SERVER_READY_PATH') ?? DEFAULT_DEV_SERVER_READY_PATH;
  if (!DEV_SERVER_READY_PATH_PATTERN.test(devServerReadyPath)) {
    problems.push(
      new InvalidArgumentError(
        `BERTH_DEV_SERVER_READY_PATH must be a path starting with a single "/" (printable ASCII, no spaces or "#", at most 1024 characters); got "${devServerReadyPath}"`,
        'BERTH_DEV_SERVER_READY_PATH',
      ),
    );
  }

  const logLevel = value('BERTH_LOG_LEVEL') ?? 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    problems.push(
      new InvalidArgumentError(
        `BERTH_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}; got "${logLevel}"`,
        'BERTH_LOG_LEVEL',
      ),
    );
  }

  if (
    problems.length > 0 ||
    devServerPort === undefined ||
    containerIdRaw === undefined ||
    key === undefined ||
    workspaceRaw === undefined ||
    repoUrl === undefined ||
    inputQueueUrl === undefined ||
    outputQueueUrl === undefined ||
    shutdownGraceMs === undefined ||
    checkpointPushIntervalMs === undefined
  ) {
    throw new ConfigError(problems);
  }

  return {
    containerId: containerIdRaw,
    key,
    workspacePath: workspaceRaw,
    repoUrl,
    generation,
    inputQueueUrl,
    outputQueueUrl,
    workloadCommand: value('BERTH_WORKLOAD_COMMAND'),
    shutdownGraceMs,
    logLevel,
    agentReportsUrl,
    checkpointPushIntervalMs,
    // Not trimmed: a command is the user's, spaces and all (value() only decides whether it is set).
    devServerCommand:
      value('BERTH_DEV_SERVER_COMMAND') === undefined ? undefined : env.BERTH_DEV_SERVER_COMMAND,
    devServerPort,
    devServerThread,
    devServerReadyPath,
  };
}

/** The variable that makes an agent a warm-pool member: its control queue's URL. */
export const POOL_CONTROL_QUEUE_VARIABLE = 'BERTH_POOL_CONTROL_QUEUE_URL';

/** What the agent reads before it knows which container it is (docs/design.md, "The warm pool"). */
export interface AgentStartConfig {
  /** Started with a control queue and no container: it waits there for its identity. */
  poolMember: boolean;
  poolControlQueueUrl: string | undefined;
  /** The member's slot, only for logs. */
  poolSlot: string | undefined;
  /** BERTH_LOCAL_START_DELAY (local runtime only, for benchmarks); undefined: none. */
  localStartDelayMs: number | undefined;
  /** For the pool member's own logs, before the container's configuration is read. */
  logLevel: string;
}

/** Throws InvalidArgumentError naming BERTH_LOCAL_START_DELAY when it is not a duration. */
export function loadAgentStartConfig(env: Env): AgentStartConfig {
  const value = (name: string): string | undefined => {
    const raw = env[name];
    return raw === undefined || raw.trim() === '' ? undefined : raw.trim();
  };
  const poolControlQueueUrl = value(POOL_CONTROL_QUEUE_VARIABLE);
  const delay = value('BERTH_LOCAL_START_DELAY');
  return {
    poolMember: poolControlQueueUrl !== undefined && value('CONTAINER_ID') === undefined,
    poolControlQueueUrl,
    poolSlot: env.BERTH_POOL_SLOT,
    localStartDelayMs:
      delay === undefined ? undefined : parseDuration(delay, 'BERTH_LOCAL_START_DELAY'),
    logLevel: value('BERTH_LOG_LEVEL') ?? 'info',
  };
}

/** The variables through which the AWS SDK is configured from the environment. */
export const AWS_VARIABLES = [
  'AWS_REGION',
  'AWS_DEFAULT_REGION',
  'AWS_PROFILE',
  'AWS_ACCESS_KEY_ID',
  'AWS_ENDPOINT_URL',
  'AWS_ENDPOINT_URL_SQS',
  'AWS_ENDPOINT_URL_SNS',
] as const;

/**
 * What a client of berth (the CLI) reads besides the services' settings: these name a berth
 * to talk to, not how to run one, so they are not part of BerthConfig.
 */
export interface ClientConfig {
  /** BERTH_URL: discovery's address. */
  url: string | undefined;
  /** BERTH_TOKEN: the bearer token sent to discovery. */
  token: string | undefined;
  /** The AWS SDK's variables that are set (then the SDK, not a local stack, gives SQS/SNS). */
  awsVariablesSet: string[];
}

export function loadClientConfig(env: Env): ClientConfig {
  return {
    url: env.BERTH_URL?.trim() || undefined,
    token: env.BERTH_TOKEN || undefined,
    awsVariablesSet: AWS_VARIABLES.filter((name) => env[name]?.trim()),
  };
}

/**
 * BERTH_AWS_CALL_LOG and the deployed stack it is recorded against (BERTH_REHEARSAL_REGION,
 * falling back to AWS_REGION, and BERTH_REHEARSAL_ACCOUNT). Read only; the recorder checks
 * the region and the account (docs/design.md, "The rehearsal").
 */
export interface RehearsalTargetConfig {
  region: string;
  account: string | undefined;
}

export function loadRehearsalTarget(env: Env): RehearsalTargetConfig {
  return {
    region: env.BERTH_REHEARSAL_REGION ?? env.AWS_REGION ?? 'us-east-1',
    account: env.BERTH_REHEARSAL_ACCOUNT,
  };
}

/** The AWS call log's path; undefined when BERTH_AWS_CALL_LOG is unset (nothing recorded). */
export function loadAwsCallLogPath(env: Env): string | undefined {
  const path = env.BERTH_AWS_CALL_LOG;
  return path === undefined || path === '' ? undefined : path;
}
