import { startQueueConsumer } from '@berth/messaging';
import { createLogger, createMetrics, loadConfigOrExit, onShutdown, wire } from '@berth/platform';
import { createCommandHandler } from './handler.ts';

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

onShutdown(log, async () => {
  await consumer.stop();
  wiring.close();
});
