import type { Wiring } from '@berth/platform';
import { EventSubscription } from '@berth/messaging';
import { hostname } from 'node:os';
import type { ContainerCache } from './cache.ts';

const LEAVING = new Set(['container.terminating', 'container.stopped', 'container.failed']);

/**
 * Drops a container from this replica's cache as soon as the lifecycle topic says it is on
 * its way out, whichever replica or service stopped it; the cache TTL only bounds what an
 * event lost in transit could leave behind. Each replica has its own subscription queue.
 */
export async function followInvalidations(
  wiring: Wiring,
  cache: ContainerCache,
  log: { warn(o: object, m: string): void },
): Promise<{ close(): Promise<void> }> {
  const name = `berth-discovery-${hostname()
    .replace(/[^A-Za-z0-9_-]/g, '')
    .slice(0, 30)}-${process.pid}`;
  const subscription = await EventSubscription.open({
    sqs: wiring.clients.sqs,
    sns: wiring.clients.sns,
    topicArn: wiring.messaging.topicArn,
    name,
  });
  let open = true;
  const loop = (async () => {
    while (open) {
      try {
        const event = await subscription.next(5_000);
        if (event?.containerId && LEAVING.has(event.type)) cache.invalidate(event.containerId);
      } catch (error) {
        if (!open) return;
        log.warn({ err: error }, 'cache invalidation feed failed; relying on the cache TTL');
        await new Promise((resolve) => setTimeout(resolve, 1_000));
      }
    }
  })();
  return {
    async close() {
      open = false;
      await loop;
      await subscription.close();
    },
  };
}
