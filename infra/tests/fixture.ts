import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { buildApp } from '../src/app.ts';
import type { BerthApp } from '../src/app.ts';
import type { InfraConfigOverrides } from '../src/config.ts';

const cdkJson = JSON.parse(readFileSync(new URL('../cdk.json', import.meta.url), 'utf8')) as {
  context: Record<string, unknown>;
};

export interface Synthesized extends BerthApp {
  assembly: CloudAssembly;
  outdir: string;
  template(stack: Stack): Template;
  /** The template as plain JSON, for walking every value. */
  json(stack: Stack): Record<string, unknown>;
  cleanup(): void;
}

/**
 * The app as `cdk synth` builds it (cdk.json's feature flags, cdk-nag, asset staging), with
 * a clean environment so that the machine's variables cannot change it.
 */
export function synthesize(berth?: InfraConfigOverrides): Synthesized {
  const outdir = mkdtempSync(join(tmpdir(), 'berth-cdk-'));
  const context = { ...cdkJson.context, ...(berth === undefined ? {} : { berth }) };
  // The built-in CloudFormation schema validation loads a WASM engine that costs more than
  // the synth itself; app.test.ts runs it once, in the CLI-style synth. cdk-nag runs here.
  const built = buildApp({
    appProps: { outdir, context, builtinCloudFormationValidation: false },
    env: {},
  });
  const assembly = built.app.synth();
  const templates = new Map<Stack, Template>();
  const template = (stack: Stack): Template => {
    let found = templates.get(stack);
    if (found === undefined) {
      found = Template.fromStack(stack);
      templates.set(stack, found);
    }
    return found;
  };
  return {
    ...built,
    assembly,
    outdir,
    template,
    json: (stack) => template(stack).toJSON(),
    cleanup: () => rmSync(outdir, { recursive: true, force: true }),
  };
}

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** A resolved CloudFormation value as text: `{"Ref": X}` becomes `<X>`, joins are joined. */
export function render(value: unknown): string {
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) return value.map(render).join(',');
  if (typeof value === 'object' && value !== null) {
    const node = value as Record<string, unknown>;
    if ('Ref' in node) return `<${String(node['Ref'])}>`;
    if ('Fn::GetAtt' in node) return `<${(node['Fn::GetAtt'] as string[]).join('.')}>`;
    if ('Fn::Join' in node) {
      const [separator, parts] = node['Fn::Join'] as [string, unknown[]];
      return parts.map(render).join(separator);
    }
  }
  return JSON.stringify(value);
}

export function asList<T>(value: T | T[] | undefined): T[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** Like render, but keeps objects and arrays: only the intrinsic functions become text. */
export function renderDeep(value: unknown): Json {
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    const node = value as Record<string, unknown>;
    if ('Ref' in node || 'Fn::GetAtt' in node || 'Fn::Join' in node) return render(node);
    return Object.fromEntries(Object.entries(node).map(([key, inner]) => [key, renderDeep(inner)]));
  }
  if (Array.isArray(value)) return value.map(renderDeep);
  return value as Json;
}

export interface RenderedStatement {
  Sid: string | undefined;
  Effect: string;
  Action: string[];
  Resource: string[];
  Condition?: Json;
}

/** Policy statements with actions and resources as lists of text, conditions rendered. */
export function renderStatements(statements: unknown[]): RenderedStatement[] {
  return statements.map((raw) => {
    const s = raw as Record<string, unknown>;
    return {
      Sid: s['Sid'] as string | undefined,
      Effect: s['Effect'] as string,
      Action: asList(s['Action'] as string | string[]),
      Resource: asList(s['Resource']).map(render),
      ...(s['Condition'] === undefined ? {} : { Condition: renderDeep(s['Condition']) }),
    };
  });
}

/** Every resource of a type, with its logical id. */
export function resourcesOf(template: Template, type: string): [string, Record<string, unknown>][] {
  return Object.entries(template.findResources(type)).map(([id, resource]) => [
    id,
    (resource as { Properties?: Record<string, unknown> }).Properties ?? {},
  ]);
}

/** The `<ParameterId>` of the SSM-backed template parameter that reads `name`. */
export function ssmParameter(template: Template, name: string): string {
  const parameters = template.toJSON()['Parameters'] as Record<string, { Default?: string }>;
  const found = Object.entries(parameters).find(([, parameter]) => parameter.Default === name);
  if (found === undefined) throw new Error(`no parameter reads ${name}`);
  return `<${found[0]}>`;
}
