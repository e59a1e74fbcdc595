/**
 * Resolves the CloudFormation values of a synthesized template the way a deploy would, with
 * local stand-ins for what only exists once deployed: pseudo parameters (the emulators'
 * account), SSM parameters (resolved through the stack of the app that writes them) and
 * physical ids of resources (named resources keep their names; the rest get a stand-in id).
 * Anything it cannot resolve is an error naming where the value came from.
 */

export type CfnValue = unknown;

export interface CfnResource {
  Type: string;
  Properties?: Record<string, CfnValue>;
  Metadata?: Record<string, unknown>;
}

export interface CfnTemplate {
  Parameters?: Record<string, { Type: string; Default?: string }>;
  Resources?: Record<string, CfnResource>;
}

export interface StackTemplate {
  stackName: string;
  region: string;
  template: CfnTemplate;
}

/** The emulators' account (fauxqs answers in it), used as the deployed account's stand-in. */
export const STAND_IN_ACCOUNT = '000000000000';

export class UnresolvableValueError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnresolvableValueError';
  }
}

interface SsmWriter {
  stack: StackTemplate;
  value: CfnValue;
}

export class Resolver {
  readonly #stacks: readonly StackTemplate[];
  readonly #ssm = new Map<string, SsmWriter>();

  constructor(stacks: readonly StackTemplate[]) {
    this.#stacks = stacks;
    for (const stack of stacks) {
      for (const resource of Object.values(stack.template.Resources ?? {})) {
        const name = resource.Properties?.['Name'];
        if (resource.Type === 'AWS::SSM::Parameter' && typeof name === 'string')
          this.#ssm.set(name, { stack, value: resource.Properties?.['Value'] });
      }
    }
  }

  /** The value as a string; `where` names its origin in errors (construct path and field). */
  string(stack: StackTemplate, value: CfnValue, where: string): string {
    const resolved = this.resolve(stack, value, where);
    if (typeof resolved === 'string') return resolved;
    if (typeof resolved === 'number' || typeof resolved === 'boolean') return String(resolved);
    throw new UnresolvableValueError(`${where}: expected a string, got ${JSON.stringify(value)}`);
  }

  /** The stack that writes an SSM parameter, and the value it writes (unresolved). */
  ssmWriter(name: string): SsmWriter | undefined {
    return this.#ssm.get(name);
  }

  /** The resource a `Ref` to a template parameter of type SSM parameter ultimately names. */
  ssmParameterName(stack: StackTemplate, value: CfnValue): string | undefined {
    const ref = refOf(value);
    if (ref === undefined) return undefined;
    const parameter = stack.template.Parameters?.[ref];
    return parameter?.Type.startsWith('AWS::SSM::Parameter::Value') ? parameter.Default : undefined;
  }

  /** The resource behind a Ref or GetAtt through SSM parameters, with the stack it lives in. */
  referencedResource(
    stack: StackTemplate,
    value: CfnValue,
  ): { stack: StackTemplate; logicalId: string; resource: CfnResource } | undefined {
    const parameterName = this.ssmParameterName(stack, value);
    if (parameterName !== undefined) {
      const writer = this.#ssm.get(parameterName);
      return writer ? this.referencedResource(writer.stack, writer.value) : undefined;
    }
    const logicalId = refOf(value) ?? getAttOf(value)?.[0];
    const resource = logicalId ? stack.template.Resources?.[logicalId] : undefined;
    return logicalId && resource ? { stack, logicalId, resource } : undefined;
  }

  resolve(stack: StackTemplate, value: CfnValue, where: string): CfnValue {
    if (value === null || typeof value !== 'object') return value;
    if (Array.isArray(value)) return value.map((item) => this.resolve(stack, item, where));
    const entries = Object.entries(value as Record<string, CfnValue>);
    const [first] = entries;
    if (entries.length !== 1 || first === undefined || !isIntrinsic(first[0]))
      return Object.fromEntries(entries.map(([k, v]) => [k, this.resolve(stack, v, where)]));
    const [fn, argument] = first;
    switch (fn) {
      case 'Ref':
        return this.ref(stack, String(argument), where);
      case 'Fn::GetAtt': {
        const [logicalId, attribute] = Array.isArray(argument)
          ? argument.map(String)
          : String(argument).split('.');
        return this.getAtt(stack, logicalId ?? '', attribute ?? '', where);
      }
      case 'Fn::Join': {
        const [separator, parts] = argument as [string, CfnValue[]];
        const resolved = this.resolve(stack, parts, where) as CfnValue[];
        return resolved.map((part) => this.string(stack, part, where)).join(separator);
      }
      case 'Fn::Sub':
        return this.sub(stack, argument, where);
      case 'Fn::Select': {
        const [index, list] = argument as [CfnValue, CfnValue];
        const items = this.resolve(stack, list, where);
        if (!Array.isArray(items))
          throw new UnresolvableValueError(`${where}: Fn::Select over a non-list`);
        return items[Number(this.resolve(stack, index, where))];
      }
      case 'Fn::Split': {
        const [separator, source] = argument as [string, CfnValue];
        return this.string(stack, source, where).split(separator);
      }
      default:
        throw new UnresolvableValueError(
          `${where}: ${fn} is not something the rehearsal can resolve (${JSON.stringify(value)})`,
        );
    }
  }

