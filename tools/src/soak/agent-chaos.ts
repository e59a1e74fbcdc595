/**
 * The soak test's troublemaker beyond the services: SIGKILLs of workspace agents (at any
 * moment, or while they save), of the local runtime, and git faults on the project
 * repositories and workspaces (a remote that moved under a thread branch, a stale lock left
 * in a worktree, a remote that refuses pushes for a while).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { chmod } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import type { Random } from './random.ts';

const execFileAsync = promisify(execFile);

export const AGENT_FAULT_KINDS = [
  'kill-agent',
  'kill-agent-saving',
  'kill-runtime',
  'remote-moved',
  'stale-lock',
  'refuse-pushes',
] as const;
export type AgentFaultKind = (typeof AGENT_FAULT_KINDS)[number];

export interface AgentFaultRecord {
  kind: AgentFaultKind;
  at: number;
  /** What it hit: a containerId and generation, a repository, a lock file. */
  target: string;
}

export interface AgentChaosOptions {
  durationMs: number;
  faultsPerMinute: number;
  kinds: readonly AgentFaultKind[];
  /** How long a remote refuses pushes. */
  refuseMs: number;
}

export interface AgentChaosPlanItem {
  atMs: number;
  kind: AgentFaultKind;
}

/** How long a kill during a save waits for some agent to start saving before it is skipped. */
const SAVE_WAIT_MS = 30_000;
/** How long a git fault waits for something to act on (a pushed branch, a worktree). */
const TARGET_WAIT_MS = 30_000;
const AGENT_ENTRY = 'apps/workspace-agent/src/main.ts';

/** Evenly spread with jitter, the kinds in turn in an order drawn from the seed. */
export function planAgentChaos(options: AgentChaosOptions, random: Random): AgentChaosPlanItem[] {
  if (options.faultsPerMinute <= 0 || options.kinds.length === 0) return [];
  const count = Math.max(1, Math.round((options.faultsPerMinute * options.durationMs) / 60_000));
  const kinds = [...options.kinds];
  for (let i = kinds.length - 1; i > 0; i -= 1) {
    const j = random.int(0, i);
    const [a, b] = [kinds[i], kinds[j]];
    if (a && b) [kinds[i], kinds[j]] = [b, a];
  }
  const slot = options.durationMs / count;
  return Array.from({ length: count }, (_, i) => ({
    atMs: Math.round(slot * (i + 0.5 + (random.next() - 0.5) * 0.3)),
    kind: kinds[i % kinds.length] ?? 'kill-agent',
  }));
}

interface AgentProcessInfo {
  pid: number;
  containerId: string;
  generation: string;
}

