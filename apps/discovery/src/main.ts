import {
  createLogger,
  createMetrics,
  loadConfigOrExit,
  onShutdown,
  webhookSubscriptions,
  wire,
} from '@berth/platform';
import { randomBytes } from 'node:crypto';
import { buildDiscoveryApp } from './app.ts';
import { ContainerCache } from './cache.ts';
import { LifecycleFeed } from './console/feed.ts';
import { followInvalidations } from './invalidation.ts';

const config = loadConfigOrExit('discovery');
const log = createLogger('discovery', config.logLevel);
const metrics = createMetrics('discovery', { emf: config.emf });
const wiring = await wire(config, { service: 'discovery', log, metrics });

let authSecret = config.authSecret;
if (!authSecret) {
  // Without a configured secret no token can be verified that anyone else could mint.
  authSecret = randomBytes(32).toString('hex');
  log.warn('BERTH_AUTH_SECRET is not set: using a random secret, so no token will be accepted');
}

const cache = new ContainerCache({ ttlMs: config.cacheTtlMs });
// Followed even with the cache off: the console's live updates come from the same queue.
const feed = new LifecycleFeed();
const invalidations = await followInvalidations(wiring, cache, log, feed);

const app = await buildDiscoveryApp({
  cache,
  feed,
  useCases: wiring.useCases,
  history: wiring.history,
  store: wiring.deps.store,
  publisher: wiring.deps.publisher,
  authSecret,
  cacheTtlMs: config.cacheTtlMs,
  rateLimitPerMinute: config.rateLimitPerMinute,
  registry: metrics.registry,
  logger: log,
  webhooks: webhookSubscriptions(config, wiring),
  preview: config.preview,
  ...(config.consoleLogUrl ? { consoleLogUrl: config.consoleLogUrl } : {}),
});

await app.listen({ host: config.httpHost, port: config.httpPort });
log.info({ url: `http://${config.httpHost}:${config.httpPort}` }, 'discovery listening');

onShutdown(log, async () => {
  await app.close();
  await invalidations?.close();
  wiring.close();
});
