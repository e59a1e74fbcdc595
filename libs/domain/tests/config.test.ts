import {
  ConfigError,
  InvalidArgumentError,
  loadAgentStartConfig,
  loadClientConfig,
  loadConfig,
  type Env,
} from '../src/index.ts';

const SECRET = 's'.repeat(32);

function problemsOf(env: Env): { field: string | undefined; message: string }[] {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).problems.map((p) => ({ field: p.field, message: p.message }));
  }
  throw new Error('loadConfig accepted the environment');
}

describe('loadConfig defaults', () => {
  it('uses the contract defaults for an empty environment', () => {
    // Act
    const config = loadConfig({});

    // Assess
    expect(config).toMatchObject({
      idleTimeoutMs: 20 * 60_000,
      sweepIntervalMs: 10 * 60_000,
      maxSessions: 10,
      sessionTtlMs: 2 * 3_600_000,
      shutdownGraceMs: 60_000,
      runtime: 'local',
      workloadCommand: undefined,
      dataDir: './.berth',
      httpPort: 8080,
      sqsPort: 4566,
      dynamodbPort: 8000,
      authSecret: undefined,
      containerTable: 'berth-containers',
      sessionTable: 'berth-sessions',
      awsEndpointUrl: undefined,
      poolSize: 0,
      poolMaxAgeMs: 3_600_000,
      httpHost: '127.0.0.1',
      sessionConcurrency: 16,
      agentReportSenderCheck: 'off',
      emf: false,
      lifecycleTopicArn: undefined,
      taskEventsQueueUrl: undefined,
      agentTaskDefinitionFile: undefined,
      agentEntry: undefined,
    });
  });

  it('treats blank values as unset', () => {
    expect(loadConfig({ BERTH_MAX_SESSIONS: '  ', BERTH_IDLE_TIMEOUT: '' })).toMatchObject({
      maxSessions: 10,
      idleTimeoutMs: 20 * 60_000,
    });
  });
});

describe('loadConfig variables', () => {
  it('reads every variable of the contract', () => {
    // Prepare
    const env: Env = {
      BERTH_IDLE_TIMEOUT: '5m',
      BERTH_SWEEP_INTERVAL: '30s',
      BERTH_MAX_SESSIONS: '3',
      BERTH_SESSION_TTL: '1h',
      BERTH_SHUTDOWN_GRACE: '15s',
      BERTH_RUNTIME: 'ecs',
      BERTH_ECS_CLUSTER: 'cluster',
      BERTH_ECS_TASK_DEFINITION: 'workspace:3',
      BERTH_WORKLOAD_COMMAND: 'cat',
      BERTH_DATA_DIR: '/var/berth',
      BERTH_HTTP_PORT: '9090',
      BERTH_SQS_PORT: '9324',
      BERTH_DYNAMODB_PORT: '8001',
      BERTH_AUTH_SECRET: SECRET,
      CONTAINER_TABLE: 'c-table',
      SESSION_TABLE: 's-table',
      AWS_REGION: 'eu-west-1',
      AWS_ENDPOINT_URL: 'http://127.0.0.1:4566',
      BERTH_POOL_SIZE: '5',
      BERTH_POOL_MAX_AGE: '30m',
      BERTH_HTTP_HOST: '0.0.0.0',
      BERTH_SESSION_CONCURRENCY: '16',
      BERTH_AGENT_REPORT_SENDER_CHECK: 'task',
      BERTH_EMF: 'true',
      BERTH_LIFECYCLE_TOPIC_ARN: 'arn:aws:sns:eu-west-1:123456789012:berth-lifecycle',
      BERTH_TASK_EVENTS_QUEUE_URL: 'http://127.0.0.1:4566/000000000000/berth-task-events',
      BERTH_AGENT_TASK_DEFINITION: '/etc/berth/agent-task.json',
      BERTH_AGENT_ENTRY: '/opt/agent/main.js',
    };

    // Act
    const config = loadConfig(env);

    // Assess
    expect(config).toMatchObject({
      idleTimeoutMs: 300_000,
      sweepIntervalMs: 30_000,
      maxSessions: 3,
      sessionTtlMs: 3_600_000,
      shutdownGraceMs: 15_000,
      runtime: 'ecs',
      workloadCommand: 'cat',
      dataDir: '/var/berth',
      httpPort: 9090,
      sqsPort: 9324,
      dynamodbPort: 8001,
      authSecret: SECRET,
      containerTable: 'c-table',
      sessionTable: 's-table',
      awsRegion: 'eu-west-1',
      awsEndpointUrl: 'http://127.0.0.1:4566',
      poolSize: 5,
      poolMaxAgeMs: 1_800_000,
      httpHost: '0.0.0.0',
      sessionConcurrency: 16,
      agentReportSenderCheck: 'task',
      emf: true,
      lifecycleTopicArn: 'arn:aws:sns:eu-west-1:123456789012:berth-lifecycle',
      taskEventsQueueUrl: 'http://127.0.0.1:4566/000000000000/berth-task-events',
      agentTaskDefinitionFile: '/etc/berth/agent-task.json',
      agentEntry: '/opt/agent/main.js',
      ecs: expect.objectContaining({
        cluster: 'cluster',
        taskDefinition: 'workspace:3',
      }) as unknown,
    });
  });
});

