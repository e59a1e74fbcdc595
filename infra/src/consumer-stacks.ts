import type { Construct } from 'constructs';
import { NAMES } from './names.ts';
import { BerthServiceStack } from './service-stack.ts';
import type { BerthServiceStackProps } from './service-stack.ts';

/**
 * Takes lifecycle commands from `berth-lifecycle-commands` (scales on that queue's backlog) and
 * the agents' reports from `berth-agent-reports`, each accepted only from the task of the
 * record it names (BERTH_AGENT_REPORT_SENDER_CHECK=task).
 */
export class BerthSessionStack extends BerthServiceStack {
  constructor(scope: Construct, id: string, props: BerthServiceStackProps) {
    super(scope, id, props, {
      service: 'session',
      sizing: props.config.session,
      scaling: { queueName: NAMES.lifecycleQueue, settings: props.config.session.scaling },
      environment: { BERTH_AGENT_REPORT_SENDER_CHECK: 'task' },
    });
  }
}

/** Stops idle containers and sweeps on its own timer (every BERTH_SWEEP_INTERVAL). */
export class BerthReaperStack extends BerthServiceStack {
  constructor(scope: Construct, id: string, props: BerthServiceStackProps) {
    super(scope, id, props, { service: 'reaper', sizing: props.config.reaper });
  }
}

/** Follows `berth-task-events` and reconciles tasks with records; scales on that backlog. */
export class BerthTaskWatcherStack extends BerthServiceStack {
  constructor(scope: Construct, id: string, props: BerthServiceStackProps) {
    super(scope, id, props, {
      service: 'task-watcher',
      sizing: props.config.taskWatcher,
      scaling: { queueName: NAMES.taskEventsQueue, settings: props.config.taskWatcher.scaling },
    });
  }
}

/**
 * Delivers lifecycle events to clients' signed webhooks (docs/design.md, "Signed webhooks"):
 * follows `berth-webhook-events`; one task. Its role reaches only the webhook
 * table and that queue: it is the one service that sends requests where tenants point it.
 */
export class BerthWebhooksStack extends BerthServiceStack {
  constructor(scope: Construct, id: string, props: BerthServiceStackProps) {
    super(scope, id, props, {
      service: 'webhooks',
      sizing: props.config.webhooks,
    });
  }
}
