/**
 * Which berth the CLI talks to. Explicit choices win: `--url`, `$BERTH_URL` and the AWS SDK's
 * own variables. With none of them, a local stack running on this data directory
 * (`<data>/stack.json`, written by `npm start`) gives everything: the discovery URL, the
 * SQS/SNS endpoint and region, and the admin token. Otherwise the defaults apply: discovery
 * on 127.0.0.1:$BERTH_HTTP_PORT, SQS/SNS as the AWS SDK finds them (e.g. ~/.aws).
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { SNSClientConfig } from '@aws-sdk/client-sns';
import type { SQSClientConfig } from '@aws-sdk/client-sqs';
import type { BerthConfig, ClientConfig } from '@berth/domain';
import { readLocalStack } from '@berth/platform';

export interface TargetOptions {
  url?: string;
  token?: string;
}

export interface Target {
  discoveryUrl: string;
  token: string | undefined;
  sqs: SQSClientConfig;
  sns: SNSClientConfig;
  /** One line per choice, saying where it came from (`--verbose`). */
  explain: string[];
  /** Where SQS/SNS come from, to name in an error. */
  messagingFrom: string;
}

/** The local engines accept any credentials; the SDK only needs some to sign with. */
const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

function readToken(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch {
    return undefined;
  }
}

export function resolveTarget(
  options: TargetOptions,
  config: BerthConfig,
  client: ClientConfig,
): Target {
  const awsSet = client.awsVariablesSet;
  const urlSet = options.url !== undefined ? '--url' : client.url ? '$BERTH_URL' : '';
  const dataDir = resolve(config.dataDir);
  const explicitToken =
    options.token !== undefined
      ? { token: options.token, from: '--token' }
      : client.token
        ? { token: client.token, from: '$BERTH_TOKEN' }
        : undefined;

  const lookup = awsSet.length === 0 && !urlSet ? readLocalStack(dataDir) : undefined;
  if (lookup?.found) {
    const { stack, path } = lookup;
    const local = {
      region: stack.region,
      credentials: LOCAL_CREDENTIALS,
    };
    const token = explicitToken ?? {
      token: readToken(stack.adminTokenPath),
      from: stack.adminTokenPath,
    };
    return {
      discoveryUrl: stack.discoveryUrl,
      token: token.token,
      sqs: { ...local, endpoint: stack.endpoints.sqs },
      sns: { ...local, endpoint: stack.endpoints.sns },
      explain: [
        `discovery ${stack.discoveryUrl} (from ${path})`,
        `SQS ${stack.endpoints.sqs}, SNS ${stack.endpoints.sns}, region ${stack.region} (from ${path})`,
        `token from ${token.from}${token.token === undefined ? ' (not readable: none sent)' : ''}`,
      ],
      messagingFrom: path,
    };
  }

  const notLocal =
    lookup === undefined
      ? `not the local stack: ${[urlSet, ...awsSet].filter(Boolean).join(', ')} given`
      : `no local stack: ${lookup.why}`;
  const discoveryUrl = options.url ?? (client.url || `http://127.0.0.1:${config.httpPort}`);
  const tokenPath = resolve(dataDir, 'admin-token');
  const token = explicitToken ?? { token: readToken(tokenPath), from: tokenPath };
  const messagingFrom =
    awsSet.length > 0
      ? `the environment (${awsSet.join(', ')})`
      : `the AWS SDK defaults (no AWS_* variable is set, and ${lookup?.found === false ? 'no running local stack: start one with npm start' : 'BERTH_URL is set'})`;
  return {
    discoveryUrl,
    token: token.token,
    sqs: {},
    sns: {},
    explain: [
      notLocal,
      `discovery ${discoveryUrl} (from ${urlSet || `the default for BERTH_HTTP_PORT=${config.httpPort}`})`,
      `SQS/SNS from ${messagingFrom}`,
      `token from ${token.from}${token.token === undefined ? ' (not readable: none sent)' : ''}`,
    ],
    messagingFrom,
  };
}
