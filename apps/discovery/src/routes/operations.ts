import type { EventPublisher, StateStore } from '@berth/domain';
import type { Registry } from 'prom-client';
import { errorBody } from '../errors.ts';
import type { DiscoveryServer } from './schemas.ts';

/** Health, readiness, metrics and the OpenAPI document: public, hidden from the document. */
export function registerOperationRoutes(
  app: DiscoveryServer,
  options: { store: StateStore; publisher: EventPublisher; registry: Registry },
) {
  const { store, publisher } = options;

  app.get('/healthz', { schema: { hide: true } }, () => Promise.resolve({ status: 'ok' }));

  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const checks = await Promise.allSettled([store.ping(), publisher.ping()]);
    const [storeCheck, busCheck] = checks;
    const status = {
      store: storeCheck?.status === 'fulfilled' ? 'ok' : 'unavailable',
      bus: busCheck?.status === 'fulfilled' ? 'ok' : 'unavailable',
    };
    if (checks.every((check) => check.status === 'fulfilled'))
      return { status: 'ready', checks: status };
    return reply
      .code(503)
      .send({ ...errorBody('unavailable', 'a dependency does not answer'), checks: status });
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    return reply.type(options.registry.contentType).send(await options.registry.metrics());
  });

  app.get('/docs', { schema: { hide: true } }, () => Promise.resolve(app.swagger()));
}
