/**
 * Issue 11: every metric a dashboard widget or an alarm of the synthesized app reads is emitted
 * by some service. The services run on the local stack with BERTH_EMF=true through a container's
 * whole life (created, reused, sessions, idle stop); their captured stdout is the evidence.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  MetricsNotProvenError,
  parseEmfLines,
  proveDashboardMetrics,
  readRequiredMetrics,
} from '../src/metrics-proof/index.ts';
import { synthesizeApp } from '../src/synth.ts';
import type { RunningStack } from '../src/stack/harness.ts';
import {
  connect,
  eventually,
  http,
  startStackRetrying,
  type StackClients,
} from './stack-helpers.ts';

let assemblyDir: string;

beforeAll(async () => {
  assemblyDir = mkdtempSync(join(tmpdir(), 'berth-metrics-proof-'));
  await synthesizeApp(assemblyDir);
  // A whole-app synth (cdk-nag included) takes minutes on a loaded two-core machine.
}, 600_000);

afterAll(() => {
  rmSync(assemblyDir, { recursive: true, force: true });
});

/** An EMF line as the services write it. */
function emfLine(name: string, value: number, dimensions: Record<string, string> = {}): string {
  return JSON.stringify({
    _aws: {
      Timestamp: 0,
      CloudWatchMetrics: [
        { Namespace: 'Berth', Dimensions: [Object.keys(dimensions)], Metrics: [{ Name: name }] },
      ],
    },
    ...dimensions,
    [name]: value,
  });
}

describe('the checker', () => {
  let logDir: string;
  beforeEach(() => {
    logDir = mkdtempSync(join(tmpdir(), 'berth-metrics-logs-'));
  });
  afterEach(() => rmSync(logDir, { recursive: true, force: true }));

  /** One log holding exactly the metrics the assembly requires, minus `leaveOut`. */
  function logOfEverythingBut(leaveOut: (name: string, dims: Record<string, string>) => boolean) {
    const lines = readRequiredMetrics(assemblyDir)
      .filter((metric) => metric.namespace === 'Berth')
      .filter((metric) => !leaveOut(metric.metricName, metric.dimensions))
      .map((metric) => emfLine(metric.metricName, 1, metric.dimensions));
    const file = join(logDir, 'reaper.log');
    writeFileSync(file, ['{"level":30,"msg":"not a metric"}', ...lines, 'plain text'].join('\n'));
    return file;
  }

  it('reads every widget and alarm of the assembly, AWS namespaces apart', () => {
    const required = readRequiredMetrics(assemblyDir);
    const berth = required.filter((metric) => metric.namespace === 'Berth');
    expect(berth.map((metric) => metric.metricName)).toEqual(
      expect.arrayContaining([
        'ContainersByStatus',
        'SessionsPerContainer',
        'ContainerLifetimeSeconds',
        'ReaperErrors',
        'WatcherErrors',
      ]),
    );
    const live = berth.find(
      (metric) =>
        metric.metricName === 'ContainersByStatus' && metric.dimensions['Status'] === 'running',
    );
    expect(live?.readers).toEqual(
      expect.arrayContaining([
        'alarm berth-LiveContainers',
        'dashboard berth, widget "Live containers"',
      ]),
    );
    expect(required.some((metric) => metric.namespace === 'AWS/SQS')).toBe(true);
  });

  it('passes when every required metric and dimension set appears', async () => {
    const proof = await proveDashboardMetrics({
      assemblyDir,
      logFiles: [logOfEverythingBut(() => false)],
    });
    expect(proof.required.length).toBeGreaterThan(10);
    expect(proof.providedByAws.every((metric) => metric.namespace.startsWith('AWS/'))).toBe(true);
  });

  it('fails naming the metric, its dimension set and every widget and alarm that reads it', async () => {
    const file = logOfEverythingBut(
      (name, dims) => name === 'SessionsPerContainer' || dims['Status'] === 'terminating',
    );
    const proving = proveDashboardMetrics({ assemblyDir, logFiles: [file] });
    await expect(proving).rejects.toThrow(MetricsNotProvenError);
    await expect(proving).rejects.toThrow(
      /2 metric\(s\)[\s\S]*Berth\/ContainersByStatus\{Status=terminating\}, read by alarm berth-LiveContainers; dashboard berth, widget "Containers by status"; dashboard berth, widget "Live containers"[\s\S]*Berth\/SessionsPerContainer\{\}, read by dashboard berth, widget "Sessions per container"/,
    );
  });

  it('a metric emitted with another dimension set does not count (CloudWatch files it apart)', async () => {
    const file = logOfEverythingBut((name) => name === 'ReaperErrors');
    writeFileSync(
      file,
      `${readFileSync(file, 'utf8')}\n${emfLine('ReaperErrors', 0, { Service: 'reaper' })}\n`,
    );
    await expect(proveDashboardMetrics({ assemblyDir, logFiles: [file] })).rejects.toThrow(
      /Berth\/ReaperErrors\{\}, read by alarm berth-ReaperErrors/,
    );
    expect(parseEmfLines(emfLine('ReaperErrors', 0, { Service: 'reaper' }), 'x')).toEqual([
      {
        namespace: 'Berth',
        metricName: 'ReaperErrors',
        dimensions: { Service: 'reaper' },
        source: 'x',
      },
    ]);
  });

  it('refuses a directory that is no cloud assembly, saying so', async () => {
    await expect(proveDashboardMetrics({ assemblyDir: logDir, logFiles: [] })).rejects.toThrow(
      /is not a synthesized cloud assembly \(no readable manifest\.json\)/,
    );
  });
});

