import type { PoolTickReport } from '@berth/core';
import { createLogger, createMetrics, loadConfigOrExit, onShutdown, wire } from '@berth/platform';
import { DISCOVERY_SUBSCRIPTION_PREFIX, deleteAbandonedSubscriptions } from '@berth/messaging';
import { emitGauges } from './gauges.ts';
import { Scheduler } from './scheduler.ts';

const config = loadConfigOrExit('reaper');
const log = createLogger('reaper', config.logLevel);
const metrics = createMetrics('reaper', { emf: config.emf });
const wiring = await wire(config, { service: 'reaper', log, metrics, mayStartTasks: false });
const reaper = wiring.useCases.reaper;
/** The warm pool (docs/design.md, "The warm pool"); undefined when BERTH_POOL_SIZE is 0. */
const pool = wiring.useCases.pool;

const scheduler = new Scheduler(log, () => metrics.emf('ReaperErrors', 1));
// The idle check is one query of the sparse idle index: cheap enough to run every tick, so
// a container stops within a tick of its idle timeout.
scheduler.every('idle', config.reaperTickMs, async () => {
  const result = await reaper.stopIdle();
  if (result.stopped > 0) log.info(result, 'idle containers stopping');
  const asked = await reaper.carryOutStops();
  if (asked > 0)
    log.info({ asked }, 'asked the runtime to stop tasks of containers on their way out');
});
scheduler.every(
  'sweep',
  config.sweepIntervalMs,
  async () => {
    log.info(await reaper.sweep(), 'sweep done');
    if (pool) {
      const controlQueues = await pool.retireControlQueues();
      if (controlQueues > 0) log.info({ controlQueues }, 'pool control queues deleted');
    }
    // Subscription queues of discovery replicas that died without closing them.
    const abandoned = await deleteAbandonedSubscriptions({
      sqs: wiring.clients.sqs,
      sns: wiring.clients.sns,
      prefix: DISCOVERY_SUBSCRIPTION_PREFIX,
      now: new Date(),
    });
    if (abandoned.length > 0)
      log.info({ queues: abandoned }, 'abandoned subscription queues deleted');
  },
  { runAtStart: true },
);
// The warm pool (docs/design.md, "The warm pool"): filled, aged and repaired on its own tick,
// so a slow RunTask never delays an idle stop.
let lastPoolReport: PoolTickReport | undefined;
if (pool) {
  scheduler.every(
    'pool',
    config.reaperTickMs,
    async () => {
      const report = await pool.tick();
      lastPoolReport = report;
      if (report.started > 0 || report.retired > 0 || report.handedOver > 0)
        log.info(report, 'pool tended');
    },
    { runAtStart: true },
  );
}
// Gauges for the dashboard and the "too many live containers" alarm (gauges.ts).
scheduler.every(
  'gauges',
  config.gaugeIntervalMs,
  async () => {
    await emitGauges(wiring.deps.store, metrics);
    // The pool's gauges (and its empty-pool alarm) from its last tick.
    if (lastPoolReport) metrics.core.poolGauges?.(lastPoolReport.members, lastPoolReport.free);
  },
  { runAtStart: true },
);
log.info(
  {
    tickMs: config.reaperTickMs,
    gaugeMs: config.gaugeIntervalMs,
    sweepMs: config.sweepIntervalMs,
    idleTimeoutMs: config.idleTimeoutMs,
    poolSize: config.poolSize,
  },
  'reaper running',
);

onShutdown(log, async () => {
  await scheduler.stop();
  wiring.close();
});
