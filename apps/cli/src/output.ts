import type { ContainerJson, SessionJson } from '@berth/domain';

export interface Output {
  json: boolean;
  print(value: unknown, human: () => string): void;
}

export function output(json: boolean): Output {
  return {
    json,
    print(value, human) {
      process.stdout.write(json ? `${JSON.stringify(value, null, 2)}\n` : `${human()}\n`);
    },
  };
}

const since = (iso: string | null): string => {
  if (!iso) return '-';
  const seconds = Math.round((Date.now() - Date.parse(iso)) / 1000);
  if (seconds < 120) return `${seconds}s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)}m ago`;
  return `${Math.round(seconds / 3600)}h ago`;
};

export function containerLines(container: ContainerJson): string {
  const rows: [string, string][] = [
    ['container', `${container.containerId} (generation ${container.generation})`],
    ['status', container.status + (container.stopReason ? ` (${container.stopReason})` : '')],
    [
      'sessions',
      `${container.sessionCount}${container.sessions.length ? `: ${container.sessions.join(', ')}` : ''}`,
    ],
    ['kept alive by', container.keptAliveBy.length ? container.keptAliveBy.join(', ') : 'nothing'],
    ['idle since', since(container.idleSince)],
    ['stops at', container.idleStopAt ?? '-'],
    ['workspace', container.workspacePath ?? '-'],
    ['input queue', container.inputQueueUrl ?? '-'],
    ['output queue', container.outputQueueUrl ?? '-'],
    ['task', container.taskArn ?? '-'],
    ['created', `${container.createdAt} (${since(container.createdAt)})`],
  ];
  return rows.map(([k, v]) => `${k.padEnd(14)}${v}`).join('\n');
}

export function table(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

export function containerRow(c: ContainerJson): string[] {
  return [
    c.containerId,
    c.status,
    String(c.generation),
    String(c.sessionCount),
    c.keptAliveBy.join(',') || '-',
    since(c.idleSince),
    c.stopReason ?? '',
  ];
}

export const CONTAINER_HEADERS = [
  'CONTAINER',
  'STATUS',
  'GEN',
  'SESSIONS',
  'KEPT ALIVE BY',
  'IDLE SINCE',
  'STOP REASON',
];

export function sessionRow(s: SessionJson): string[] {
  return [
    s.sessionId,
    s.status,
    s.containerId ?? '-',
    s.threadId ?? '-',
    since(s.lastActivityAt),
    s.worktreePath ?? '-',
  ];
}

export const SESSION_HEADERS = [
  'SESSION',
  'STATUS',
  'CONTAINER',
  'THREAD',
  'LAST ACTIVITY',
  'WORKTREE',
];
