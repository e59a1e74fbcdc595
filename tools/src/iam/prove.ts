/**
 * The IAM proof: every AWS call a service recorded (BERTH_AWS_CALL_LOG, one file per service)
 * is evaluated with iam-simulate against that service's synthesized task role (identity
 * policies, permission boundary) and the resource policy of what it touched. Reports each
 * denied call with the statement that would have allowed it, and each granted action no call
 * used.
 */
import { runSimulation, type RunSimulationResults } from '@cloud-copilot/iam-simulate';
import type { AwsCallRecord, IamCheck } from '@berth/platform';
import { readFileSync } from 'node:fs';
import { CloudAssembly } from './assembly.ts';
import {
  Grants,
  statementsOf,
  type NamedPolicy,
  type PolicyStatement,
  type ServiceRole,
} from './policies.ts';

export interface ProveCallsOptions {
  /** A synthesized cloud assembly (`cdk synth -o <dir>`). */
  assemblyDir: string;
  /** Call logs, one per service (`<service>.jsonl`); each line names its service too. */
  callLogFiles: readonly string[];
  /** The account the logs were recorded for; read from their ARNs when absent. */
  account?: string;
}

export interface CheckedCall extends IamCheck {
  service: string;
  /** The SDK operations that needed this authorization (`sqs:DeleteMessageBatch`, ...). */
  operations: string[];
  /** How many recorded calls needed it. */
  count: number;
  /** Added by the proof, not sent by the caller: why (e.g. `RunTask passes the task definition's roles`). */
  impliedBy?: string;
}

export interface DeniedCall extends CheckedCall {
  decision: 'ImplicitlyDenied' | 'ExplicitlyDenied' | 'Invalid';
  /** The statement that is missing, or the statements that deny, in words. */
  reason: string;
  /** A statement that would allow the call (for implicit denials). */
  missingStatement?: PolicyStatement;
}

export interface UnusedGrant {
  service: string;
  policy: string;
  sid: string | undefined;
  action: string;
  resources: string[];
}

export interface ServiceSummary {
  service: string;
  roleArn: string;
  calls: number;
  /** Distinct (action, resource) authorizations, allowed ones included. */
  checks: number;
  /** Every action the service used, allowed or not, sorted. */
  actions: string[];
  /** Each distinct authorization the service needed, in the order first recorded. */
  authorizations: CheckedCall[];
}

export interface IamReport {
  ok: boolean;
  denied: DeniedCall[];
  unused: UnusedGrant[];
  /** Calls the recorder could not map to IAM: they prove nothing and fail the proof. */
  unmapped: { service: string; operation: string; count: number }[];
  services: ServiceSummary[];
}

export class CallLogError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CallLogError';
  }
}

function readCallLog(file: string): AwsCallRecord[] {
  const text = readFileSync(file, 'utf8');
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line, index) => {
      try {
        const record = JSON.parse(line) as AwsCallRecord;
        if (typeof record.service !== 'string' || !Array.isArray(record.iam))
          throw new Error('not a call record');
        return record;
      } catch (error) {
        throw new CallLogError(`${file}:${index + 1}: ${String(error)}`);
      }
    });
}

/** The account of the recorded ARNs; every ARN that names one must agree. */
function accountOfRecords(records: readonly AwsCallRecord[]): string {
  const accounts = new Set<string>();
  for (const record of records) {
    for (const check of record.iam) {
      const account = check.resource.split(':')[4];
      if (account && /^\d{12}$/.test(account)) accounts.add(account);
    }
  }
  if (accounts.size > 1) {
    throw new CallLogError(
      `the call logs name several accounts: ${[...accounts].sort().join(', ')}`,
    );
  }
  return [...accounts][0] ?? '123456789012';
}

const asList = (value: string | string[] | undefined): string[] =>
  value === undefined ? [] : Array.isArray(value) ? value : [value];

