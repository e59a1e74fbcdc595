import { readFile } from 'node:fs/promises';
import { basename } from 'node:path';
import { parseEmfLines, type EmittedMetric } from './emitted.ts';
import { metricKeyString } from './metric-key.ts';
import { readRequiredMetrics, type RequiredMetric } from './requirements.ts';

export type { EmittedMetric } from './emitted.ts';
export type { MetricKey } from './metric-key.ts';
export type { RequiredMetric } from './requirements.ts';
export { metricKeyString } from './metric-key.ts';
export { parseEmfLines } from './emitted.ts';
export { readRequiredMetrics } from './requirements.ts';

/** The namespace berth's services write; every other namespace is AWS's own (SQS, DynamoDB, ECS). */
export const SERVICE_NAMESPACE = 'Berth';

export interface MetricProof {
  /** Every service metric a widget or alarm reads, with its readers. */
  required: RequiredMetric[];
  /** Metrics of AWS namespaces the dashboard and alarms read: AWS emits them, not berth. */
  providedByAws: RequiredMetric[];
  /** Every distinct metric the logs carried, with the first file it appeared in. */
  emitted: EmittedMetric[];
}

export class MetricsNotProvenError extends Error {
  readonly missing: RequiredMetric[];
  readonly proof: MetricProof;

  constructor(missing: RequiredMetric[], proof: MetricProof, logFiles: string[]) {
    super(
      [
        `${missing.length} metric(s) that the dashboard or an alarm reads never appeared in the EMF output of ${logFiles.map((file) => basename(file)).join(', ') || 'no log file'}:`,
        ...missing.map(
          (metric) => `  - ${metricKeyString(metric)}, read by ${metric.readers.join('; ')}`,
        ),
      ].join('\n'),
    );
    this.name = 'MetricsNotProvenError';
    this.missing = missing;
    this.proof = proof;
  }
}

/**
 * Proves that every metric and dimension set a dashboard widget or an alarm of the synthesized
 * app reads in the services' namespace was emitted by some service: reads the cloud assembly
 * at `assemblyDir` and the services' captured stdout in `logFiles` (EMF lines; anything else is
 * skipped). Resolves with the proof; rejects with MetricsNotProvenError naming each metric,
 * its dimensions and its readers when any never appeared.
 */
export async function proveDashboardMetrics(input: {
  assemblyDir: string;
  logFiles: string[];
}): Promise<MetricProof> {
  const all = readRequiredMetrics(input.assemblyDir);
  const required = all.filter((metric) => metric.namespace === SERVICE_NAMESPACE);
  if (required.length === 0) {
    throw new Error(
      `${input.assemblyDir}: no dashboard widget or alarm reads namespace ${SERVICE_NAMESPACE}; is this berth's assembly?`,
    );
  }
  const emitted = new Map<string, EmittedMetric>();
  for (const file of input.logFiles) {
    for (const metric of parseEmfLines(await readFile(file, 'utf8'), file)) {
      const key = metricKeyString(metric);
      if (!emitted.has(key)) emitted.set(key, metric);
    }
  }
  const proof: MetricProof = {
    required,
    providedByAws: all.filter((metric) => metric.namespace !== SERVICE_NAMESPACE),
    emitted: [...emitted.values()],
  };
  const missing = required.filter((metric) => !emitted.has(metricKeyString(metric)));
  if (missing.length > 0) throw new MetricsNotProvenError(missing, proof, input.logFiles);
  return proof;
}
