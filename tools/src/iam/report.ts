import type { IamReport } from './prove.ts';

/** The report as text: denied calls first (each with what is missing), then unused grants. */
export function formatIamReport(report: IamReport): string {
  const lines: string[] = [];
  for (const service of report.services) {
    lines.push(
      `${service.service}: ${service.calls} calls, ${service.checks} distinct authorizations (${service.roleArn})`,
    );
  }
  if (report.unmapped.length > 0) {
    lines.push('', 'Calls the recorder has no IAM mapping for (nothing can be proven about them):');
    for (const entry of report.unmapped) {
      lines.push(`  ${entry.service}: ${entry.operation} (${entry.count}x)`);
    }
  }
  if (report.denied.length > 0) {
    lines.push('', 'DENIED:');
    for (const call of report.denied) {
      lines.push(
        `  ${call.service}: ${call.action} on ${call.resource} (${call.decision}; from ${call.operations.join(', ')}${call.impliedBy ? `; ${call.impliedBy}` : ''})`,
        `    ${call.reason}`,
      );
      if (call.context && Object.keys(call.context).length > 0) {
        lines.push(`    context: ${JSON.stringify(call.context)}`);
      }
      if (call.missingStatement) {
        lines.push(`    missing statement: ${JSON.stringify(call.missingStatement)}`);
      }
    }
  }
  if (report.unused.length > 0) {
    lines.push('', 'Granted but used by no recorded call:');
    for (const grant of report.unused) {
      lines.push(
        `  ${grant.service}: ${grant.action} (${grant.sid ?? 'no Sid'}) on ${grant.resources.join(', ')}`,
      );
    }
  }
  lines.push(
    '',
    report.ok
      ? `IAM proof: every recorded call is allowed (${report.unused.length} granted actions unused)`
      : `IAM proof FAILED: ${report.denied.length} denied, ${report.unmapped.length} unmapped`,
  );
  return lines.join('\n');
}