function actionMatches(pattern: string, action: string): boolean {
  const regex = new RegExp(
    `^${pattern
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
    'i',
  );
  return regex.test(action);
}

/** Adds what AWS authorizes on the caller's behalf for a check, beyond the check itself. */
function impliedChecks(check: CheckedCall, grants: Grants): CheckedCall[] {
  const implied: CheckedCall[] = [];
  if (check.action === 'ecs:RunTask') {
    const family = /task-definition\/([^:]+)/.exec(check.resource)?.[1] ?? '';
    for (const roleArn of grants.taskDefinitions.get(family)?.roleArns ?? []) {
      implied.push({
        ...check,
        action: 'iam:PassRole',
        resource: roleArn,
        context: { 'iam:PassedToService': 'ecs-tasks.amazonaws.com' },
        impliedBy: `RunTask of ${family} passes the task definition's roles`,
      });
    }
  }
  const key = grants.encryptionKeys.get(check.resource);
  if (key?.startsWith('arn:')) {
    const service = check.action.split(':')[0] ?? '';
    const region = check.resource.split(':')[3] ?? '';
    const keyActions =
      check.action === 'sqs:ReceiveMessage'
        ? ['kms:Decrypt']
        : ['sns:Publish', 'sqs:SendMessage'].includes(check.action)
          ? ['kms:GenerateDataKey', 'kms:Decrypt']
          : [];
    for (const action of keyActions) {
      implied.push({
        ...check,
        action,
        resource: key,
        context: { 'kms:ViaService': `${service}.${region}.amazonaws.com` },
        impliedBy: `${check.action} on ${check.resource}, encrypted with ${key}`,
      });
    }
  }
  return implied;
}

/** Distinct authorizations per service, counted, with the implied ones added. */
function collectChecks(
  records: readonly AwsCallRecord[],
  grants: Grants,
): Map<string, CheckedCall[]> {
  const byService = new Map<string, Map<string, CheckedCall>>();
  const add = (check: CheckedCall): void => {
    const checks = byService.get(check.service) ?? new Map<string, CheckedCall>();
    byService.set(check.service, checks);
    const key = JSON.stringify([check.action, check.resource, check.context ?? {}]);
    const existing = checks.get(key);
    if (existing) {
      existing.count += check.count;
      for (const operation of check.operations) {
        if (!existing.operations.includes(operation)) existing.operations.push(operation);
      }
      return;
    }
    checks.set(key, { ...check, operations: [...check.operations] });
    for (const implied of impliedChecks(check, grants)) add(implied);
  };
  for (const record of records) {
    for (const check of record.iam) {
      add({ ...check, service: record.service, operations: [record.operation], count: 1 });
    }
  }
  return new Map([...byService].map(([service, checks]) => [service, [...checks.values()]]));
}

function sessionArn(role: ServiceRole): string {
  const [, partition = 'aws', , , account = '', resource = ''] = role.roleArn.split(':');
  return `arn:${partition}:sts::${account}:assumed-role/${resource.replace(/^role\//, '')}/rehearsal`;
}

type Decision = 'Allowed' | 'ImplicitlyDenied' | 'ExplicitlyDenied';

interface Evaluation {
  decision: Decision | 'Invalid';
  /** `policy#statementIndex` of every identity statement that allowed it. */
  allowedBy: string[];
  denyingStatements: string[];
  error?: string;
}

function statementKey(policy: string, index: number): string {
  return `${policy}#${index}`;
}

function evaluationOf(results: RunSimulationResults): Evaluation {
  if (results.resultType === 'error') {
    return {
      decision: 'Invalid',
      allowedBy: [],
      denyingStatements: [],
      error: JSON.stringify(results.errors),
    };
  }
  const analyses =
    results.resultType === 'single'
      ? [results.result.analysis]
      : results.results.map((r) => r.analysis);
  const allowedBy = analyses.flatMap((analysis) =>
    (analysis.identityAnalysis?.allowStatements ?? []).map((s) =>
      statementKey(s.policyId, s.statement.index()),
    ),
  );
  const denyingStatements = analyses.flatMap((analysis) =>
    [
      ...(analysis.identityAnalysis?.denyStatements ?? []),
      ...(analysis.resourceAnalysis?.denyStatements ?? []),
      ...(analysis.permissionBoundaryAnalysis?.denyStatements ?? []),
    ].map(
      (s) =>
        `${s.policyId}${s.statement.sid() ? ` (${s.statement.sid()})` : ` statement ${s.statement.index()}`}`,
    ),
  );
  return { decision: results.overallResult, allowedBy, denyingStatements };
}

async function evaluate(
  check: CheckedCall,
  role: ServiceRole,
  grants: Grants,
  account: string,
): Promise<Evaluation> {
  const results = await runSimulation(
    {
      request: {
        principal: sessionArn(role),
        action: check.action,
        resource: { resource: check.resource, accountId: account },
        contextVariables: {
          // What AWS sets on every call of a task role over the SDK's HTTPS endpoints.
          'aws:SecureTransport': 'true',
          'aws:PrincipalArn': role.roleArn,
          'aws:PrincipalAccount': account,
          ...(check.context ?? {}),
        },
      },
      identityPolicies: role.identityPolicies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      resourcePolicy: grants.resourcePolicies.get(check.resource)?.policy,
      ...(role.boundary ? { permissionBoundaryPolicies: [role.boundary] } : {}),
    },
    {},
  );
  return evaluationOf(results);
}