describe('loadConfig: the console', () => {
  it('has no log link by default, takes an http(s) template and refuses anything else, naming it', () => {
    expect(loadConfig({}).consoleLogUrl).toBeUndefined();
    const template = 'https://logs.example.com/{region}/{taskId}?c={containerId}&g={generation}';
    expect(loadConfig({ BERTH_CONSOLE_LOG_URL: template }).consoleLogUrl).toBe(template);
    expect(() => loadConfig({ BERTH_CONSOLE_LOG_URL: 'javascript:alert(1)' })).toThrow(
      /BERTH_CONSOLE_LOG_URL must be an http\(s\) URL template/,
    );
    expect(() => loadConfig({ BERTH_CONSOLE_LOG_URL: 'https://x/"><script>' })).toThrow(
      /BERTH_CONSOLE_LOG_URL/,
    );
  });
});

describe('loadConfig: the preview gateway', () => {
  it('defaults to port 8081, a local base URL, the path form and short-lived tokens', () => {
    expect(loadConfig({}).preview).toEqual({
      port: 8081,
      baseUrl: 'http://127.0.0.1:8081',
      domain: undefined,
      tokenTtlMs: 5 * 60_000,
      cookieTtlMs: 8 * 3_600_000,
    });
  });

  it('reads its variables, the base URL following the port unless set', () => {
    expect(loadConfig({ BERTH_PREVIEW_PORT: '9191' }).preview.baseUrl).toBe(
      'http://127.0.0.1:9191',
    );
    expect(
      loadConfig({
        BERTH_PREVIEW_URL: 'https://preview.example.com/',
        BERTH_PREVIEW_DOMAIN: 'Preview.Example.com',
        BERTH_PREVIEW_TOKEN_TTL: '2m',
        BERTH_PREVIEW_COOKIE_TTL: '1h',
      }).preview,
    ).toEqual({
      port: 8081,
      baseUrl: 'https://preview.example.com',
      domain: 'preview.example.com',
      tokenTtlMs: 120_000,
      cookieTtlMs: 3_600_000,
    });
  });

  it('names a bad base URL and a bad domain', () => {
    expect(() => loadConfig({ BERTH_PREVIEW_URL: 'ftp://x' })).toThrow(/BERTH_PREVIEW_URL/);
    expect(() => loadConfig({ BERTH_PREVIEW_URL: 'http://x/?token=1' })).toThrow(
      /BERTH_PREVIEW_URL must be an http\(s\) URL without query/,
    );
    expect(() => loadConfig({ BERTH_PREVIEW_DOMAIN: 'not a domain' })).toThrow(
      /BERTH_PREVIEW_DOMAIN must be a DNS name/,
    );
  });
});

describe('loadConfig minute aliases', () => {
  it.each([
    ['AUTO_SHUTDOWN_MINUTES', 'idleTimeoutMs'],
    ['IDLE_THRESHOLD_MINUTES', 'idleTimeoutMs'],
    ['CLEANUP_INTERVAL_MINUTES', 'sweepIntervalMs'],
  ] as const)('reads %s as minutes', (alias, key) => {
    expect(loadConfig({ [alias]: '7' })[key]).toBe(7 * 60_000);
  });

  it('accepts fractions of a minute', () => {
    expect(loadConfig({ AUTO_SHUTDOWN_MINUTES: '0.5' }).idleTimeoutMs).toBe(30_000);
  });

  it('prefers BERTH_IDLE_TIMEOUT over both aliases', () => {
    const config = loadConfig({
      BERTH_IDLE_TIMEOUT: '3m',
      AUTO_SHUTDOWN_MINUTES: '7',
      IDLE_THRESHOLD_MINUTES: '9',
    });
    expect(config.idleTimeoutMs).toBe(180_000);
  });

  it('prefers AUTO_SHUTDOWN_MINUTES over IDLE_THRESHOLD_MINUTES', () => {
    expect(
      loadConfig({ AUTO_SHUTDOWN_MINUTES: '7', IDLE_THRESHOLD_MINUTES: '9' }).idleTimeoutMs,
    ).toBe(420_000);
  });

  it('prefers BERTH_SWEEP_INTERVAL over CLEANUP_INTERVAL_MINUTES', () => {
    expect(
      loadConfig({ BERTH_SWEEP_INTERVAL: '1m', CLEANUP_INTERVAL_MINUTES: '30' }).sweepIntervalMs,
    ).toBe(60_000);
  });

  it.each(['0', '-3', 'ten', '5m'])('refuses %j minutes, naming the alias', (minutes) => {
    expect(problemsOf({ IDLE_THRESHOLD_MINUTES: minutes })).toEqual([
      expect.objectContaining({ field: 'IDLE_THRESHOLD_MINUTES' }),
    ]);
  });
});

