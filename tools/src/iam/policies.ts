/**
 * What the assembly grants: each task definition's role (by the service that runs in it) with
 * its identity policies and boundary, the resource policies of queues, topics and keys, and
 * what a call implies that the caller does not send itself (passing the task definition's
 * roles on RunTask, the topic's key on Publish).
 */
import { AssemblyError, type CloudAssembly, type StackResource } from './assembly.ts';

export interface PolicyDocument {
  Version?: string;
  Statement: PolicyStatement[] | PolicyStatement;
}

export interface PolicyStatement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
  Principal?: unknown;
}

export interface NamedPolicy {
  /** `<construct path of the role or policy>` and, for inline policies, their name. */
  name: string;
  policy: PolicyDocument;
}

export interface ServiceRole {
  service: string;
  family: string;
  roleArn: string;
  rolePath: string;
  identityPolicies: NamedPolicy[];
  boundary: NamedPolicy | undefined;
}

export interface TaskDefinitionRoles {
  family: string;
  roleArns: string[];
}

/**
 * The task definition family each berth process runs in: `berth-<service>`, and the
 * workspace agent in the workspace family.
 */
export function serviceOfFamily(family: string): string {
  if (family === 'berth-workspace') return 'workspace-agent';
  return family.replace(/^berth-/, '');
}

export function statementsOf(document: PolicyDocument): PolicyStatement[] {
  return Array.isArray(document.Statement) ? document.Statement : [document.Statement];
}

export class Grants {
  readonly roles: Map<string, ServiceRole>;
  readonly taskDefinitions: Map<string, TaskDefinitionRoles>;
  readonly resourcePolicies: Map<string, NamedPolicy>;
  /** Topic or queue ARN → the ARN of the KMS key it is encrypted with. */
  readonly encryptionKeys: Map<string, string>;
  private readonly assembly: CloudAssembly;

  constructor(assembly: CloudAssembly) {
    this.assembly = assembly;
    this.roles = new Map();
    this.taskDefinitions = new Map();
    this.resourcePolicies = new Map();
    this.encryptionKeys = new Map();
    this.readTaskDefinitions();
    this.readResourcePolicies();
  }

  private where(entry: StackResource): string {
    return entry.stack.pathOf(entry.logicalId);
  }

  private readTaskDefinitions(): void {
    const roleByArn = new Map<string, StackResource>();
    for (const role of this.assembly.resourcesOfType('AWS::IAM::Role')) {
      const arn = this.assembly.string(
        { 'Fn::GetAtt': [role.logicalId, 'Arn'] },
        role.stack,
        this.where(role),
      );
      roleByArn.set(arn, role);
    }
    for (const definition of this.assembly.resourcesOfType('AWS::ECS::TaskDefinition')) {
      const where = this.where(definition);
      const properties = definition.resource.Properties ?? {};
      const family = this.assembly.string(properties.Family, definition.stack, where);
      const roleArns = ['TaskRoleArn', 'ExecutionRoleArn']
        .filter((field) => properties[field] !== undefined)
        .map((field) => this.assembly.string(properties[field], definition.stack, where));
      this.taskDefinitions.set(family, { family, roleArns });
      if (properties.TaskRoleArn === undefined) continue;
      const roleArn = this.assembly.string(properties.TaskRoleArn, definition.stack, where);
      const role = roleByArn.get(roleArn);
      if (!role) {
        throw new AssemblyError(`${where}: its task role ${roleArn} is not a role of the assembly`);
      }
      const service = serviceOfFamily(family);
      this.roles.set(service, {
        service,
        family,
        roleArn,
        rolePath: this.where(role),
        identityPolicies: this.identityPolicies(role),
        boundary: this.boundary(role),
      });
    }
  }

