import { startQueueConsumer } from '@berth/messaging';
import { createLogger, createMetrics, loadConfigOrExit, onShutdown, wire } from '@berth/platform';
import { Counter } from 'prom-client';
import { createCommandHandler } from './handler.ts';
import { createAgentReportHandler } from './reports.ts';

const config = loadConfigOrExit('session');
const log = createLogger('session', config.logLevel);
const metrics = createMetrics('session', { emf: config.emf });
// The session service's role may not stop tasks: its stops are carried out by the reaper.
const wiring = await wire(config, { service: 'session', log, metrics, mayStopTasks: false });

const handle = createCommandHandler({
  useCases: wiring.useCases,
  publisher: wiring.deps.publisher,
  clock: wiring.deps.clock,
  log,
});

const consumer = startQueueConsumer({
  sqs: wiring.clients.sqs,
  queueUrl: wiring.messaging.lifecycleCommandsUrl,
  batchSize: 10,
  concurrency: config.sessionConcurrency,
  visibilityTimeoutSeconds: 30,
  heartbeatIntervalSeconds: 10,
  handle,
  onError: (error: unknown) => log.error({ err: error }, 'consumer error'),
});
log.info({ queueUrl: wiring.messaging.lifecycleCommandsUrl }, 'session service consuming commands');

const reportsRefused = new Counter({
  name: 'berth_agent_reports_refused_total',
  help: 'Agent reports not acted on (not a report, malformed, or not matching the store or sender)',
  labelNames: ['reason'],
  registers: [metrics.registry],
});
const reports = startQueueConsumer({
  sqs: wiring.clients.sqs,
  queueUrl: wiring.messaging.agentReportsUrl,
  batchSize: 10,
  concurrency: config.sessionConcurrency,
  visibilityTimeoutSeconds: 30,
  heartbeatIntervalSeconds: 10,
  handle: createAgentReportHandler({
    useCases: wiring.useCases,
    store: wiring.deps.store,
    publisher: wiring.deps.publisher,
    clock: wiring.deps.clock,
    log,
    senderCheck: config.agentReportSenderCheck,
    refused: (reason) => {
      reportsRefused.inc({ reason });
      metrics.emf('AgentReportsRefused', 1, 'Count', { Reason: reason });
    },
  }),
  onError: (error: unknown) => log.error({ err: error }, 'agent reports consumer error'),
});
log.info(
  {
    queueUrl: wiring.messaging.agentReportsUrl,
    senderCheck: config.agentReportSenderCheck,
  },
  'session service consuming agent reports',
);

onShutdown(log, async () => {
  await Promise.all([consumer.stop(), reports.stop()]);
  wiring.close();
});