describe('loadConfig problems', () => {
  it('lists every problem at once', () => {
    // Prepare
    const env: Env = {
      BERTH_IDLE_TIMEOUT: '20 minutes',
      CLEANUP_INTERVAL_MINUTES: 'soon',
      BERTH_MAX_SESSIONS: '0',
      BERTH_SESSION_TTL: '0s',
      BERTH_SHUTDOWN_GRACE: '1.5s',
      BERTH_RUNTIME: 'kubernetes',
      BERTH_HTTP_PORT: '70000',
      BERTH_SQS_PORT: 'x',
      BERTH_DYNAMODB_PORT: '-1',
      BERTH_AUTH_SECRET: 'short',
      CONTAINER_TABLE: 'a b',
      SESSION_TABLE: 'x',
      BERTH_LOG_LEVEL: 'loud',
      BERTH_POOL_SIZE: '101',
      BERTH_POOL_MAX_AGE: '0s',
      BERTH_SESSION_CONCURRENCY: '0',
    };

    // Act
    const fields = problemsOf(env).map((p) => p.field);

    // Assess
    expect(fields.sort()).toEqual(
      [
        'BERTH_IDLE_TIMEOUT',
        'CLEANUP_INTERVAL_MINUTES',
        'BERTH_MAX_SESSIONS',
        'BERTH_SESSION_TTL',
        'BERTH_SHUTDOWN_GRACE',
        'BERTH_RUNTIME',
        'BERTH_HTTP_PORT',
        'BERTH_SQS_PORT',
        'BERTH_DYNAMODB_PORT',
        'BERTH_AUTH_SECRET',
        'CONTAINER_TABLE',
        'SESSION_TABLE',
        'BERTH_LOG_LEVEL',
        'BERTH_POOL_SIZE',
        'BERTH_POOL_MAX_AGE',
        'BERTH_SESSION_CONCURRENCY',
      ].sort(),
    );
  });

  it('names each problem in the message and is an InvalidArgumentError', () => {
    // Act
    let caught: unknown;
    try {
      loadConfig({ BERTH_MAX_SESSIONS: 'many', BERTH_SESSION_TTL: 'forever' });
    } catch (error) {
      caught = error;
    }

    // Assess
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    const error = caught as ConfigError;
    expect(error.field).toBe('BERTH_MAX_SESSIONS');
    expect(error.message).toContain('BERTH_MAX_SESSIONS');
    expect(error.message).toContain('BERTH_SESSION_TTL');
  });

  it('requires the cluster and task definition with the ecs runtime', () => {
    expect(problemsOf({ BERTH_RUNTIME: 'ecs' }).map((p) => p.field)).toEqual([
      'BERTH_ECS_CLUSTER',
      'BERTH_ECS_TASK_DEFINITION',
    ]);
  });

  it('never repeats the secret in a problem', () => {
    const secret = 'hunter2-not-long-enough';
    const problems = problemsOf({ BERTH_AUTH_SECRET: secret });
    expect(problems).toHaveLength(1);
    expect(problems[0]?.message).not.toContain(secret);
  });
});

describe('the variables read outside the services', () => {
  it("reads the CLI's BERTH_URL, BERTH_TOKEN and which AWS variables are set", () => {
    expect(
      loadClientConfig({
        BERTH_URL: ' https://berth.example.com ',
        BERTH_TOKEN: 'tok',
        AWS_PROFILE: 'prod',
        AWS_REGION: ' ',
      }),
    ).toEqual({ url: 'https://berth.example.com', token: 'tok', awsVariablesSet: ['AWS_PROFILE'] });
    expect(loadClientConfig({})).toEqual({
      url: undefined,
      token: undefined,
      awsVariablesSet: [],
    });
  });

  it('makes an agent a pool member only with a control queue and no container', () => {
    const queue = { BERTH_POOL_CONTROL_QUEUE_URL: 'http://q/1', BERTH_POOL_SLOT: '3' };
    expect(loadAgentStartConfig(queue)).toMatchObject({
      poolMember: true,
      poolControlQueueUrl: 'http://q/1',
      poolSlot: '3',
    });
    expect(loadAgentStartConfig({ ...queue, CONTAINER_ID: 'a.b.c' }).poolMember).toBe(false);
    expect(loadAgentStartConfig({}).poolMember).toBe(false);
  });

  it("reads the local runtime's start delay and names it when it is not a duration", () => {
    expect(loadAgentStartConfig({ BERTH_LOCAL_START_DELAY: '2s' }).localStartDelayMs).toBe(2000);
    expect(loadAgentStartConfig({}).localStartDelayMs).toBeUndefined();
    expect(() => loadAgentStartConfig({ BERTH_LOCAL_START_DELAY: 'soon' })).toThrow(
      /BERTH_LOCAL_START_DELAY/,
    );
  });
});
