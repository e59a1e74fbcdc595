import type { DeployTarget } from './target.ts';

/** One authorization AWS makes for a call: the IAM action, the resource ARN, the condition keys. */
export interface IamCheck {
  action: string;
  resource: string;
  /** Condition context keys IAM would see where a grant may test them (`ecs:cluster`, tags). */
  context?: Record<string, string | string[]>;
}

/** One SDK call as recorded: what the service asked and every authorization it takes. */
export interface AwsCallRecord {
  /** The berth service whose role makes the call (`discovery`, `workspace-agent`, ...). */
  service: string;
  /** The API operation, `<iam prefix>:<operation>` (`dynamodb:TransactWriteItems`). */
  operation: string;
  /** Empty only when `unmapped`: an operation the recorder has no mapping for. */
  iam: IamCheck[];
  /** The error's name when the call failed (the authorization happened all the same). */
  error?: string;
  /** The recorder does not know this operation: the proof must refuse it, not skip it. */
  unmapped?: true;
}

/** Input and output as the SDK sees them (low-level shapes; lib-dynamodb's are marshalled). */
export type Shape = Record<string, unknown>;

/** Maps one operation of one AWS service; `undefined` for an operation it does not know. */
export type OperationMapper = (
  operation: string,
  input: Shape,
  output: Shape | undefined,
  target: DeployTarget,
) => IamCheck[] | undefined;

export function stringField(shape: Shape | undefined, field: string): string | undefined {
  const value = shape?.[field];
  return typeof value === 'string' ? value : undefined;
}

export function arrayField(shape: Shape | undefined, field: string): Shape[] {
  const value = shape?.[field];
  return Array.isArray(value) ? (value as Shape[]) : [];
}

export function objectField(shape: Shape | undefined, field: string): Shape | undefined {
  const value = shape?.[field];
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Shape)
    : undefined;
}
