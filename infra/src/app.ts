import { App, Tags, Validations } from 'aws-cdk-lib';
import type { AppProps, Stack } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { Env } from '@berth/domain';
import { resolveInfraConfig } from './config.ts';
import type { InfraConfig } from './config.ts';
import {
  BerthReaperStack,
  BerthSessionStack,
  BerthTaskWatcherStack,
  BerthWebhooksStack,
} from './consumer-stacks.ts';
import { BerthDataStack } from './data-stack.ts';
import { BerthDiscoveryStack } from './discovery-stack.ts';
import { applyNagSuppressions } from './nag-suppressions.ts';
import { BerthOperationsStack } from './operations-stack.ts';
import { BerthPlatformStack } from './platform-stack.ts';
import { BerthPreviewGatewayStack } from './preview-gateway-stack.ts';

/** Stack names: `cdk deploy <name>` and each service's `nx run <service>:deploy` use them. */
export const STACK_NAMES = {
  data: 'BerthDataStack',
  platform: 'BerthPlatformStack',
  discovery: 'BerthDiscoveryStack',
  previewGateway: 'BerthPreviewGatewayStack',
  session: 'BerthSessionStack',
  reaper: 'BerthReaperStack',
  taskWatcher: 'BerthTaskWatcherStack',
  webhooks: 'BerthWebhooksStack',
  operations: 'BerthOperationsStack',
} as const;

export interface BerthApp {
  app: App;
  config: InfraConfig;
  stacks: {
    data: BerthDataStack;
    platform: BerthPlatformStack;
    discovery: BerthDiscoveryStack;
    previewGateway: BerthPreviewGatewayStack;
    session: BerthSessionStack;
    reaper: BerthReaperStack;
    taskWatcher: BerthTaskWatcherStack;
    webhooks: BerthWebhooksStack;
    operations: BerthOperationsStack;
  };
}

export interface BuildOptions {
  /** Passed to the App: outdir, context (the cdk.json context in tests). */
  appProps?: AppProps;
  /** The contract's environment variables; `process.env` in the CLI, `{}` in tests. */
  env?: Env;
}

/**
 * The whole deployment: one stateful stack, the platform, one stack per service and the
 * operations stack. No stack references another's resources through CloudFormation: each
 * finds what it needs by stable name or SSM parameter, so each deploys on its own.
 */
export function buildApp(options: BuildOptions = {}): BerthApp {
  const app = new App(options.appProps);
  const config = resolveInfraConfig(options.env ?? {}, app.node.tryGetContext('berth'));
  // Bound to a region (ALB access logs need it), never to an account: synth needs no credentials.
  const env = { region: config.region };
  const props = { env, config };

  const stacks = {
    data: new BerthDataStack(app, STACK_NAMES.data, {
      ...props,
      description: 'berth: tables, queues, topic, secret and schedules (stateful, retained)',
      terminationProtection: true,
    }),
    platform: new BerthPlatformStack(app, STACK_NAMES.platform, {
      ...props,
      description: 'berth: VPC, ECS cluster, workspace task definition and file system',
    }),
    // Before discovery: `cdk deploy --all` follows this order, and discovery's task definition
    // reads the gateway's URL from SSM (/berth/preview-gateway/url) at deploy time.
    previewGateway: new BerthPreviewGatewayStack(app, STACK_NAMES.previewGateway, {
      ...props,
      description: 'berth: the preview gateway behind its own load balancer',
    }),
    discovery: new BerthDiscoveryStack(app, STACK_NAMES.discovery, {
      ...props,
      description: 'berth: the discovery service behind its load balancer',
    }),
    session: new BerthSessionStack(app, STACK_NAMES.session, {
      ...props,
      description: 'berth: the session service (lifecycle commands)',
    }),
    reaper: new BerthReaperStack(app, STACK_NAMES.reaper, {
      ...props,
      description: 'berth: the reaper (idle shutdown and sweeps)',
    }),
    taskWatcher: new BerthTaskWatcherStack(app, STACK_NAMES.taskWatcher, {
      ...props,
      description: 'berth: the task watcher (task events and reconciliation)',
    }),
    webhooks: new BerthWebhooksStack(app, STACK_NAMES.webhooks, {
      ...props,
      description:
        "berth: the webhook service (signed deliveries of lifecycle events to clients' webhooks)",
    }),
    operations: new BerthOperationsStack(app, STACK_NAMES.operations, {
      ...props,
      description: 'berth: dashboard and alarms',
    }),
  };

  for (const stack of Object.values(stacks) as Stack[]) {
    Tags.of(stack).add('Project', 'berth');
    applyNagSuppressions(stack, config);
  }
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  return { app, config, stacks };
}