/** Workspace agents alive now, from /proc: their pid, containerId and generation. */
function liveAgents(): AgentProcessInfo[] {
  const agents: AgentProcessInfo[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const commandLine = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      if (!commandLine.includes(AGENT_ENTRY)) continue;
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      const value = (name: string): string | undefined =>
        environ.find((v) => v.startsWith(`${name}=`))?.slice(name.length + 1);
      const containerId = value('CONTAINER_ID');
      if (!containerId) continue;
      agents.push({
        pid: Number(entry),
        containerId,
        generation: value('BERTH_GENERATION') ?? '?',
      });
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return agents;
}

function git(gitDir: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('git', ['--git-dir', gitDir, ...args], (error, stdout) => {
      if (error) reject(new Error(`git ${args[0] ?? ''} failed: ${error.message}`));
      else resolve(stdout);
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

export class AgentChaos {
  readonly faults: AgentFaultRecord[] = [];
  readonly skipped: { what: string; why: string }[] = [];
  readonly #dataDir: string;
  readonly #random: Random;
  readonly #log: (line: string) => void;
  readonly #refuseMs: number;
  readonly #abort = new AbortController();
  readonly #pending = new Set<Promise<void>>();
  #counter = 0;

  constructor(options: {
    dataDir: string;
    random: Random;
    refuseMs: number;
    log: (line: string) => void;
  }) {
    this.#dataDir = options.dataDir;
    this.#random = options.random;
    this.#refuseMs = options.refuseMs;
    this.#log = options.log;
  }

  async run(plan: readonly AgentChaosPlanItem[], startedAt: number): Promise<void> {
    const signal = this.#abort.signal;
    for (const item of plan) {
      const wait = startedAt + item.atMs - Date.now();
      if (wait > 0) await delay(wait, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) break;
      await this.#act(item.kind).catch((error: unknown) =>
        this.skipped.push({ what: item.kind, why: `failed: ${String(error)}` }),
      );
    }
  }

  /** Ends the plan; a remote refusing pushes accepts them again. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await Promise.all(this.#pending);
  }

  #record(kind: AgentFaultKind, target: string): void {
    this.faults.push({ kind, at: Date.now(), target });
    this.#log(`agent fault: ${kind} ${target}`);
  }

  async #act(kind: AgentFaultKind): Promise<void> {
    switch (kind) {
      case 'kill-agent':
        return this.#killAgent(this.#random.pick(liveAgents()), kind);
      case 'kill-agent-saving':
        return this.#killSavingAgent();
      case 'kill-runtime':
        return this.#killRuntime();
      case 'remote-moved':
        return this.#whenThere(kind, 'no thread branch was pushed', () => this.#moveRemote());
      case 'stale-lock':
        return this.#whenThere(kind, 'no worktree', () => Promise.resolve(this.#leaveLock()));
      case 'refuse-pushes':
        return this.#whenThere(kind, 'no repository', () => this.#refusePushes());
    }
  }

  /** Tries `act` until it finds its target (early in a run there may be none yet). */
  async #whenThere(
    kind: AgentFaultKind,
    missing: string,
    act: () => Promise<boolean>,
  ): Promise<void> {
    const signal = this.#abort.signal;
    const deadline = Date.now() + TARGET_WAIT_MS;
    while (!signal.aborted && Date.now() < deadline) {
      if (await act()) return;
      await delay(1000, undefined, { signal }).catch(() => undefined);
    }
    this.skipped.push({ what: kind, why: `${missing} within ${TARGET_WAIT_MS} ms` });
  }

  #killAgent(agent: AgentProcessInfo | undefined, kind: AgentFaultKind): void {
    if (!agent) {
      this.skipped.push({ what: kind, why: 'no workspace agent was running' });
      return;
    }
    try {
      process.kill(agent.pid, 'SIGKILL');
    } catch {
      this.skipped.push({ what: kind, why: 'the agent exited first' });
      return;
    }
    this.#record(kind, `${agent.containerId}#${agent.generation} (pid ${agent.pid})`);
  }

  /** An agent that has begun its stop (it logged so) and not yet exited: it is saving. */
  async #killSavingAgent(): Promise<void> {
    const signal = this.#abort.signal;
    const deadline = Date.now() + SAVE_WAIT_MS;
    while (!signal.aborted && Date.now() < deadline) {
      const saving = liveAgents().filter((agent) => {
        try {
          const log = readFileSync(
            join(this.#dataDir, 'logs', `${agent.containerId}.g${agent.generation}.log`),
            'utf8',
          );
          return log.includes('"msg":"stopping: ');
        } catch {
          return false;
        }
      });
      const chosen = this.#random.pick(saving);
      if (chosen) return this.#killAgent(chosen, 'kill-agent-saving');
      await delay(100, undefined, { signal }).catch(() => undefined);
    }
    this.skipped.push({ what: 'kill-agent-saving', why: 'no agent was saving' });
  }

  #killRuntime(): void {
    const pidFile = join(this.#dataDir, 'run', 'local-runtime.pid');
    try {
      const pid = Number(readFileSync(pidFile, 'utf8').trim());
      if (!readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('apps/local-runtime/src/main.ts'))
        throw new Error('not the runtime');
      process.kill(pid, 'SIGKILL');
      this.#record('kill-runtime', `pid ${pid}`);
    } catch (error) {
      this.skipped.push({ what: 'kill-runtime', why: `no runtime to kill (${String(error)})` });
    }
  }

  #repositories(): string[] {
    const root = join(this.#dataDir, 'repos');
    if (!existsSync(root)) return [];
    return readdirSync(root).flatMap((client) =>
      readdirSync(join(root, client))
        .filter((name) => name.endsWith('.git'))
        .map((name) => join(root, client, name)),
    );
  }

  /**
   * Another writer pushes to a thread branch: half the time a file of its own (the agent's
   * next push merges cleanly), half the time a line at the end of CHAT.md (it conflicts with
   * the agent's next appended line, so that work goes to a fallback ref).
   */
  async #moveRemote(): Promise<boolean> {
    const candidates: { repo: string; branch: string; tip: string }[] = [];
    for (const repo of this.#repositories()) {
      const refs = await git(repo, [
        'for-each-ref',
        '--format=%(refname) %(objectname)',
        'refs/heads/thread/',
      ]);
      for (const line of refs.split('\n')) {
        const [ref, tip] = line.trim().split(' ');
        if (ref && tip) candidates.push({ repo, branch: ref, tip });
      }
    }
    const chosen = this.#random.pick(candidates);
    if (!chosen) return false;
    this.#counter += 1;
    const conflict = this.#random.chance(0.5);
    const entries = (await git(chosen.repo, ['ls-tree', chosen.tip])).split('\n').filter(Boolean);
    let name = `soak-elsewhere-${this.#counter}.txt`;
    let content = `written elsewhere ${this.#counter}\n`;
    if (conflict) {
      name = 'CHAT.md';
      const current = await git(chosen.repo, ['show', `${chosen.tip}:CHAT.md`]).catch(() => '');
      content = `${current}soak elsewhere ${this.#counter}\n`;
    }
    const blob = (await git(chosen.repo, ['hash-object', '-w', '--stdin'], content)).trim();
    const kept = entries.filter((entry) => entry.split('\t')[1] !== name);
    const tree = (
      await git(
        chosen.repo,
        ['mktree'],
        [...kept, `100644 blob ${blob}\t${name}`].join('\n') + '\n',
      )
    ).trim();
    const commit = (
      await execFileAsync(
        'git',
        [
          '--git-dir',
          chosen.repo,
          'commit-tree',
          tree,
          '-p',
          chosen.tip,
          '-m',
          'soak: another writer',
        ],
        {
          env: {
            ...process.env,
            GIT_AUTHOR_NAME: 'soak',
            GIT_AUTHOR_EMAIL: 'soak@localhost',
            GIT_COMMITTER_NAME: 'soak',
            GIT_COMMITTER_EMAIL: 'soak@localhost',
          },
        },
      )
    ).stdout.trim();
    // Only if nobody pushed meanwhile: the fault is a move, never a loss.
    await git(chosen.repo, ['update-ref', chosen.branch, commit, chosen.tip]);
    this.#record(
      'remote-moved',
      `${chosen.repo.slice(this.#dataDir.length + 1)} ${chosen.branch} (${conflict ? 'conflicting' : 'clean'})`,
    );
    return true;
  }

  /** A lock file as a git killed mid-write leaves it, in a thread worktree's git dir. */
  #leaveLock(): boolean {
    const root = join(this.#dataDir, 'workspaces');
    const gitDirs: string[] = [];
    const walk = (dir: string, depth: number): void => {
      if (depth > 4 || !existsSync(dir)) return;
      const worktrees = join(dir, '.git', 'worktrees');
      if (existsSync(worktrees)) {
        for (const name of readdirSync(worktrees)) gitDirs.push(join(worktrees, name));
        return;
      }
      for (const entry of readdirSync(dir, { withFileTypes: true }))
        if (entry.isDirectory()) walk(join(dir, entry.name), depth + 1);
    };
    walk(root, 0);
    const chosen = this.#random.pick(gitDirs);
    if (!chosen) return false;
    const lock = join(chosen, 'index.lock');
    writeFileSync(lock, '');
    this.#record('stale-lock', lock.slice(this.#dataDir.length + 1));
    return true;
  }

  /** A pre-receive hook that refuses every push to one repository for a while. */
  async #refusePushes(): Promise<boolean> {
    const repo = this.#random.pick(this.#repositories());
    if (!repo) return false;
    mkdirSync(join(repo, 'hooks'), { recursive: true });
    const hook = join(repo, 'hooks', 'pre-receive');
    writeFileSync(
      hook,
      '#!/bin/sh\necho "soak: this remote refuses pushes for a while" >&2\nexit 1\n',
    );
    await chmod(hook, 0o755);
    this.#record(
      'refuse-pushes',
      `${repo.slice(this.#dataDir.length + 1)} for ${this.#refuseMs} ms`,
    );
    const lifted = delay(this.#refuseMs, undefined, { signal: this.#abort.signal })
      .catch(() => undefined)
      .then(() => rmSync(hook, { force: true }));
    this.#pending.add(lifted);
    void lifted.finally(() => this.#pending.delete(lifted));
    return true;
  }
}