/** The statement that would allow a denied check, for the report. */
function missingStatementFor(check: CheckedCall): PolicyStatement {
  const conditions = Object.entries(check.context ?? {}).filter(([key]) => !key.startsWith('aws:'));
  return {
    Effect: 'Allow',
    Action: check.action,
    Resource: check.resource,
    ...(conditions.length > 0
      ? {
          Condition: {
            StringEquals: Object.fromEntries(conditions),
          },
        }
      : {}),
  };
}

/** Statements naming the action whose resource or condition did not match: near misses. */
function nearMisses(check: CheckedCall, role: ServiceRole): string[] {
  return role.identityPolicies.flatMap((named: NamedPolicy) =>
    statementsOf(named.policy)
      .map((statement, index) => ({ statement, index }))
      .filter(
        ({ statement }) =>
          statement.Effect === 'Allow' &&
          asList(statement.Action).some((pattern) => actionMatches(pattern, check.action)),
      )
      .map(
        ({ statement, index }) =>
          `${statement.Sid ?? `statement ${index}`} (${asList(statement.Resource).join(', ')})`,
      ),
  );
}

export async function proveCalls(options: ProveCallsOptions): Promise<IamReport> {
  // Each line names its service: that, not the file's name, picks the role it is proven against.
  const records = options.callLogFiles.flatMap((file) => readCallLog(file));
  const account = options.account ?? accountOfRecords(records);
  const assembly = CloudAssembly.read(options.assemblyDir, account);
  const grants = new Grants(assembly);

  const unmappedCounts = new Map<string, { service: string; operation: string; count: number }>();
  for (const record of records.filter((r) => r.unmapped)) {
    const key = `${record.service} ${record.operation}`;
    const entry = unmappedCounts.get(key) ?? {
      service: record.service,
      operation: record.operation,
      count: 0,
    };
    entry.count += 1;
    unmappedCounts.set(key, entry);
  }

  const checksByService = collectChecks(records, grants);
  const denied: DeniedCall[] = [];
  const unused: UnusedGrant[] = [];
  const services: ServiceSummary[] = [];
  const loggedServices = new Set(records.map((record) => record.service));
  for (const service of loggedServices) {
    if (!grants.roles.has(service)) {
      throw new CallLogError(
        `calls of service "${service}" were recorded, but no task definition of the assembly runs it (known: ${[...grants.roles.keys()].sort().join(', ')})`,
      );
    }
  }

  for (const role of [...grants.roles.values()].sort((a, b) =>
    a.service.localeCompare(b.service),
  )) {
    const checks = checksByService.get(role.service) ?? [];
    const used = new Set<string>();
    for (const check of checks) {
      const evaluation = await evaluate(check, role, grants, account);
      if (evaluation.decision === 'Allowed') {
        for (const key of evaluation.allowedBy) used.add(`${key} ${check.action.toLowerCase()}`);
        continue;
      }
      const misses = nearMisses(check, role);
      denied.push({
        ...check,
        decision: evaluation.decision,
        reason:
          evaluation.decision === 'Invalid'
            ? `the simulator refused the request: ${evaluation.error ?? ''}`
            : evaluation.decision === 'ExplicitlyDenied'
              ? `denied by ${evaluation.denyingStatements.join('; ')}`
              : `no statement of ${role.rolePath} allows ${check.action} on ${check.resource}` +
                (misses.length > 0 ? `; statements naming the action: ${misses.join('; ')}` : ''),
        ...(evaluation.decision === 'ImplicitlyDenied'
          ? { missingStatement: missingStatementFor(check) }
          : {}),
      });
    }
    for (const named of role.identityPolicies) {
      statementsOf(named.policy).forEach((statement, index) => {
        if (statement.Effect !== 'Allow') return;
        for (const action of asList(statement.Action)) {
          const usedByCall = [...used].some((entry) => {
            const [key, calledAction = ''] = entry.split(' ');
            return (
              key === statementKey(named.name, index + 1) && actionMatches(action, calledAction)
            );
          });
          if (!usedByCall) {
            unused.push({
              service: role.service,
              policy: named.name,
              sid: statement.Sid,
              action,
              resources: asList(statement.Resource),
            });
          }
        }
      });
    }
    services.push({
      service: role.service,
      roleArn: role.roleArn,
      calls: records.filter((record) => record.service === role.service).length,
      checks: checks.length,
      actions: [...new Set(checks.map((check) => check.action))].sort(),
      authorizations: checks,
    });
  }
  const unmapped = [...unmappedCounts.values()];
  return { ok: denied.length === 0 && unmapped.length === 0, denied, unused, unmapped, services };
}
