/**
 * `npm start`: the whole of berth on one machine. DynamoDB Local and fauxqs, then every
 * service as a process of its own (as on AWS), restarted if it dies; Ctrl-C or SIGTERM stops
 * everything it started, workspaces saved first.
 *
 * Nothing it starts can outlive it (docs/design.md, "The local stack cannot be orphaned"):
 * every child holds an IPC pipe from this process and stops when the pipe closes, which the
 * kernel does however this process ends; DynamoDB Local, a JVM that cannot watch a pipe, runs
 * on a tether that does it for it. This process in turn stops when its parent (npm) is gone.
 */
import { ConfigError, loadConfig, type BerthConfig } from '@berth/domain';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { ensureTables } from '@berth/dynamodb';
import { createSnsClient, createSqsClient, ensureMessaging } from '@berth/messaging';
import { localAwsEnvironment, startDynamoDbLocal, startFauxqs, type Engine } from '@berth/testing';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  localAuthSecret,
  mintToken,
  removeLocalStack,
  writeLocalStack,
  writePrivateFile,
} from '@berth/platform';
import { STATIC_SITE_COMMAND } from './dev-server.ts';
import { busyPorts, describeBusyPort } from './ports.ts';
import { ServiceProcess } from './service-process.ts';

const root = fileURLToPath(new URL('../../../', import.meta.url));

function configOrExit(): BerthConfig {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(78);
    }
    throw error;
  }
}
const config = configOrExit();

// A port in use would make a service crash in a loop; say which, and by whom, and start nothing.
const busy = await busyPorts([
  { port: config.httpPort, variable: 'BERTH_HTTP_PORT' },
  { port: config.sqsPort, variable: 'BERTH_SQS_PORT' },
  { port: config.dynamodbPort, variable: 'BERTH_DYNAMODB_PORT' },
  { port: config.runtimePort, variable: 'BERTH_RUNTIME_PORT' },
  { port: config.preview.port, variable: 'BERTH_PREVIEW_PORT' },
]);
if (busy.length > 0) {
  for (const port of busy) console.error(`berth: ${describeBusyPort(port)}`);
  console.error('berth: nothing was started; free the port or choose another one');
  process.exit(1);
}

const dataDir = resolve(config.dataDir);
mkdirSync(resolve(dataDir, 'logs'), { recursive: true });
mkdirSync(resolve(dataDir, 'run'), { recursive: true });
const say = (line: string): void => void process.stdout.write(`${line}\n`);

const engines: Engine[] = [];
const services: ServiceProcess[] = [];
let stopping = false;

async function stopAll(code: number): Promise<never> {
  if (stopping) process.exit(code);
  stopping = true;
  say('berth: stopping...');
  // First: from now on no client should take this stack for a running one.
  removeLocalStack(dataDir);
  const byName = (name: string) => services.filter((s) => s.name === name);
  // Front doors first, then the runtime (agents save their workspaces and report), then the
  // watcher that records those reports, then the engines.
  await Promise.all(
    ['discovery', 'preview-gateway', 'session', 'reaper', 'webhooks']
      .flatMap(byName)
      .map((s) => s.stop()),
  );
  await Promise.all(byName('local-runtime').map((s) => s.stop(config.shutdownGraceMs + 10_000)));
  await Promise.all(byName('task-watcher').map((s) => s.stop()));
  await Promise.all(engines.map((engine) => engine.stop()));
  say('berth: stopped');
  process.exit(code);
}
process.on('SIGINT', () => void stopAll(0));
process.on('SIGTERM', () => void stopAll(0));

// npm 11 passes SIGTERM to the shell that runs the script, not on to this process (`npm start`
// runs it with exec, so that there is no such shell, but a process manager may start it some
// other way): when the parent is gone, this process has been re-parented, so stop.
const parentAtStart = process.ppid;
const parentWatch = setInterval(() => {
  if (process.ppid === parentAtStart) return;
  clearInterval(parentWatch);
  say(`berth: the process that started the stack (pid ${parentAtStart}) is gone`);
  void stopAll(0);
}, 500);
parentWatch.unref();

