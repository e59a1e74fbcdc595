import { Validations } from 'aws-cdk-lib';
import type { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type { IConstruct } from 'constructs';
import type { InfraConfig } from './config.ts';
import { BerthDataStack } from './data-stack.ts';
import { BerthDiscoveryStack } from './discovery-stack.ts';
import { BerthPreviewGatewayStack } from './preview-gateway-stack.ts';
import { BerthArns, NAMES } from './names.ts';
import { BerthPlatformStack } from './platform-stack.ts';
import { BerthServiceStack } from './service-stack.ts';

/**
 * Every cdk-nag (and CDK annotation) acknowledgment of the app, each with its reason, and
 * nowhere else. A suppression names one finding on one construct; a wildcard resource that
 * has no reason below fails the synth instead of being waved through.
 */

const NAG = 'AwsSolutions::';

interface Suppression {
  /** Construct path below the stack. */
  path: string;
  id: string;
  reason: string;
}

const ECR_TOKEN_REASON =
  'ecr:GetAuthorizationToken (added by CDK for the image asset) has no resource-level permissions: AWS accepts only "*". Image pulls themselves are scoped to the asset repository.';
const ENVIRONMENT_REASON =
  'The environment holds non-secret configuration only (table and queue names, timeouts, cluster and subnet ids); the one secret, BERTH_AUTH_SECRET, is injected from Secrets Manager.';

/** Why each wildcard resource in a berth role cannot be narrower. */
function wildcardReasons(stack: Stack): Map<string, string> {
  const arns = new BerthArns(stack);
  return new Map([
    [
      arns.containerQueues(),
      'Per-container queues are created at run time, one input and one output queue per container generation, all named berth-…; no name is known at deploy time. Destructive actions on the shared berth-* queues are denied explicitly in the same policy.',
    ],
    [
      arns.containerInputQueues(),
      'Per-container input queues are created at run time (berth-…-in, one per container generation); discovery may only send to them, for a revert.',
    ],
    [
      arns.poolControlQueues(),
      'A warm pool member gets a control queue per slot and generation (berth-pool-s<slot>-g<generation>-ctl), made at run time; discovery may only send to them (the claimed member learns its identity there).',
    ],
    [
      arns.subscriptionQueues(),
      'Each discovery process makes its own subscription queue at start (discovery-invalidations-<host>-<pid>); no name is known at deploy time. The prefix is outside berth-*, so no workspace role can read them.',
    ],
    [
      arns.tableIndexes(NAMES.containerTable),
      'Query on the berth-containers indexes (userId-index, clientProject-index, status-index, idle-index, due-index): one table, its own indexes only.',
    ],
    [
      arns.tableIndexes(NAMES.sessionTable),
      'Query on the berth-sessions indexes (container-index, thread-index, active-index): one table, its own indexes only.',
    ],
    [
      arns.tableIndexes(NAMES.historyTable),
      'Query on the berth-history indexes (container-index, session-index, client-index, clientUser-index, day-index, usage-index): discovery reads the lifecycle history and its usage rollup through its own indexes only.',
    ],
    [
      arns.tableIndexes(NAMES.webhookTable),
      'Query on the berth-webhooks indexes (client-index, clientStatus-index, due-index): one table, its own indexes only.',
    ],
    [
      arns.workspaceTaskDefinitions(),
      'RunTask on any revision of the berth-workspace family (a new revision appears with every platform deploy), and only in the berth cluster (ecs:cluster condition).',
    ],
    [
      arns.clusterTasks(),
      'Tasks are created at run time; the ARN pattern limits the action to tasks of the berth cluster, and the ecs:cluster condition repeats the limit.',
    ],
  ]);
}

/** The actions AWS offers no resource-level permission for, and why each is needed. */
const STAR_RESOURCE_ACTIONS: ReadonlyMap<string, string> = new Map([
  [
    'ecs:ListTasks',
    'ecs:ListTasks (reconciliation, and closing a start whose starter vanished) has no resource-level permissions; the ecs:cluster condition binds it to the berth cluster.',
  ],
  [
    'sqs:ListQueues',
    'sqs:ListQueues (the reaper finding abandoned discovery subscription queues by their prefix) has no resource-level permissions; it reveals queue URLs only.',
  ],
]);

/** The finding id cdk-nag gives a resource: tokens rendered as `<Ref>`, joins flattened. */
export function nagResourceId(stack: Stack, value: string): string {
  const render = (node: unknown): string => {
    if (typeof node === 'string') return node;
    if (typeof node === 'object' && node !== null) {
      if ('Ref' in node) return `<${String(node.Ref)}>`;
      if ('Fn::GetAtt' in node) return `<${(node['Fn::GetAtt'] as string[]).join('.')}>`;
      if ('Fn::Join' in node) {
        const [separator, parts] = node['Fn::Join'] as [string, unknown[]];
        return parts.map(render).join(separator);
      }
    }
    return JSON.stringify(node);
  };
  return render(stack.resolve(value));
}

function wildcardSuppressions(
  stack: Stack,
  path: string,
  statements: readonly iam.PolicyStatement[],
): Suppression[] {
  const reasons = wildcardReasons(stack);
  const out: Suppression[] = [];
  const seen = new Set<string>();
  for (const statement of statements) {
    if (statement.effect === iam.Effect.DENY) continue;
    for (const action of statement.actions) {
      if (action.includes('*'))
        throw new Error(`wildcard action ${action} in ${stack.stackName}/${path}`);
    }
    for (const resource of statement.resources) {
      if (!nagResourceId(stack, resource).includes('*')) continue;
      const reason =
        resource === '*'
          ? starReason(stack, path, statements)
          : [...reasons.entries()].find(
              ([arn]) => nagResourceId(stack, arn) === nagResourceId(stack, resource),
            )?.[1];
      if (reason === undefined) {
        throw new Error(
          `${stack.stackName}/${path}: wildcard resource ${nagResourceId(stack, resource)} has no reason`,
        );
      }
      const id = `${NAG}AwsSolutions-IAM5[Resource::${nagResourceId(stack, resource)}]`;
      if (!seen.has(id)) out.push({ path, id, reason });
      seen.add(id);
    }
  }
  return out;
}

function starReason(
  stack: Stack,
  path: string,
  statements: readonly iam.PolicyStatement[],
): string {
  const actions = statements
    .filter((s) => s.effect !== iam.Effect.DENY && s.resources.includes('*'))
    .flatMap((s) => s.actions);
  return actions
    .map((action) => {
      const reason = STAR_RESOURCE_ACTIONS.get(action);
      if (reason === undefined)
        throw new Error(`${stack.stackName}/${path}: ${action} on "*" has no reason`);
      return reason;
    })
    .join(' ');
}

function suppressionsFor(stack: Stack, config: InfraConfig): Suppression[] {
  if (stack instanceof BerthDataStack) {
    return [
      {
        path: 'AuthSecret/Resource',
        id: `${NAG}AwsSolutions-SMG4`,
        reason:
          'The HS256 token key is rotated by an operator (docs/deploy.md): an automatic rotation would invalidate every issued token at once and needs a rotation function that knows berth’s token issuers.',
      },
      {
        path: 'GitCredentials/Resource',
        id: `${NAG}AwsSolutions-SMG4`,
        reason:
          'The git credentials are a token issued by the git host (GitHub, GitLab, ...), which Secrets Manager cannot rotate: the operator replaces the secret value when the host rotates the token (docs/deploy.md).',
      },
    ];
  }
  if (stack instanceof BerthPlatformStack) {
    return [
      ...wildcardSuppressions(stack, 'WorkspaceTaskRole/Resource', stack.workspacePolicyStatements),
      {
        path: 'WorkspaceExecutionRole/DefaultPolicy/Resource',
        id: `${NAG}AwsSolutions-IAM5[Resource::*]`,
        reason: ECR_TOKEN_REASON,
      },
      {
        path: 'WorkspaceTaskDefinition/Resource',
        id: `${NAG}AwsSolutions-ECS2`,
        reason: ENVIRONMENT_REASON,
      },
    ];
  }
  if (stack instanceof BerthServiceStack) {
    const own: Suppression[] = [
      ...wildcardSuppressions(stack, 'TaskRole/Resource', stack.policyStatements),
      {
        path: 'TaskDefinition/ExecutionRole/DefaultPolicy/Resource',
        id: `${NAG}AwsSolutions-IAM5[Resource::*]`,
        reason: ECR_TOKEN_REASON,
      },
      {
        path: 'TaskDefinition/Resource',
        id: `${NAG}AwsSolutions-ECS2`,
        reason: ENVIRONMENT_REASON,
      },
    ];
    for (const subnet of ['PrivateSubnet1', 'PrivateSubnet2', 'PublicSubnet1', 'PublicSubnet2']) {
      if (stack.node.tryFindChild(subnet) === undefined) continue;
      own.push({
        path: subnet,
        id: 'Annotation::@aws-cdk/aws-ec2:noSubnetRouteTableId',
        reason:
          'Subnets are imported by id from SSM to place tasks and the load balancer; the service stacks never read or change their route tables.',
      });
    }
    if (stack instanceof BerthPreviewGatewayStack) {
      own.push(
        ...loadBalancerSuppressions(
          config,
          'previewGateway',
          'every preview needs a preview token or its cookie',
        ),
      );
    }
    if (stack instanceof BerthDiscoveryStack) {
      own.push(
        ...loadBalancerSuppressions(
          config,
          'discovery',
          'every route but health and docs needs a bearer token',
        ),
      );
    }
    return own;
  }
  return [];
}

/**
 * A service's own load balancer (load-balancer.ts): its access-log bucket, and its security
 * group when the settings open it to the internet (`guard` says what still protects it).
 */
function loadBalancerSuppressions(
  config: InfraConfig,
  settings: 'discovery' | 'previewGateway',
  guard: string,
): Suppression[] {
  const own: Suppression[] = [
    {
      path: 'AccessLogs/Resource',
      id: `${NAG}AwsSolutions-S1`,
      reason:
        'This bucket is the load balancer’s access-log destination; logging access to it would need another bucket, and so on.',
    },
  ];
  if (config[settings].ingressCidrs.some((cidr) => cidr.endsWith('/0'))) {
    own.push({
      path: 'LoadBalancerSecurityGroup/Resource',
      id: `${NAG}AwsSolutions-EC23`,
      reason: `Configured open to the internet (${settings}.ingressCidrs): the listener is HTTPS only (a certificate is required for internetFacing) and ${guard}.`,
    });
  }
  return own;
}

function childAt(stack: Stack, path: string): IConstruct {
  let node: IConstruct = stack;
  for (const part of path.split('/')) {
    const child = node.node.tryFindChild(part);
    if (child === undefined)
      throw new Error(`nag suppression for ${stack.stackName}: no construct at ${path}`);
    node = child;
  }
  return node;
}

export function applyNagSuppressions(stack: Stack, config: InfraConfig): void {
  for (const suppression of suppressionsFor(stack, config)) {
    Validations.of(childAt(stack, suppression.path)).acknowledge({
      id: suppression.id,
      reason: suppression.reason,
    });
  }
}
