import { InvalidArgumentError } from '@berth/domain';
import { DEFAULT_INFRA_CONFIG, resolveInfraConfig } from '../src/config.ts';
import { logRetention } from '../src/logging.ts';

describe('resolveInfraConfig', () => {
  test('defaults are the contract defaults', () => {
    const config = resolveInfraConfig({});
    expect(config.lifecycle).toEqual({
      idleTimeout: '20m',
      sweepInterval: '10m',
      shutdownGrace: '1m',
      sessionTtl: '2h',
      maxSessions: 10,
      policyIdleTimeoutMin: '1m',
      policyIdleTimeoutMax: '8h',
      expiryNotice: '5m',
    });
    expect(config.region).toBe('us-east-1');
    expect(config.alarms.maxLiveContainers).toBe(50);
    expect(config.network.natGateways).toBe(1);
    expect(config.pool).toEqual({ size: 0, maxAge: '1h' });
  });

  test('the pool per environment: from BERTH_POOL_SIZE / BERTH_POOL_MAX_AGE, the context wins', () => {
    const env = { BERTH_POOL_SIZE: '3', BERTH_POOL_MAX_AGE: '30m' };
    expect(resolveInfraConfig(env).pool).toEqual({ size: 3, maxAge: '30m' });
    expect(resolveInfraConfig(env, { pool: { size: 10 } }).pool).toEqual({
      size: 10,
      maxAge: '30m',
    });
  });

  test("the contract's variables and the seed's minute aliases shape the deployment", () => {
    const config = resolveInfraConfig({
      BERTH_SWEEP_INTERVAL: '15m',
      AUTO_SHUTDOWN_MINUTES: '30',
      BERTH_MAX_SESSIONS: '4',
      CDK_DEFAULT_REGION: 'eu-west-1',
      // Not lifecycle settings: a bad port on the machine that synthesizes changes nothing.
      BERTH_HTTP_PORT: 'not a port',
    });
    expect(config.lifecycle.sweepInterval).toBe('15m');
    expect(config.lifecycle.idleTimeout).toBe('30m');
    expect(config.lifecycle.maxSessions).toBe(4);
    expect(config.region).toBe('eu-west-1');
    expect(resolveInfraConfig({ CLEANUP_INTERVAL_MINUTES: '5' }).lifecycle.sweepInterval).toBe(
      '5m',
    );
  });

  test('the CDK context wins over the environment, as an object or as JSON text', () => {
    const env = { BERTH_SWEEP_INTERVAL: '15m' };
    expect(
      resolveInfraConfig(env, { lifecycle: { sweepInterval: '30m' } }).lifecycle.sweepInterval,
    ).toBe('30m');
    const fromText = resolveInfraConfig(
      env,
      '{"alarms":{"maxLiveContainers":80},"session":{"scaling":{"maxCount":9}}}',
    );
    expect(fromText.alarms.maxLiveContainers).toBe(80);
    expect(fromText.session.scaling).toEqual({
      ...DEFAULT_INFRA_CONFIG.session.scaling,
      maxCount: 9,
    });
    expect(fromText.lifecycle.sweepInterval).toBe('15m');
  });

  test.each([
    [{ alarms: { maxLiveContainer: 50 } }, 'alarms.maxLiveContainer', /unknown setting/],
    [{ lifecycle: { sweepInterval: '90s' } }, 'lifecycle.sweepInterval', /whole minutes/],
    [
      { lifecycle: { idleTimeout: '20 minutes' } },
      'lifecycle.idleTimeout',
      /whole number followed by/,
    ],
    [{ lifecycle: { shutdownGrace: '5m' } }, 'lifecycle.shutdownGrace', /at most 120s/],
    [{ session: { cpu: 256, memoryMiB: 4096 } }, 'session.memoryMiB', /not a Fargate size/],
    [{ discovery: { internetFacing: true } }, 'discovery.certificateArn', /plain HTTP/],
    [{ discovery: { ingressCidrs: ['10.0.0.0'] } }, 'discovery.ingressCidrs', /not an IPv4 CIDR/],
    [
      { taskWatcher: { scaling: { minCount: 0 } } },
      'taskWatcher.scaling.minCount',
      /from 1 to 100/,
    ],
    [{ alarms: { periodMinutes: 0 } }, 'alarms.periodMinutes', /from 1 to 1440/],
    [{ region: 'mars-1' }, 'region', /AWS region/],
    [{ network: { natGateways: 3 } }, 'network.natGateways', /from 1 to 2/],
    [{ pool: { size: 101 } }, 'pool.size', /from 0 to 100/],
    [{ pool: { maxAge: 'soon' } }, 'pool.maxAge', /whole number followed by/],
  ])('refuses %j, naming %s', (context, field, message) => {
    let caught: unknown;
    try {
      resolveInfraConfig({}, context);
    } catch (error) {
      caught = error;
    }
    expect(caught).toBeInstanceOf(InvalidArgumentError);
    expect((caught as InvalidArgumentError).field).toBe(field);
    expect((caught as Error).message).toMatch(message);
  });

  test('a bad contract variable is refused as the services would refuse it', () => {
    expect(() => resolveInfraConfig({ BERTH_IDLE_TIMEOUT: 'soon' })).toThrow(/BERTH_IDLE_TIMEOUT/);
  });

  test('the dev server: port 3000 by default, the command from BERTH_DEV_SERVER_COMMAND or the context, no privileged port', () => {
    expect(resolveInfraConfig({}).workspace).toMatchObject({
      devServerPort: 3000,
      devServerCommand: undefined,
    });
    expect(
      resolveInfraConfig({ BERTH_DEV_SERVER_COMMAND: 'npm run dev' }).workspace.devServerCommand,
    ).toBe('npm run dev');
    expect(
      resolveInfraConfig({}, { workspace: { devServerCommand: 'astro dev', devServerPort: 4321 } })
        .workspace,
    ).toMatchObject({ devServerCommand: 'astro dev', devServerPort: 4321 });
    expect(() => resolveInfraConfig({}, { workspace: { devServerPort: 80 } })).toThrow(
      /workspace\.devServerPort must be a whole number from 1024 to 65535/,
    );
  });

  test("the dev server's ready path: the agent's default unless set, from BERTH_DEV_SERVER_READY_PATH or the context, checked as the agent checks it", () => {
    expect(resolveInfraConfig({}).workspace.devServerReadyPath).toBeUndefined();
    expect(
      resolveInfraConfig({ BERTH_DEV_SERVER_READY_PATH: '/health' }).workspace.devServerReadyPath,
    ).toBe('/health');
    expect(
      resolveInfraConfig({}, { workspace: { devServerReadyPath: '/ready?x=1' } }).workspace
        .devServerReadyPath,
    ).toBe('/ready?x=1');
    expect(() =>
      resolveInfraConfig({}, { workspace: { devServerReadyPath: '//elsewhere/' } }),
    ).toThrow(/workspace\.devServerReadyPath must be a path starting with a single "\/"/);
    expect(() => resolveInfraConfig({ BERTH_DEV_SERVER_READY_PATH: 'health' })).toThrow(
      /workspace\.devServerReadyPath/,
    );
  });

  test('log retention accepts only what CloudWatch Logs does', () => {
    expect(logRetention(30)).toBe(30);
    expect(() => logRetention(31)).toThrow(/logRetentionDays must be one of/);
    expect(() => logRetention(9999)).toThrow(/logRetentionDays/);
  });
});
