import type { SoakReport } from './driver.ts';

function table(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0
    ? 'none'
    : entries.map(([key, value]) => `${key} ${value}`).join(', ');
}

function sum(counts: Record<string, number>): number {
  return Object.values(counts).reduce((a, b) => a + b, 0);
}

/** The figures and every violation, as the lines `npm run soak` prints. */
export function formatReport(report: SoakReport): string[] {
  const f = report.figures;
  const s = report.settings;
  const lines = [
    '',
    `soak ${report.ok ? 'PASSED' : 'FAILED'} (seed ${report.seed})`,
    `  load            ${Math.round(f.loadMs / 1000)} s, ${s.users} users, ${s.clients} clients x ${s.projects} projects; settle ${Math.round(f.settleMs / 1000)} s`,
    `  commands sent   ${sum(f.commandsSent)} (${table(f.commandsSent)}), plus ${f.duplicatesSent} duplicates`,
    `  outcomes        ${table(f.commandOutcomes)}`,
    `  sessions        ${f.sessions}`,
    `  HTTP            discover ${table(f.httpDiscovers)}; stop ${table(f.httpStops)}; connection errors ${f.httpErrors}`,
    `  messages        ${f.messagesSent} sent, ${f.answersOk} answered with exit 0, ${f.answersFailed} with another code, ${f.messagesUndeliverable} undeliverable (queue gone); ${f.markersVerified} lines found in their branches${f.recoveryRestarts > 0 ? ` (${f.markersRecovered} of them only after ${f.recoveryRestarts} containers that stopped uncleanly were started again)` : ''}`,
    `  events seen     ${f.eventsSeen} (${f.eventDuplicates} duplicate deliveries dropped)`,
    `  containers      ${f.containersStarted} started, ${f.generationsSeen} generations seen, ${f.tasksRun} agent processes`,
    `  stop reasons    ${table(f.stopReasons)}`,
    `  crashes         ${f.crashesInjected} SIGKILLs (${table(f.crashesByService)}); ${f.unexpectedServiceExits} other service exits`,
    `  fault windows   ${f.faultWindows} (${table(f.faultWindowsByKind)})`,
    `  agent faults    ${sum(f.agentFaultsByKind)} (${table(f.agentFaultsByKind)}); ${f.markersOnFallbackRefs} lines found only on reported fallback refs`,
    `  dead letters    ${f.deadLettered}`,
    `  action errors   ${f.actionErrors}`,
    `  violations      ${f.violations}`,
    `  known gaps      ${f.knownGaps}${f.knownGaps > 0 ? ' (lost events / overlapping tasks; see docs/soak.md; --strict fails on them)' : ''}`,
  ];
  for (const letter of report.deadLetters) {
    lines.push(
      `    dead letter on ${letter.queue}: ${letter.type ?? '?'} ${letter.commandId ?? ''} after ${letter.receiveCount} receives: ${letter.reason}`,
    );
  }
  for (const exit of report.unexpectedExits) lines.push(`    ${exit}`);
  for (const skipped of report.skippedChaos)
    lines.push(`    skipped: ${skipped.what} (${skipped.why})`);
  for (const error of report.actionErrors) lines.push(`    action error: ${error}`);
  for (const [title, list] of [
    ['violation', report.violations],
    ['known gap', report.gaps],
  ] as const) {
    const shown = list.slice(0, 40);
    for (const item of shown)
      lines.push(`    ${title} [${item.kind}] ${item.subject}: ${item.detail}`);
    if (list.length > shown.length)
      lines.push(`    ... and ${list.length - shown.length} more ${title}s`);
  }
  lines.push(report.dataKept ? `  data kept in ${report.dataDir}` : '  data directory removed');
  return lines;
}
