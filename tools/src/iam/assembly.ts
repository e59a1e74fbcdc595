/**
 * Reads a synthesized cloud assembly (cdk.out) and resolves the CloudFormation values the
 * IAM proof needs (policy documents, role and resource ARNs) for one account: pseudo
 * parameters, SSM parameters published by another stack of the assembly, Ref, Fn::GetAtt,
 * Fn::Join, Fn::Sub, Fn::Select and Fn::Split. A value it cannot resolve is an error naming
 * the construct path, never a guess.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
  Metadata?: Record<string, unknown>;
}

interface Template {
  Parameters?: Record<string, { Type: string; Default?: string }>;
  Resources?: Record<string, CfnResource>;
}

export interface StackResource {
  stack: StackTemplate;
  logicalId: string;
  resource: CfnResource;
}

export class AssemblyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AssemblyError';
  }
}

export class StackTemplate {
  readonly name: string;
  readonly region: string;
  readonly template: Template;

  constructor(name: string, region: string, template: Template) {
    this.name = name;
    this.region = region;
    this.template = template;
  }

  resources(): StackResource[] {
    return Object.entries(this.template.Resources ?? {}).map(([logicalId, resource]) => ({
      stack: this,
      logicalId,
      resource,
    }));
  }

  resource(logicalId: string): StackResource | undefined {
    const resource = this.template.Resources?.[logicalId];
    return resource ? { stack: this, logicalId, resource } : undefined;
  }

  /** The construct path CDK records for a resource, for error messages. */
  pathOf(logicalId: string): string {
    const path = this.template.Resources?.[logicalId]?.Metadata?.['aws:cdk:path'];
    return typeof path === 'string' ? path : `${this.name}/${logicalId}`;
  }
}

interface Manifest {
  artifacts?: Record<
    string,
    { type: string; environment?: string; properties?: { templateFile?: string } }
  >;
}

/** Resource types whose physical name is a property; others get `<stack>-<logicalId>`. */
const NAME_PROPERTIES: Readonly<Record<string, string>> = {
  'AWS::SQS::Queue': 'QueueName',
  'AWS::SNS::Topic': 'TopicName',
  'AWS::DynamoDB::Table': 'TableName',
  'AWS::IAM::Role': 'RoleName',
  'AWS::IAM::ManagedPolicy': 'ManagedPolicyName',
  'AWS::ECS::Cluster': 'ClusterName',
  'AWS::ECS::TaskDefinition': 'Family',
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::Events::Rule': 'Name',
  'AWS::SecretsManager::Secret': 'Name',
};

const PSEUDO_PARAMETERS = new Set([
  'AWS::Partition',
  'AWS::AccountId',
  'AWS::Region',
  'AWS::URLSuffix',
  'AWS::StackName',
  'AWS::NoValue',
]);

export class CloudAssembly {
  readonly stacks: StackTemplate[];
  readonly account: string;
  readonly partition = 'aws';

  private constructor(stacks: StackTemplate[], account: string) {
    this.stacks = stacks;
    this.account = account;
  }

  /** Every CloudFormation stack of the assembly in `dir`, resolved for `account`. */
  static read(dir: string, account: string): CloudAssembly {
    let manifest: Manifest;
    try {
      manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Manifest;
    } catch (error) {
      throw new AssemblyError(
        `${dir} is not a cloud assembly (no readable manifest.json): ${String(error)}`,
      );
    }
    const stacks: StackTemplate[] = [];
    for (const [name, artifact] of Object.entries(manifest.artifacts ?? {})) {
      if (artifact.type !== 'aws:cloudformation:stack') continue;
      const region = /^aws:\/\/[^/]+\/(.+)$/.exec(artifact.environment ?? '')?.[1];
      if (!region || region === 'unknown-region') {
        throw new AssemblyError(`stack ${name} is not bound to a region (${artifact.environment})`);
      }
      const file = artifact.properties?.templateFile ?? `${name}.template.json`;
      stacks.push(
        new StackTemplate(
          name,
          region,
          JSON.parse(readFileSync(join(dir, file), 'utf8')) as Template,
        ),
      );
    }
    if (stacks.length === 0) throw new AssemblyError(`${dir} holds no CloudFormation stack`);
    // Nested assemblies (stages) are not used by berth; refuse them rather than miss stacks.
    if (readdirSync(dir).some((entry) => entry.startsWith('assembly-'))) {
      throw new AssemblyError(
        `${dir} has nested assemblies (stages), which the proof does not read`,
      );
    }
    return new CloudAssembly(stacks, account);
  }