describe('the services on the local stack emit every metric the dashboard and alarms read', () => {
  let stack: RunningStack;
  let clients: StackClients;

  beforeAll(async () => {
    stack = await startStackRetrying({
      BERTH_EMF: 'true',
      BERTH_IDLE_TIMEOUT: '3s',
      BERTH_REAPER_TICK: '500ms',
      BERTH_GAUGE_INTERVAL: '1s',
      BERTH_SWEEP_INTERVAL: '5s',
      BERTH_SHUTDOWN_GRACE: '10s',
      BERTH_EXPIRY_NOTICE: '4s',
    });
    clients = await connect(stack);
  }, 180_000);

  afterAll(async () => {
    await clients?.close();
    await stack?.stop();
  }, 120_000);

  it('a container created, reused, shared and stopped when idle: nothing on the dashboard stays empty', async () => {
    const key = { clientId: 'acme', projectId: 'metrics', userId: 'mia' };
    const containerId = 'acme.metrics.mia';
    const logFiles = (): string[] =>
      readdirSync(join(stack.dataDir, 'logs'))
        .filter((file) => file.endsWith('.log'))
        .map((file) => join(stack.dataDir, 'logs', file));
    const emitted = (metricName: string): boolean =>
      logFiles().some((file) =>
        parseEmfLines(readFileSync(file, 'utf8'), file).some((m) => m.metricName === metricName),
      );

    // Created through discovery, then reused by a session (the session service's find-or-start).
    const discovered = await http(stack, 'POST', '/v1/containers/discover?wait=60', { body: key });
    expect(discovered.status).toBe(201);
    await clients.commands.sendCommand('session.assign', {
      ...key,
      sessionId: 'mia-1',
      threadId: 't1',
    });
    await clients.events.waitFor({ type: 'session.assigned', sessionId: 'mia-1' }, 90_000);
    // A gauge tick while the container runs.
    await eventually(
      'a SessionsPerContainer sample',
      () => Promise.resolve(emitted('SessionsPerContainer') ? true : undefined),
      30_000,
    );

    // Released, idle, stopped by the reaper, its stop recorded by the task watcher.
    await clients.commands.sendCommand('session.release', { sessionId: 'mia-1' });
    await clients.events.waitFor({ type: 'container.stopped', containerId }, 90_000);
    await eventually(
      'the lifetime and the watcher heartbeat',
      () =>
        Promise.resolve(
          emitted('ContainerLifetimeSeconds') && emitted('WatcherErrors') ? true : undefined,
        ),
      30_000,
    );

    // Policies (issue 17): each quota refuses one discover; a maxLifetime notices then stops.
    const quotas = {
      maxLiveContainersPerUser: { second: { projectId: 'b', userId: 'ann' } },
      maxLiveContainersPerClient: { second: { projectId: 'a', userId: 'bob' } },
      maxProjectsPerClient: { second: { projectId: 'b', userId: 'ann' } },
    };
    for (const [quota, { second }] of Object.entries(quotas)) {
      const clientId = `q-${quota.toLowerCase()}`;
      const policy = await http(stack, 'PUT', `/v1/policies/${clientId}`, {
        body: { [quota]: 1 },
      });
      expect(policy.status).toBe(200);
      const first = await http(stack, 'POST', '/v1/containers/discover', {
        body: { clientId, projectId: 'a', userId: 'ann' },
      });
      expect([201, 202]).toContain(first.status);
      const refused = await http(stack, 'POST', '/v1/containers/discover', {
        body: { clientId, ...second },
      });
      expect(refused).toMatchObject({
        status: 429,
        body: { error: { code: 'capacity_exceeded', field: quota } },
      });
    }
    expect(
      (
        await http(stack, 'PUT', '/v1/policies/lifeco', {
          body: { maxLifetime: '6s', idleTimeout: '10m' },
        })
      ).status,
    ).toBe(200);
    const living = await http(stack, 'POST', '/v1/containers/discover?wait=60', {
      body: { clientId: 'lifeco', projectId: 'a', userId: 'ann' },
    });
    expect(living.status).toBe(201);
    await clients.events.waitFor(
      { type: 'container.expiring', containerId: 'lifeco.a.ann' },
      90_000,
    );
    await clients.events.waitFor(
      { type: 'container.stopped', containerId: 'lifeco.a.ann' },
      90_000,
    );
    await eventually(
      'the policy metrics',
      () =>
        Promise.resolve(emitted('QuotaRefusals') && emitted('LifetimeExpiries') ? true : undefined),
      30_000,
    );

    const proof = await proveDashboardMetrics({ assemblyDir, logFiles: logFiles() });
    expect(proof.required.length).toBeGreaterThan(10);
    // Each emitter shows up in its own service's log.
    const sources = new Set(proof.emitted.map((metric) => metric.source.split('/').pop()));
    expect([...sources]).toEqual(
      expect.arrayContaining(['reaper.log', 'task-watcher.log', 'discovery.log']),
    );
  }, 420_000);
});
