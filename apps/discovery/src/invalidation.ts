import type { Wiring } from '@berth/platform';
import {
  DISCOVERY_SUBSCRIPTION_PREFIX,
  EventSubscription,
  HEARTBEAT_INTERVAL_MS,
  SUBSCRIPTION_TAGS,
  renewHeartbeat,
} from '@berth/messaging';
import { hostname } from 'node:os';
import type { ContainerCache } from './cache.ts';
import type { LifecycleFeed } from './console/feed.ts';

const LEAVING = new Set(['container.terminating', 'container.stopped', 'container.failed']);

/**
 * Drops a container from this replica's cache as soon as the lifecycle topic says it is on
 * its way out, whichever replica or service stopped it; the cache TTL only bounds what an
 * event lost in transit could leave behind. Every event is also handed to `feed` (the
 * console's live updates), so the console needs no queue of its own. Each replica has its own subscription queue,
 * named outside the `berth-*` grants of workspace roles, tagged with its owner and a heartbeat
 * renewed every minute: the reaper deletes it once the heartbeat stops (the replica crashed).
 */
export async function followInvalidations(
  wiring: Wiring,
  cache: ContainerCache,
  log: { warn(o: object, m: string): void },
  feed?: LifecycleFeed,
): Promise<{ close(): Promise<void> }> {
  const owner = `${hostname()
    .replace(/[^A-Za-z0-9_-]/g, '')
    .slice(0, 30)}-${process.pid}`;
  const subscription = await EventSubscription.open({
    sqs: wiring.clients.sqs,
    sns: wiring.clients.sns,
    topicArn: wiring.messaging.topicArn,
    name: `${DISCOVERY_SUBSCRIPTION_PREFIX}${owner}`,
    tags: {
      [SUBSCRIPTION_TAGS.owner]: owner,
      [SUBSCRIPTION_TAGS.heartbeat]: new Date().toISOString(),
    },
  });
  let open = true;
  let heartbeatAt = Date.now();
  const loop = (async () => {
    while (open) {
      try {
        if (Date.now() - heartbeatAt >= HEARTBEAT_INTERVAL_MS) {
          await renewHeartbeat(wiring.clients.sqs, subscription.queueUrl, new Date());
          heartbeatAt = Date.now();
        }
        const event = await subscription.next(5_000);
        if (event === undefined) continue;
        if (event.containerId && LEAVING.has(event.type)) cache.invalidate(event.containerId);
        feed?.publish(event);
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
