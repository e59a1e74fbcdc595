import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MetricKey } from './metric-key.ts';

/** A metric some dashboard widget or alarm of the synthesized app reads. */
export interface RequiredMetric extends MetricKey {
  /** Who reads it: `dashboard <name>, widget "<title>"` or `alarm <name>`. */
  readers: string[];
}

interface Manifest {
  artifacts?: Record<string, { type: string; properties?: { templateFile?: string } }>;
}

interface Resource {
  Type: string;
  Properties?: Record<string, unknown>;
}

interface MetricStatJson {
  Metric?: {
    Namespace?: string;
    MetricName?: string;
    Dimensions?: { Name: string; Value: unknown }[];
  };
}

/** A CloudFormation value as text: intrinsic functions (a Ref, a GetAtt) become `<token>`. */
function renderText(value: unknown): string {
  if (typeof value === 'string') return value;
  if (value !== null && typeof value === 'object' && 'Fn::Join' in value) {
    const [separator, parts] = (value as { 'Fn::Join': [string, unknown[]] })['Fn::Join'];
    return parts.map(renderText).join(separator);
  }
  return '<token>';
}

function dimensionsOf(
  list: { Name: string; Value: unknown }[] | undefined,
): Record<string, string> {
  return Object.fromEntries((list ?? []).map(({ Name, Value }) => [Name, renderText(Value)]));
}

/**
 * The metric rows of a graph widget: `[namespace, name, dimName, dimValue, ..., {options}]`,
 * where `"."` repeats the row above (CloudWatch's shorthand); expression rows have no metric.
 */
function widgetMetrics(rows: unknown[]): MetricKey[] {
  const keys: MetricKey[] = [];
  let previous: unknown[] = [];
  for (const row of rows) {
    if (!Array.isArray(row)) continue;
    const fields = row.filter((field) => typeof field === 'string');
    if (fields.length < 2) continue;
    const resolved = fields.map((field, index) => (field === '.' ? previous[index] : field));
    previous = resolved;
    const [namespace, metricName, ...pairs] = resolved as string[];
    const dimensions: Record<string, string> = {};
    for (let index = 0; index + 1 < pairs.length; index += 2)
      dimensions[pairs[index]!] = pairs[index + 1]!;
    keys.push({ namespace: namespace!, metricName: metricName!, dimensions });
  }
  return keys;
}

function alarmMetrics(properties: Record<string, unknown>): MetricKey[] {
  if (typeof properties['MetricName'] === 'string') {
    return [
      {
        namespace: renderText(properties['Namespace']),
        metricName: properties['MetricName'],
        dimensions: dimensionsOf(properties['Dimensions'] as never),
      },
    ];
  }
  const queries = (properties['Metrics'] ?? []) as { MetricStat?: MetricStatJson }[];
  return queries.flatMap(({ MetricStat }) =>
    MetricStat?.Metric?.MetricName === undefined
      ? []
      : [
          {
            namespace: renderText(MetricStat.Metric.Namespace),
            metricName: MetricStat.Metric.MetricName,
            dimensions: dimensionsOf(MetricStat.Metric.Dimensions),
          },
        ],
  );
}

/**
 * Every metric that a dashboard widget or an alarm of any stack of the cloud assembly reads,
 * merged by metric with the list of its readers.
 */
export function readRequiredMetrics(assemblyDir: string): RequiredMetric[] {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(readFileSync(join(assemblyDir, 'manifest.json'), 'utf8')) as Manifest;
  } catch (error) {
    throw new Error(
      `${assemblyDir} is not a synthesized cloud assembly (no readable manifest.json): ${(error as Error).message}`,
      { cause: error },
    );
  }
  const byKey = new Map<string, RequiredMetric>();
  const add = (key: MetricKey, reader: string): void => {
    const id = JSON.stringify([
      key.namespace,
      key.metricName,
      Object.entries(key.dimensions).sort(),
    ]);
    const known = byKey.get(id);
    if (known === undefined) byKey.set(id, { ...key, readers: [reader] });
    else if (!known.readers.includes(reader)) known.readers.push(reader);
  };
  for (const [stackName, artifact] of Object.entries(manifest.artifacts ?? {})) {
    const templateFile = artifact.properties?.templateFile;
    if (artifact.type !== 'aws:cloudformation:stack' || templateFile === undefined) continue;
    const template = JSON.parse(readFileSync(join(assemblyDir, templateFile), 'utf8')) as {
      Resources?: Record<string, Resource>;
    };
    for (const [logicalId, resource] of Object.entries(template.Resources ?? {})) {
      const properties = resource.Properties ?? {};
      if (resource.Type === 'AWS::CloudWatch::Alarm') {
        const name = renderText(properties['AlarmName'] ?? `${stackName}/${logicalId}`);
        for (const key of alarmMetrics(properties)) add(key, `alarm ${name}`);
      } else if (resource.Type === 'AWS::CloudWatch::Dashboard') {
        const name = renderText(properties['DashboardName'] ?? `${stackName}/${logicalId}`);
        const body = JSON.parse(renderText(properties['DashboardBody'])) as {
          widgets?: { type: string; properties?: { title?: string; metrics?: unknown[] } }[];
        };
        for (const widget of body.widgets ?? []) {
          if (widget.type !== 'metric') continue;
          const title = widget.properties?.title ?? '(untitled)';
          for (const key of widgetMetrics(widget.properties?.metrics ?? []))
            add(key, `dashboard ${name}, widget "${title}"`);
        }
      }
    }
  }
  return [...byKey.values()];
}