  private identityPolicies(role: StackResource): NamedPolicy[] {
    const where = this.where(role);
    const properties = role.resource.Properties ?? {};
    const policies: NamedPolicy[] = [];
    const inline = (properties.Policies ?? []) as {
      PolicyName: unknown;
      PolicyDocument: unknown;
    }[];
    for (const entry of inline) {
      const name = this.assembly.string(entry.PolicyName, role.stack, where);
      policies.push({
        name: `${where}/${name}`,
        policy: this.assembly.resolve(entry.PolicyDocument, role.stack, where) as PolicyDocument,
      });
    }
    const refersToRole = (list: unknown): boolean =>
      Array.isArray(list) &&
      list.some(
        (item) =>
          typeof item === 'object' &&
          item !== null &&
          (item as { Ref?: unknown }).Ref === role.logicalId,
      );
    for (const type of ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy']) {
      for (const attached of role.stack.resources()) {
        if (attached.resource.Type !== type || !refersToRole(attached.resource.Properties?.Roles)) {
          continue;
        }
        policies.push(this.document(attached, 'PolicyDocument'));
      }
    }
    for (const arn of (properties.ManagedPolicyArns ?? []) as unknown[]) {
      const resolved = this.assembly.string(arn, role.stack, where);
      policies.push(this.managedPolicy(resolved, where));
    }
    return policies;
  }

  private boundary(role: StackResource): NamedPolicy | undefined {
    const boundary = role.resource.Properties?.PermissionsBoundary;
    if (boundary === undefined) return undefined;
    const where = this.where(role);
    return this.managedPolicy(this.assembly.string(boundary, role.stack, where), where);
  }

  private managedPolicy(arn: string, where: string): NamedPolicy {
    const owner = this.assembly
      .resourcesOfType('AWS::IAM::ManagedPolicy')
      .find(
        (entry) =>
          this.assembly.string({ Ref: entry.logicalId }, entry.stack, this.where(entry)) === arn,
      );
    if (!owner) {
      throw new AssemblyError(
        `${where}: managed policy ${arn} is not defined in the assembly, so it cannot be evaluated`,
      );
    }
    return this.document(owner, 'PolicyDocument');
  }

  private document(entry: StackResource, field: string): NamedPolicy {
    const where = this.where(entry);
    return {
      name: where,
      policy: this.assembly.resolve(
        entry.resource.Properties?.[field],
        entry.stack,
        where,
      ) as PolicyDocument,
    };
  }

  private readResourcePolicies(): void {
    const assembly = this.assembly;
    const queueArnOfUrl = (url: string): string => {
      const match = /^https:\/\/sqs\.([^.]+)\.[^/]+\/(\d+)\/(.+)$/.exec(url);
      if (!match) throw new AssemblyError(`not a queue URL: ${url}`);
      return `arn:${assembly.partition}:sqs:${match[1]}:${match[2]}:${match[3]}`;
    };
    for (const entry of assembly.resourcesOfType('AWS::SQS::QueuePolicy')) {
      const where = this.where(entry);
      const queues = assembly.resolve(entry.resource.Properties?.Queues, entry.stack, where);
      for (const url of queues as string[]) {
        this.resourcePolicies.set(queueArnOfUrl(url), this.document(entry, 'PolicyDocument'));
      }
    }
    for (const entry of assembly.resourcesOfType('AWS::SNS::TopicPolicy')) {
      const where = this.where(entry);
      const topics = assembly.resolve(entry.resource.Properties?.Topics, entry.stack, where);
      for (const arn of topics as string[]) {
        this.resourcePolicies.set(arn, this.document(entry, 'PolicyDocument'));
      }
    }
    for (const entry of assembly.resourcesOfType('AWS::KMS::Key')) {
      const where = this.where(entry);
      const arn = assembly.string({ 'Fn::GetAtt': [entry.logicalId, 'Arn'] }, entry.stack, where);
      this.resourcePolicies.set(arn, this.document(entry, 'KeyPolicy'));
    }
    for (const [type, arnOf] of [
      [
        'AWS::SNS::Topic',
        (entry: StackResource) =>
          assembly.string({ Ref: entry.logicalId }, entry.stack, this.where(entry)),
      ],
      [
        'AWS::SQS::Queue',
        (entry: StackResource) =>
          assembly.string(
            { 'Fn::GetAtt': [entry.logicalId, 'Arn'] },
            entry.stack,
            this.where(entry),
          ),
      ],
    ] as const) {
      for (const entry of assembly.resourcesOfType(type)) {
        const key = entry.resource.Properties?.KmsMasterKeyId;
        if (key === undefined) continue;
        this.encryptionKeys.set(arnOf(entry), assembly.string(key, entry.stack, this.where(entry)));
      }
    }
  }
}
