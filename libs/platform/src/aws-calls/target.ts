import { loadRehearsalTarget, type Env, type RehearsalTargetConfig } from '@berth/domain';
/**
 * The deployed stack a recorded call is written against: ARNs carry its partition, region
 * and account, never the emulators' (fauxqs answers with account 000000000000 and its own
 * region; the local runtime with its own cluster ARNs).
 */
export interface DeployTarget {
  partition: string;
  region: string;
  account: string;
}

/** The account the recorder writes ARNs with when the deployed account is not given. */
export const PLACEHOLDER_ACCOUNT = '000000000000';
const ACCOUNT = /^\d{12}$/;
const REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;

export function partitionOf(region: string): string {
  if (region.startsWith('cn-')) return 'aws-cn';
  if (region.startsWith('us-gov-')) return 'aws-us-gov';
  return 'aws';
}

export class AwsCallRecordingConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AwsCallRecordingConfigError';
  }
}

/**
 * `BERTH_REHEARSAL_ACCOUNT` (12 digits) and `BERTH_REHEARSAL_REGION` (falling back to
 * `AWS_REGION`): the account and region of the stack the rehearsal stands for.
 * `requireAccount` is set when a call log is written: an ARN with a made-up account would
 * prove nothing about the deployed policies.
 */
export function deployTargetFromEnv(env: Env, options: { requireAccount: boolean }): DeployTarget {
  return deployTarget(loadRehearsalTarget(env), options);
}

/** The target as configured (BerthConfig's `rehearsalTarget`), checked. */
export function deployTarget(
  given: RehearsalTargetConfig,
  options: { requireAccount: boolean },
): DeployTarget {
  const problems: string[] = [];
  const region = given.region;
  if (!REGION.test(region)) problems.push(`region "${region}" is not an AWS region name`);
  const account = given.account ?? PLACEHOLDER_ACCOUNT;
  if (given.account === undefined && options.requireAccount) {
    problems.push('BERTH_REHEARSAL_ACCOUNT is required with BERTH_AWS_CALL_LOG');
  } else if (!ACCOUNT.test(account)) {
    problems.push(`BERTH_REHEARSAL_ACCOUNT "${account}" is not a 12-digit account id`);
  }
  if (problems.length > 0) {
    throw new AwsCallRecordingConfigError(`AWS call recording: ${problems.join('; ')}`);
  }
  return { partition: partitionOf(region), region, account };
}

/** `arn:<partition>:<service>:<region>:<account>:<resource>` of the deployed stack. */
export function arnOf(
  target: DeployTarget,
  service: string,
  resource: string,
  options: { global?: boolean } = {},
): string {
  const region = options.global ? '' : target.region;
  return `arn:${target.partition}:${service}:${region}:${target.account}:${resource}`;
}

/** The last `:`- or `/`-separated part of an ARN or URL (a queue's or topic's name). */
export function lastSegment(value: string): string {
  return value.split(/[:/]/).pop() ?? value;
}

/** The resource part of an ARN (`task/berth/abc` of `arn:aws:ecs:r:a:task/berth/abc`). */
export function arnResource(value: string): string | undefined {
  if (!value.startsWith('arn:')) return undefined;
  return value.split(':').slice(5).join(':');
}