  private sub(stack: StackTemplate, argument: CfnValue, where: string): string {
    const [text, variables] = Array.isArray(argument)
      ? [String(argument[0]), (argument[1] ?? {}) as Record<string, CfnValue>]
      : [String(argument), {}];
    return text.replace(/\$\{([^}!][^}]*)\}/g, (_match, name: string) => {
      if (name in variables) return this.string(stack, variables[name], where);
      const [logicalId, attribute] = name.split('.');
      return attribute === undefined
        ? this.string(stack, { Ref: logicalId }, where)
        : this.getAtt(stack, logicalId ?? '', attribute, where);
    });
  }

  private ref(stack: StackTemplate, name: string, where: string): CfnValue {
    switch (name) {
      case 'AWS::AccountId':
        return STAND_IN_ACCOUNT;
      case 'AWS::Region':
        return stack.region;
      case 'AWS::Partition':
        return 'aws';
      case 'AWS::URLSuffix':
        return 'amazonaws.com';
      case 'AWS::StackName':
        return stack.stackName;
      case 'AWS::NoValue':
        return undefined;
      default:
        break;
    }
    const parameter = stack.template.Parameters?.[name];
    if (parameter !== undefined) {
      const ssmName = parameter.Type.startsWith('AWS::SSM::Parameter::Value')
        ? parameter.Default
        : undefined;
      if (ssmName === undefined)
        throw new UnresolvableValueError(`${where}: template parameter ${name} has no value`);
      const writer = this.#ssm.get(ssmName);
      if (writer === undefined) {
        throw new UnresolvableValueError(
          `${where}: SSM parameter ${ssmName} is written by no stack of the app`,
        );
      }
      return this.resolve(writer.stack, writer.value, `${where} (through SSM ${ssmName})`);
    }
    const resource = stack.template.Resources?.[name];
    if (resource === undefined)
      throw new UnresolvableValueError(
        `${where}: Ref to ${name}, which is not in ${stack.stackName}`,
      );
    return physicalId(stack, name, resource);
  }

  private getAtt(
    stack: StackTemplate,
    logicalId: string,
    attribute: string,
    where: string,
  ): string {
    const resource = stack.template.Resources?.[logicalId];
    if (resource === undefined) {
      throw new UnresolvableValueError(
        `${where}: GetAtt of ${logicalId}, which is not in ${stack.stackName}`,
      );
    }
    const name = namedAs(resource);
    const arn = (service: string, resourcePart: string): string =>
      `arn:aws:${service}:${stack.region}:${STAND_IN_ACCOUNT}:${resourcePart}`;
    if (attribute === 'Arn' && name !== undefined) {
      switch (resource.Type) {
        case 'AWS::SQS::Queue':
          return arn('sqs', name);
        case 'AWS::DynamoDB::Table':
        case 'AWS::DynamoDB::GlobalTable':
          return arn('dynamodb', `table/${name}`);
        case 'AWS::IAM::Role':
          return `arn:aws:iam::${STAND_IN_ACCOUNT}:role/${name}`;
        default:
          break;
      }
    }
    if (attribute === 'QueueName' && name !== undefined) return name;
    return `rehearsal-${logicalId}-${attribute}`;
  }

  get stacks(): readonly StackTemplate[] {
    return this.#stacks;
  }
}

const NAME_PROPERTIES = ['QueueName', 'TopicName', 'TableName', 'RoleName', 'Name', 'ClusterName'];

function namedAs(resource: CfnResource): string | undefined {
  for (const property of NAME_PROPERTIES) {
    const value = resource.Properties?.[property];
    if (typeof value === 'string') return value;
  }
  return undefined;
}

/** What `Ref` returns for a resource, with a stand-in where the name is chosen by AWS. */
function physicalId(stack: StackTemplate, logicalId: string, resource: CfnResource): string {
  const name = namedAs(resource);
  const region = stack.region;
  const family = resource.Properties?.['Family'];
  // A task definition's Ref is the ARN of the revision the deploy registered (the first here).
  if (resource.Type === 'AWS::ECS::TaskDefinition' && typeof family === 'string')
    return `arn:aws:ecs:${region}:${STAND_IN_ACCOUNT}:task-definition/${family}:1`;
  if (name !== undefined) {
    switch (resource.Type) {
      case 'AWS::SQS::Queue':
        return `https://sqs.${region}.amazonaws.com/${STAND_IN_ACCOUNT}/${name}`;
      case 'AWS::SNS::Topic':
        return `arn:aws:sns:${region}:${STAND_IN_ACCOUNT}:${name}`;
      case 'AWS::SecretsManager::Secret':
        return `arn:aws:secretsmanager:${region}:${STAND_IN_ACCOUNT}:secret:${name}-rehrsl`;
      default:
        return name;
    }
  }
  return `rehearsal-${logicalId}`;
}

function isIntrinsic(key: string): boolean {
  return key === 'Ref' || key.startsWith('Fn::');
}

function refOf(value: CfnValue): string | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const ref = (value as Record<string, unknown>)['Ref'];
  return typeof ref === 'string' ? ref : undefined;
}

function getAttOf(value: CfnValue): string[] | undefined {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const att = (value as Record<string, unknown>)['Fn::GetAtt'];
  if (Array.isArray(att)) return att.map(String);
  return typeof att === 'string' ? att.split('.') : undefined;
}
