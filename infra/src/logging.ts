import { InvalidArgumentError } from '@berth/domain';
import * as logs from 'aws-cdk-lib/aws-logs';

const ALLOWED = new Set<number>(
  Object.values(logs.RetentionDays).filter((v): v is number => typeof v === 'number'),
);

/** CloudWatch Logs accepts only certain retention periods; anything else is refused at synth. */
export function logRetention(days: number): logs.RetentionDays {
  if (!ALLOWED.has(days) || days === (logs.RetentionDays.INFINITE as number)) {
    throw new InvalidArgumentError(
      `logRetentionDays must be one of ${[...ALLOWED].filter((d) => d !== 9999).join(', ')}; got ${days}`,
      'logRetentionDays',
    );
  }
  return days;
}
