import { createLogger, createMetrics, loadConfigOrExit, onShutdown, wire } from '@berth/platform';
import { DISCOVERY_SUBSCRIPTION_PREFIX, deleteAbandonedSubscriptions } from '@berth/messaging';
import { emitGauges } from './gauges.ts';
import { Scheduler } from './scheduler.ts';

const config = loadConfigOrExit('reaper');
const log = createLogger('reaper', config.logLevel);
const metrics = createMetrics('reaper', { emf: config.emf });
const wiring = await wire(config, { service: 'reaper', log, metrics });
const reaper = wiring.useCases.reaper;

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
// Gauges for the dashboard and the "too many live containers" alarm (gauges.ts).
scheduler.every('gauges', config.gaugeIntervalMs, () => emitGauges(wiring.deps.store, metrics), {
  runAtStart: true,
});
log.info(
  {
    tickMs: config.reaperTickMs,
    gaugeMs: config.gaugeIntervalMs,
    sweepMs: config.sweepIntervalMs,
    idleTimeoutMs: config.idleTimeoutMs,
  },
  'reaper running',
);

onShutdown(log, async () => {
  await scheduler.stop();
  wiring.close();
});
