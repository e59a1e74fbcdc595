import { startQueueConsumer } from '@berth/messaging';
import { createLogger, createMetrics, loadConfigOrExit, onShutdown, wire } from '@berth/platform';
import { createTaskEventHandler } from './handler.ts';
import { createHistoryHandler } from './history.ts';

const config = loadConfigOrExit('task-watcher');
const log = createLogger('task-watcher', config.logLevel);
const metrics = createMetrics('task-watcher', { emf: config.emf });
const wiring = await wire(config, { service: 'task-watcher', log, metrics, mayStartTasks: false });

const handle = createTaskEventHandler(wiring.useCases, log, () => metrics.emf('WatcherErrors', 1));
const consumer = startQueueConsumer({
  sqs: wiring.clients.sqs,
  queueUrl: wiring.messaging.taskEventsUrl,
  batchSize: 10,
  concurrency: 4,
  visibilityTimeoutSeconds: 30,
  heartbeatIntervalSeconds: 10,
  handle,
  onError: (error: unknown) => log.error({ err: error }, 'consumer error'),
});

// The lifecycle history (issue 18): the topic's events through a queue of their own, so that
// publishing never waits on the history and a slow history write never holds a task event.
const historyConsumer = startQueueConsumer({
  sqs: wiring.clients.sqs,
  queueUrl: wiring.messaging.historyEventsUrl,
  batchSize: 10,
  concurrency: 4,
  visibilityTimeoutSeconds: 30,
  heartbeatIntervalSeconds: 10,
  handle: createHistoryHandler(wiring.history, log, () => metrics.emf('HistoryErrors', 1)),
  onError: (error: unknown) => log.error({ err: error }, 'history consumer error'),
});

// Reconciliation: records whose task is gone are closed, tasks without a record stopped.
const reconcileEveryMs = Math.min(config.sweepIntervalMs, 60_000);
let reconciling = false;
const timer = setInterval(() => {
  if (reconciling) return;
  reconciling = true;
  wiring.useCases.reaper
    .reconcile()
    .then((result) => {
      // A zero on every good round: the watcher-errors alarm evaluates data, not silence.
      metrics.emf('WatcherErrors', 0);
      if (result.lostRecords + result.orphanTasksStopped > 0)
        log.warn(result, 'reconciliation repaired records');
    })
    .catch((error: unknown) => {
      metrics.emf('WatcherErrors', 1);
      log.error({ err: error }, 'reconciliation failed');
    })
    .finally(() => {
      reconciling = false;
    });
}, reconcileEveryMs);
log.info(
  {
    queueUrl: wiring.messaging.taskEventsUrl,
    historyQueueUrl: wiring.messaging.historyEventsUrl,
    reconcileEveryMs,
  },
  'task watcher consuming task events and keeping the lifecycle history',
);

onShutdown(log, async () => {
  clearInterval(timer);
  await Promise.all([consumer.stop(), historyConsumer.stop()]);
  wiring.close();
});