try {
  say(`berth: data directory ${dataDir}`);
  const [dynamodb, fauxqs] = await Promise.all([
    startDynamoDbLocal({
      port: config.dynamodbPort,
      dbPath: resolve(dataDir, 'dynamodb'),
      detached: true,
      tethered: true,
    }),
    startFauxqs({ port: config.sqsPort, dataDir: resolve(dataDir, 'sqs'), detached: true }),
  ]);
  engines.push(dynamodb, fauxqs);
  const awsEnv = localAwsEnvironment(dynamodb.endpoint, fauxqs.endpoint);
  Object.assign(process.env, awsEnv);

  const dynamodbClient = new DynamoDBClient({});
  await ensureTables(dynamodbClient, {
    containerTable: config.containerTable,
    sessionTable: config.sessionTable,
  });
  dynamodbClient.destroy();
  const messaging = await ensureMessaging({ sqs: createSqsClient(), sns: createSnsClient() });

  const authSecret = localAuthSecret(dataDir, config.authSecret);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...awsEnv,
    BERTH_DATA_DIR: dataDir,
    BERTH_AUTH_SECRET: authSecret,
    BERTH_RUNTIME: 'local',
    BERTH_TASK_EVENTS_QUEUE_URL: messaging.taskEventsUrl,
    // As on AWS, every service is given the topic's ARN (it never looks the topic up).
    BERTH_LIFECYCLE_TOPIC_ARN: messaging.topicArn,
    // The warm pool is on locally (2 members) unless the environment says otherwise.
    BERTH_POOL_SIZE: process.env.BERTH_POOL_SIZE?.trim() || '2',
    // Every container serves its workspace (docs/contract.md, "The dev server") unless the
    // environment names another dev server, or none (set and empty).
    BERTH_DEV_SERVER_COMMAND: process.env.BERTH_DEV_SERVER_COMMAND ?? STATIC_SITE_COMMAND,
    // Webhooks may be plain http to this machine's loopback (a receiver under development);
    // nothing else private, as in production.
    BERTH_WEBHOOK_ALLOW_HTTP: process.env.BERTH_WEBHOOK_ALLOW_HTTP?.trim() || 'true',
    BERTH_WEBHOOK_ALLOWED_NETWORKS:
      process.env.BERTH_WEBHOOK_ALLOWED_NETWORKS?.trim() || '127.0.0.1/32,::1/128',
  };
  // Fault injection (the soak test, tools/src/soak): when these are set, the berth services
  // reach DynamoDB and SQS/SNS through them (fault proxies) instead of the engines, while the
  // stack itself and the local runtime, which stands in for AWS's own machinery, keep talking
  // to the engines directly. Unset (`npm start`), every process uses the engines.
  const viaDynamodb = process.env.BERTH_SERVICES_ENDPOINT_DYNAMODB?.trim();
  const viaSqs = process.env.BERTH_SERVICES_ENDPOINT_SQS?.trim();
  const serviceEnv: NodeJS.ProcessEnv = {
    ...env,
    ...(viaDynamodb ? { AWS_ENDPOINT_URL_DYNAMODB: viaDynamodb } : {}),
    ...(viaSqs ? { AWS_ENDPOINT_URL_SQS: viaSqs, AWS_ENDPOINT_URL_SNS: viaSqs } : {}),
  };
  const start = (
    name: string,
    entry: string,
    processEnv: NodeJS.ProcessEnv = serviceEnv,
  ): ServiceProcess => {
    const service = new ServiceProcess({
      name,
      command: process.execPath,
      args: [resolve(root, entry)],
      env: processEnv,
      logFile: resolve(dataDir, 'logs', `${name}.log`),
      pidFile: resolve(dataDir, 'run', `${name}.pid`),
      onGiveUp: () => void stopAll(1),
    });
    services.push(service);
    service.start();
    return service;
  };
  start('local-runtime', 'apps/local-runtime/src/main.ts', env);
  start('task-watcher', 'apps/task-watcher/src/main.ts');
  start('session', 'apps/session/src/main.ts');
  start('reaper', 'apps/reaper/src/main.ts');
  start('webhooks', 'apps/webhooks/src/main.ts');
  const discovery = start('discovery', 'apps/discovery/src/main.ts');
  const gateway = start('preview-gateway', 'apps/preview-gateway/src/main.ts');
  const discoveryUrl = `http://127.0.0.1:${config.httpPort}`;
  const gatewayUrl = `http://127.0.0.1:${config.preview.port}`;
  await Promise.all([
    discovery.waitForHttp(`${discoveryUrl}/readyz`, 60_000),
    gateway.waitForHttp(`${gatewayUrl}/readyz`, 60_000),
  ]);

  const adminToken = mintToken(authSecret, { client: 'admin', sub: 'admin', role: 'admin' });
  const adminTokenPath = resolve(dataDir, 'admin-token');
  writePrivateFile(adminTokenPath, `${adminToken}\n`);
  // What a client needs to reach this stack with nothing else set (the CLI reads it).
  const stackFile = writeLocalStack(dataDir, {
    version: 1,
    pid: process.pid,
    startedAt: new Date().toISOString(),
    region: awsEnv.AWS_REGION ?? 'us-east-1',
    discoveryUrl,
    runtimeUrl: `http://127.0.0.1:${config.runtimePort}`,
    endpoints: { dynamodb: dynamodb.endpoint, sqs: fauxqs.endpoint, sns: fauxqs.endpoint },
    tables: { containers: config.containerTable, sessions: config.sessionTable },
    lifecycleCommandsUrl: messaging.lifecycleCommandsUrl,
    topicArn: messaging.topicArn,
    adminTokenPath,
    dataDir,
  });
  say('');
  say('berth is running');
  say(
    `  discovery      ${discoveryUrl}  (OpenAPI: ${discoveryUrl}/docs, metrics: ${discoveryUrl}/metrics)`,
  );
  say(`  console        ${discoveryUrl}/console  (sign in with the admin token below)`);
  say(
    `  previews       ${gatewayUrl}/p/<containerId>/  (URLs from POST /v1/containers/{id}/preview)`,
  );
  say(`  SQS/SNS        ${fauxqs.endpoint}  (commands: ${messaging.lifecycleCommandsUrl})`);
  say(`  events topic   ${messaging.topicArn}`);
  say(
    `  DynamoDB       ${dynamodb.endpoint}  (tables ${config.containerTable}, ${config.sessionTable})`,
  );
  say(`  local runtime  http://127.0.0.1:${config.runtimePort}`);
  say(`  data           ${dataDir}  (logs in ${resolve(dataDir, 'logs')})`);
  say(`  for clients    ${stackFile}`);
  say('');
  say(`  admin token (also in ${adminTokenPath}):`);
  say(`  ${adminToken}`);
  say('');
  say('  try: npm run berth -- discover acme website alice --wait 30');
  say('Ctrl-C stops everything.');
} catch (error) {
  console.error(
    `berth: could not start: ${error instanceof Error ? error.message : String(error)}`,
  );
  await stopAll(1);
}
