import { createLogger, createMetrics, loadConfigOrExit, onShutdown } from '@berth/platform';
import { startWebhookService } from './service.ts';

const config = loadConfigOrExit('webhooks');
const log = createLogger('webhooks', config.logLevel);
const metrics = createMetrics('webhooks', { emf: config.emf });
const service = await startWebhookService({ config, log, metrics });

onShutdown(log, () => service.stop());
