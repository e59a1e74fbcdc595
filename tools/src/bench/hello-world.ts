/**
 * The discovery benchmark's baseline: Fastify's hello-world, in a process of its own like
 * the discovery service, on 127.0.0.1:BENCH_PORT.
 */
import Fastify from 'fastify';

const app = Fastify({ logger: false });
app.get('/', (_request, reply) => {
  void reply.send({ hello: 'world' });
});
await app.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT ?? '0') });

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => void app.close().then(() => process.exit(0)));
}
if (process.connected)
  process.once('disconnect', () => void app.close().then(() => process.exit(0)));
