import { ConfigError, loadClientConfig, loadConfig, type BerthConfig } from '@berth/domain';
import { createSnsClient, createSqsClient } from '@berth/messaging';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { SQSClient } from '@aws-sdk/client-sqs';
import type { Command } from 'commander';
import { CliError, EXIT } from './errors.ts';
import { apiClient, type ApiClient } from './http.ts';
import { output, type Output } from './output.ts';
import { resolveTarget, type Target } from './target.ts';

export interface GlobalOptions {
  url?: string;
  token?: string;
  json?: boolean;
  verbose?: boolean;
}

export interface Messaging {
  sqs: SQSClient;
  sns: SNSClient;
  /** Where SQS/SNS come from, to name in an error. */
  from: string;
  destroy(): void;
}

/** What every command needs, resolved on first use (so `--help` needs no configuration). */
export interface CliContext {
  globals(): GlobalOptions;
  config(): BerthConfig;
  api(): ApiClient;
  messaging(): Messaging;
  out(): Output;
}

/**
 * The CLI's one read of its environment: berth's settings (loadConfig) and the client's own
 * (loadClientConfig: BERTH_URL, BERTH_TOKEN, which AWS variables are set), both parsed in the
 * domain's config module.
 */
function configFromEnv(): BerthConfig {
  try {
    return loadConfig(process.env);
  } catch (error) {
    if (error instanceof ConfigError) throw new CliError(error.message, EXIT.usage);
    throw error;
  }
}

export function cliContext(program: Command): CliContext {
  const globals = (): GlobalOptions => program.opts<GlobalOptions>();
  let config: BerthConfig | undefined;
  let target: Target | undefined;
  const configOnce = (): BerthConfig => (config ??= configFromEnv());
  const targetOnce = (): Target => {
    if (target) return target;
    const options = globals();
    target = resolveTarget(
      {
        ...(options.url !== undefined ? { url: options.url } : {}),
        ...(options.token !== undefined ? { token: options.token } : {}),
      },
      configOnce(),
      loadClientConfig(process.env),
    );
    if (options.verbose)
      for (const line of target.explain) process.stderr.write(`berth: ${line}\n`);
    return target;
  };
  return {
    globals,
    config: configOnce,
    api: () => {
      const { discoveryUrl, token } = targetOnce();
      return apiClient(discoveryUrl, token);
    },
    messaging: () => {
      const { sqs: sqsConfig, sns: snsConfig, messagingFrom } = targetOnce();
      const sqs = createSqsClient(sqsConfig);
      const sns = createSnsClient(snsConfig);
      return {
        sqs,
        sns,
        from: messagingFrom,
        destroy: () => {
          sqs.destroy();
          sns.destroy();
        },
      };
    },
    out: () => output(Boolean(globals().json)),
  };
}
