import type { MetricKey } from './metric-key.ts';

/** One metric of one CloudWatch embedded-metric-format line, as CloudWatch would file it. */
export interface EmittedMetric extends MetricKey {
  /** The log file it was first seen in. */
  source: string;
}

interface EmfDirective {
  Namespace?: unknown;
  Dimensions?: unknown;
  Metrics?: unknown;
}

/**
 * The metrics of every EMF line in a log (one JSON object per line; other lines, pino logs
 * among them, are skipped). A directive with several dimension sets files the metric once per
 * set, with the values taken from the line's root, as CloudWatch does.
 */
export function parseEmfLines(text: string, source: string): EmittedMetric[] {
  const metrics: EmittedMetric[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes('"_aws"')) continue;
    let entry: Record<string, unknown>;
    try {
      entry = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const aws = entry['_aws'] as { CloudWatchMetrics?: EmfDirective[] } | undefined;
    for (const directive of aws?.CloudWatchMetrics ?? []) {
      if (typeof directive.Namespace !== 'string' || !Array.isArray(directive.Metrics)) continue;
      const sets = Array.isArray(directive.Dimensions) ? (directive.Dimensions as unknown[]) : [[]];
      for (const metric of directive.Metrics as { Name?: unknown }[]) {
        if (typeof metric.Name !== 'string' || entry[metric.Name] === undefined) continue;
        for (const set of sets) {
          if (!Array.isArray(set)) continue;
          const dimensions: Record<string, string> = {};
          let complete = true;
          for (const name of set) {
            const value = entry[String(name)];
            if (typeof value !== 'string') complete = false;
            else dimensions[String(name)] = value;
          }
          // CloudWatch drops a dimension set whose values are missing from the line.
          if (!complete) continue;
          metrics.push({
            namespace: directive.Namespace,
            metricName: metric.Name,
            dimensions,
            source,
          });
        }
      }
    }
  }
  return metrics;
}
