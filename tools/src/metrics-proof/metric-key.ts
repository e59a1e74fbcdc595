/**
 * A CloudWatch metric's identity: namespace, name and the exact set of dimensions. A metric
 * emitted with another dimension set is another metric to CloudWatch, so the proof compares
 * all three.
 */
export interface MetricKey {
  namespace: string;
  metricName: string;
  dimensions: Readonly<Record<string, string>>;
}

export function metricKeyString(key: MetricKey): string {
  const dimensions = Object.entries(key.dimensions)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, value]) => `${name}=${value}`)
    .join(',');
  return `${key.namespace}/${key.metricName}{${dimensions}}`;
}