  /** Every resource of a type across the assembly. */
  resourcesOfType(type: string): StackResource[] {
    return this.stacks.flatMap((stack) =>
      stack.resources().filter((entry) => entry.resource.Type === type),
    );
  }

  /** A value resolved to a string. */
  string(value: unknown, stack: StackTemplate, where: string): string {
    const resolved = this.resolve(value, stack, where);
    if (typeof resolved !== 'string') {
      throw new AssemblyError(`${where}: expected a string, found ${JSON.stringify(resolved)}`);
    }
    return resolved;
  }

  /** Resolves every intrinsic inside a value (a policy document, a property). */
  resolve(value: unknown, stack: StackTemplate, where: string): unknown {
    if (Array.isArray(value)) return value.map((item) => this.resolve(item, stack, where));
    if (value === null || typeof value !== 'object') return value;
    const entries = Object.entries(value as Record<string, unknown>);
    const [key, argument] = entries[0] ?? [];
    if (entries.length === 1 && key !== undefined && (key === 'Ref' || key.startsWith('Fn::'))) {
      return this.intrinsic(key, argument, stack, where);
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, this.resolve(v, stack, where)]));
  }

  private intrinsic(name: string, argument: unknown, stack: StackTemplate, where: string): unknown {
    switch (name) {
      case 'Ref':
        return this.ref(String(argument), stack, where);
      case 'Fn::GetAtt': {
        const [logicalId, attribute] = Array.isArray(argument)
          ? (argument as string[])
          : String(argument).split('.');
        return this.getAtt(String(logicalId), String(attribute), stack, where);
      }
      case 'Fn::Join': {
        const [separator, items] = argument as [string, unknown[]];
        const resolved = this.resolve(items, stack, where) as unknown[];
        return resolved.map((item) => String(item)).join(separator);
      }
      case 'Fn::Sub': {
        const [text, variables] = Array.isArray(argument)
          ? (argument as [string, Record<string, unknown>])
          : [String(argument), {}];
        return text.replace(/\$\{([^}]+)\}/g, (_match, variable: string) => {
          if (variable in variables) return this.string(variables[variable], stack, where);
          const [logicalId, attribute] = variable.split('.');
          return attribute === undefined
            ? String(this.ref(variable, stack, where))
            : String(this.getAtt(logicalId ?? '', attribute, stack, where));
        });
      }
      case 'Fn::Select': {
        const [index, list] = argument as [number, unknown];
        const resolved = this.resolve(list, stack, where);
        if (!Array.isArray(resolved)) throw new AssemblyError(`${where}: Fn::Select of a non-list`);
        return resolved[Number(index)];
      }
      case 'Fn::Split': {
        const [separator, text] = argument as [string, unknown];
        return this.string(text, stack, where).split(separator);
      }
      default:
        throw new AssemblyError(`${where}: ${name} is not supported by the IAM proof`);
    }
  }

  private ref(name: string, stack: StackTemplate, where: string): unknown {
    if (PSEUDO_PARAMETERS.has(name)) {
      switch (name) {
        case 'AWS::Partition':
          return this.partition;
        case 'AWS::AccountId':
          return this.account;
        case 'AWS::Region':
          return stack.region;
        case 'AWS::URLSuffix':
          return 'amazonaws.com';
        case 'AWS::StackName':
          return stack.name;
        default:
          return undefined;
      }
    }
    const parameter = stack.template.Parameters?.[name];
    if (parameter) {
      if (parameter.Type.startsWith('AWS::SSM::Parameter::Value') && parameter.Default) {
        return this.ssmParameter(parameter.Default, `${where} (parameter ${name})`);
      }
      if (parameter.Default !== undefined) return parameter.Default;
      throw new AssemblyError(`${where}: parameter ${name} of ${stack.name} has no value`);
    }
    const entry = stack.resource(name);
    if (!entry) throw new AssemblyError(`${where}: ${stack.name} has no resource ${name}`);
    return this.physicalRef(entry);
  }

  /** The value of an SSM parameter that some stack of the assembly creates. */
  private ssmParameter(parameterName: string, where: string): unknown {
    const owner = this.resourcesOfType('AWS::SSM::Parameter').find(
      (entry) => entry.resource.Properties?.Name === parameterName,
    );
    if (!owner) {
      throw new AssemblyError(
        `${where}: SSM parameter ${parameterName} is created by no stack of the assembly`,
      );
    }
    return this.resolve(
      owner.resource.Properties?.Value,
      owner.stack,
      owner.stack.pathOf(owner.logicalId),
    );
  }

  physicalName(entry: StackResource): string {
    const property = NAME_PROPERTIES[entry.resource.Type];
    const named = property ? entry.resource.Properties?.[property] : undefined;
    if (named !== undefined) {
      return this.string(named, entry.stack, entry.stack.pathOf(entry.logicalId));
    }
    return `${entry.stack.name}-${entry.logicalId}`;
  }

  private arn(stack: StackTemplate, service: string, resource: string, global = false): string {
    return `arn:${this.partition}:${service}:${global ? '' : stack.region}:${this.account}:${resource}`;
  }

  private physicalRef(entry: StackResource): string {
    const { stack } = entry;
    const name = this.physicalName(entry);
    switch (entry.resource.Type) {
      case 'AWS::SQS::Queue':
        return `https://sqs.${stack.region}.amazonaws.com/${this.account}/${name}`;
      case 'AWS::SNS::Topic':
        return this.arn(stack, 'sns', name);
      case 'AWS::IAM::ManagedPolicy':
        return this.arn(stack, 'iam', `policy/${name}`, true);
      case 'AWS::ECS::TaskDefinition':
        return this.arn(stack, 'ecs', `task-definition/${name}:1`);
      default:
        return name;
    }
  }

  private getAtt(
    logicalId: string,
    attribute: string,
    stack: StackTemplate,
    where: string,
  ): unknown {
    const entry = stack.resource(logicalId);
    if (!entry) throw new AssemblyError(`${where}: ${stack.name} has no resource ${logicalId}`);
    const name = this.physicalName(entry);
    const type = entry.resource.Type;
    const key = `${type}.${attribute}`;
    switch (key) {
      case 'AWS::IAM::Role.Arn':
        return this.arn(stack, 'iam', `role/${name}`, true);
      case 'AWS::SQS::Queue.Arn':
        return this.arn(stack, 'sqs', name);
      case 'AWS::SQS::Queue.QueueName':
        return name;
      case 'AWS::SNS::Topic.TopicArn':
        return this.arn(stack, 'sns', name);
      case 'AWS::DynamoDB::Table.Arn':
        return this.arn(stack, 'dynamodb', `table/${name}`);
      case 'AWS::KMS::Key.Arn':
        return this.arn(stack, 'kms', `key/${name}`);
      case 'AWS::ECS::Cluster.Arn':
        return this.arn(stack, 'ecs', `cluster/${name}`);
      case 'AWS::Logs::LogGroup.Arn':
        return this.arn(stack, 'logs', `log-group:${name}:*`);
      case 'AWS::Events::Rule.Arn':
        return this.arn(stack, 'events', `rule/${name}`);
      case 'AWS::SecretsManager::Secret.Id':
        return this.arn(stack, 'secretsmanager', `secret:${name}`);
      case 'AWS::EFS::FileSystem.Arn':
        return this.arn(stack, 'elasticfilesystem', `file-system/${name}`);
      case 'AWS::EFS::AccessPoint.Arn':
        return this.arn(stack, 'elasticfilesystem', `access-point/${name}`);
      default:
        throw new AssemblyError(
          `${where}: Fn::GetAtt ${attribute} of ${stack.pathOf(logicalId)} (${type}) is not supported by the IAM proof`,
        );
    }
  }
}
