import { createLogger, createMetrics, loadConfigOrExit, onShutdown, wire } from '@berth/platform';
import { randomBytes } from 'node:crypto';
import { buildGatewayApp } from './app.ts';

const config = loadConfigOrExit('preview-gateway');
const log = createLogger('preview-gateway', config.logLevel);
const metrics = createMetrics('preview-gateway', { emf: config.emf });
// It starts a stopped container when its preview is opened: the same find-or-start as discovery.
const wiring = await wire(config, { service: 'preview-gateway', log, metrics });

let authSecret = config.authSecret;
if (!authSecret) {
  // Without the shared secret no preview token minted by discovery could be verified.
  authSecret = randomBytes(32).toString('hex');
  log.warn('BERTH_AUTH_SECRET is not set: using a random secret, so no preview will open');
}

const app = await buildGatewayApp({
  preview: wiring.useCases.preview,
  store: wiring.deps.store,
  authSecret,
  domain: config.preview.domain,
  cookieTtlMs: config.preview.cookieTtlMs,
  secureCookies: config.preview.baseUrl.startsWith('https:'),
  cacheTtlMs: config.cacheTtlMs,
  idleTimeoutMs: config.idleTimeoutMs,
  registry: metrics.registry,
  logger: log,
});

await app.listen({ host: config.httpHost, port: config.preview.port });
log.info({ url: `http://${config.httpHost}:${config.preview.port}` }, 'preview gateway listening');

onShutdown(log, async () => {
  await app.close();
  wiring.close();
});
