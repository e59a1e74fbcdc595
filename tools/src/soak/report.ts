/** The soak's report: its figures and violations, built once the run is over, and printed. */
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseStopReason, type ContainerJson } from '@berth/domain';
import type { AgentChaos } from './agent-chaos.ts';
import type { Chaos } from './chaos.ts';
import { describeFault } from './chaos.ts';
import { isKnownGap, type CommandOutcome, type Violation } from './checks.ts';
import { increment, type SoakState } from './state.ts';

export interface DeadLetter {
  queue: string;
  commandId: string | undefined;
  type: string | undefined;
  receiveCount: number;
  reason: string;
}

export interface SoakFigures {
  loadMs: number;
  settleMs: number;
  commandsSent: Record<string, number>;
  duplicatesSent: number;
  /** Duplicates sent as two copies at once. */
  duplicatesAtOnce: number;
  /** Step faults the services logged (BERTH_STEP_FAULT_RATE), by kind and step. */
  stepFaultsByKind: Record<string, number>;
  commandOutcomes: Record<CommandOutcome, number>;
  httpDiscovers: Record<string, number>;
  httpStops: Record<string, number>;
  httpErrors: number;
  sessions: number;
  messagesSent: number;
  messagesUndeliverable: number;
  answersOk: number;
  answersFailed: number;
  markersVerified: number;
  /** Lines found on their branch only after their container was started again (see docs/soak.md). */
  markersRecovered: number;
  recoveryRestarts: number;
  eventsSeen: number;
  eventDuplicates: number;
  eventsByType: Record<string, number>;
  containersStarted: number;
  generationsSeen: number;
  stopReasons: Record<string, number>;
  tasksRun: number;
  crashesInjected: number;
  crashesByService: Record<string, number>;
  unexpectedServiceExits: number;
  faultWindows: number;
  faultWindowsByKind: Record<string, number>;
  /** Agent kills, runtime kills and git faults (agent-chaos.ts), by kind. */
  agentFaultsByKind: Record<string, number>;
  /** Lines found only on a reported fallback ref (the remote moved and the work did not merge). */
  markersOnFallbackRefs: number;
  deadLettered: number;
  actionErrors: number;
  violations: number;
  knownGaps: number;
}

export interface SoakReport {
  ok: boolean;
  seed: number;
  settings: {
    durationMs: number;
    users: number;
    projects: number;
    clients: number;
    crashesPerMinute: number;
    faultsPerMinute: number;
    faultLengthMs: number;
    stack: Record<string, string>;
  };
  figures: SoakFigures;
  /** Broken promises: any of these fails the run. */
  violations: Violation[];
  /** Known gaps of berth (KNOWN_GAP_KINDS): reported; they fail the run only with --strict. */
  gaps: Violation[];
  deadLetters: DeadLetter[];
  crashes: { service: string; atMs: number; restartedAfterMs: number | undefined }[];
  faultWindows: { target: string; fault: string; atMs: number; lengthMs: number | undefined }[];
  agentFaults: { kind: string; target: string; atMs: number }[];
  unexpectedExits: string[];
  /** Planned crashes and fault windows that could not be carried out safely. */
  skippedChaos: { what: string; why: string }[];
  /** A few of the errors the load met (sending, HTTP), for diagnosis; they are not violations. */
  actionErrors: string[];
  dataDir: string;
  dataKept: boolean;
}

/** The report of a run, once its stack is gone; writes it to the data directory when kept. */
export function buildReport(
  state: SoakState,
  chaos: Chaos | undefined,
  agentChaos: AgentChaos | undefined,
): SoakReport {
  const figures = state.figures;
  figures.eventsSeen = state.history.length;
  for (const event of state.history) increment(figures.eventsByType, event.type);
  figures.containersStarted = figures.eventsByType['container.created'] ?? 0;
  figures.generationsSeen = new Set(
    state.history.flatMap((e) => {
      const c = (e.payload as { container?: ContainerJson }).container;
      return c ? [`${c.containerId}#${c.generation}`] : [];
    }),
  ).size;
  for (const event of state.history) {
    if (event.type !== 'container.stopped' && event.type !== 'container.failed') continue;
    const reason = (event.payload as { container?: ContainerJson }).container?.stopReason;
    increment(figures.stopReasons, parseStopReason(reason)?.kind ?? reason ?? 'none');
  }
  const crashes = chaos?.crashes ?? [];
  figures.crashesInjected = crashes.length;
  for (const crash of crashes) increment(figures.crashesByService, crash.service);
  const windows = chaos?.windows ?? [];
  figures.faultWindows = windows.length;
  for (const window of windows)
    increment(figures.faultWindowsByKind, `${window.target}:${window.fault.kind}`);
  const agentFaults = agentChaos?.faults ?? [];
  for (const fault of agentFaults) increment(figures.agentFaultsByKind, fault.kind);
  const gaps = state.violations.filter((v) => isKnownGap(v) && !state.options.strict);
  const violations = state.violations.filter((v) => !gaps.includes(v));
  figures.violations = violations.length;
  figures.knownGaps = gaps.length;
  const ok = violations.length === 0;
  const dataDir = state.stack.dataDir;
  const dataKept = !ok || state.options.keep;
  const origin = state.loadStartedAt;
  const report: SoakReport = {
    ok,
    seed: state.options.seed,
    settings: {
      durationMs: state.options.durationMs,
      users: state.options.users,
      projects: state.options.projects,
      clients: state.options.clients,
      crashesPerMinute: state.options.crashesPerMinute,
      faultsPerMinute: state.options.faultsPerMinute,
      faultLengthMs: state.options.faultLengthMs,
      stack: state.options.stackEnv,
    },
    figures,
    violations,
    gaps,
    deadLetters: state.deadLetterList,
    crashes: crashes.map((c) => ({
      service: c.service,
      atMs: c.at - origin,
      restartedAfterMs: c.restartedAfterMs,
    })),
    faultWindows: windows.map((w) => ({
      target: w.target,
      fault: describeFault(w.fault),
      atMs: w.from - origin,
      lengthMs: w.to === undefined ? undefined : w.to - w.from,
    })),
    agentFaults: agentFaults.map((f) => ({
      kind: f.kind,
      target: f.target,
      atMs: f.at - origin,
    })),
    unexpectedExits: state.unexpectedExits,
    skippedChaos: [...(chaos?.skipped ?? []), ...(agentChaos?.skipped ?? [])],
    actionErrors: [...state.actionErrorSamples],
    dataDir,
    dataKept,
  };
  if (dataKept) {
    // For diagnosis: the whole history as it arrived, and the report.
    writeFileSync(
      join(dataDir, 'soak-events.jsonl'),
      state.history.map((e) => JSON.stringify(e)).join('\n') + '\n',
    );
    writeFileSync(join(dataDir, 'soak-report.json'), `${JSON.stringify(report, null, 2)}\n`);
  } else {
    rmSync(dataDir, { recursive: true, force: true });
  }
  return report;
}

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
    `  commands sent   ${sum(f.commandsSent)} (${table(f.commandsSent)}), plus ${f.duplicatesSent} duplicates (${f.duplicatesAtOnce} pairs at once)`,
    `  step faults     ${sum(f.stepFaultsByKind)} (${table(f.stepFaultsByKind)})`,
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
    `  known gaps      ${f.knownGaps}${f.knownGaps > 0 ? ' (lost events; see docs/soak.md; --strict fails on them)' : ''}`,
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
