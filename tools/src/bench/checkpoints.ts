/**
 * `npm run bench:checkpoints` (issue 15): how soon a workload run's checkpoint is on the
 * project's repository, and what checkpoints do to a stop's save, in the same run.
 *
 * Workspace agents (the real program, `apps/workspace-agent/src/main.ts`) on fauxqs and a local
 * bare repository. Each round runs two agents one after the other over the same work: THREADS
 * threads, MESSAGES_PER_THREAD files of FILE_KB KiB each per thread.
 * - with checkpoints: the files are written by workload runs (one message each); the agent
 *   checkpoints and pushes after every run. Measured: each run's end to its checkpoint pushed
 *   (the agent's `checkpoint pushed` log line, `pushLatencyMs`), then the stop's save.
 * - without (the baseline): the same files written into the same threads' worktrees outside
 *   any run, as before checkpoints existed; everything waits for the stop's save.
 * Rounds alternate the order, so a change in the machine's load hits both alike.
 */
import {
  CreateQueueCommand,
  SendMessageCommand,
  ReceiveMessageCommand,
  DeleteMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { worktreePathFor } from '@berth/domain';
import { createSqsClient } from '@berth/messaging';
import { localAwsEnvironment, startFauxqs } from '@berth/testing';
import {
  fmt,
  machine,
  pollUntil,
  runMain,
  say,
  summarize,
  textTable,
  type LatencySummary,
  type MachineInfo,
} from './common.ts';

const run = promisify(execFile);
const AGENT_MAIN = fileURLToPath(
  new URL('../../../apps/workspace-agent/src/main.ts', import.meta.url),
);
const ROUNDS = 3;
const THREADS = 4;
const MESSAGES_PER_THREAD = 4;
const FILE_KB = 64;
const PUSH_INTERVAL = '1s';
/** Old thread branches (project-wide and other users') in the second project of the start figure. */
const OLD_BRANCHES = 200;

interface AgentRun {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
}

function startAgent(env: Record<string, string>): AgentRun {
  const child = spawn(process.execPath, [AGENT_MAIN], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let pending = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      try {
        logs.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        // not a log line
      }
    }
  });
  child.stderr?.resume();
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  return { child, logs, exited };
}

async function queue(sqs: SQSClient, name: string): Promise<string> {
  const { QueueUrl } = await sqs.send(new CreateQueueCommand({ QueueName: name }));
  if (!QueueUrl) throw new Error(`no queue ${name}`);
  return QueueUrl;
}

async function drain(sqs: SQSClient, queueUrl: string, count: number): Promise<void> {
  let seen = 0;
  const deadline = Date.now() + 120_000;
  while (seen < count) {
    if (Date.now() > deadline) throw new Error(`only ${seen} of ${count} answers`);
    const { Messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: 10,
        WaitTimeSeconds: 1,
      }),
    );
    for (const message of Messages) {
      seen += 1;
      await sqs.send(
        new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }),
      );
    }
  }
}

interface StopFigures {
  saveMs: number;
  checkpointFlushMs: number;
  stopMs: number;
}

async function stop(agent: AgentRun): Promise<StopFigures> {
  const startedAt = Date.now();
  agent.child.kill('SIGTERM');
  const code = await agent.exited;
  if (code !== 0) throw new Error(`the agent exited with ${String(code)}`);
  const saved = agent.logs.find((l) => l.msg === 'workspace saved; exiting');
  return {
    saveMs: Number(saved?.saveMs ?? Number.NaN),
    checkpointFlushMs: Number(saved?.checkpointFlushMs ?? Number.NaN),
    stopMs: Date.now() - startedAt,
  };
}

interface Result {
  machine: MachineInfo;
  startedAt: string;
  endedAt: string;
  rounds: number;
  work: { threads: number; messagesPerThread: number; fileKiB: number; pushInterval: string };
  pushLatencyMs: LatencySummary;
  saveMs: { withCheckpoints: number[]; without: number[] };
  checkpointFlushMs: number[];
  /** Agent start (clone, prepare) to ready, on a project without and with OLD_BRANCHES old thread branches. */
  startMs: { none: number[]; oldBranches: number[]; branches: number };
  loadAverageAtEnd: [number, number, number];
}

async function benchmark(): Promise<Result> {
  const startedAt = new Date().toISOString();
  const info = machine();
  const fauxqs = await startFauxqs();
  Object.assign(process.env, localAwsEnvironment('http://127.0.0.1:1', fauxqs.endpoint));
  const sqs = createSqsClient();
  const root = await mkdtemp(join(tmpdir(), 'bench-checkpoints-'));
  const latencies: number[] = [];
  const saveWith: number[] = [];
  const saveWithout: number[] = [];
  const flushes: number[] = [];
  const startNone: number[] = [];
  const startOld: number[] = [];
  const payload = 'x'.repeat(FILE_KB * 1024);
  try {
    const bare = join(root, 'project.git');
    const seed = join(root, 'seed');
    await run('git', ['init', '--quiet', '--bare', '-b', 'main', bare]);
    await run('git', ['clone', '--quiet', bare, seed]);
    await writeFile(join(seed, 'README.md'), '# bench\n');
    await run('git', ['-C', seed, 'add', '-A']);
    await run('git', [
      '-C',
      seed,
      '-c',
      'user.name=b',
      '-c',
      'user.email=b@b',
      'commit',
      '--quiet',
      '-m',
      'init',
    ]);
    await run('git', ['-C', seed, 'push', '--quiet', 'origin', 'main']);

    // The same project with OLD_BRANCHES thread branches: half from before branches belonged
    // to their user, half other users' (one ref each, made with update-ref, no checkout).
    const crowded = join(root, 'crowded.git');
    await run('git', ['clone', '--quiet', '--bare', bare, crowded]);
    const head = (await run('git', ['-C', crowded, 'rev-parse', 'main'])).stdout.trim();
    const refs = Array.from({ length: OLD_BRANCHES }, (_, i) =>
      i % 2 === 0 ? `refs/heads/thread/old-${i}` : `refs/heads/thread/other-user/t-${i}`,
    );
    await new Promise<void>((resolve, reject) => {
      const child = spawn('git', ['-C', crowded, 'update-ref', '--stdin'], {
        stdio: ['pipe', 'ignore', 'inherit'],
      });
      child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error('update-ref failed'))));
      child.stdin.end(refs.map((ref) => `create ${ref} ${head}\n`).join(''));
    });

    let generation = 0;
    const agentFor = async (user: string, label: string, repoUrl = bare) => {
      generation += 1;
      const id = `${label}-${generation}`;
      const queues = {
        input: await queue(sqs, `bench-cp-in-${id}`),
        output: await queue(sqs, `bench-cp-out-${id}`),
        commands: await queue(sqs, `bench-cp-cmd-${id}`),
      };
      const workspace = join(root, `ws-${id}`);
      const spawnedAt = Date.now();
      const agent = startAgent({
        CONTAINER_ID: `bench.cp.${user}`,
        WORKSPACE_PATH: workspace,
        BERTH_REPO_URL: repoUrl,
        BERTH_GENERATION: String(generation),
        BERTH_INPUT_QUEUE_URL: queues.input,
        BERTH_OUTPUT_QUEUE_URL: queues.output,
        BERTH_LIFECYCLE_COMMANDS_URL: queues.commands,
        BERTH_SHUTDOWN_GRACE: '60s',
        BERTH_CHECKPOINT_PUSH_INTERVAL: PUSH_INTERVAL,
        BERTH_WORKLOAD_COMMAND: 'read -r name; printf "%s" "$BENCH_PAYLOAD" > "$name"; echo ok',
        BENCH_PAYLOAD: payload,
        BERTH_LOG_LEVEL: 'info',
      });
      await pollUntil(
        'the agent to be ready',
        () => Promise.resolve(agent.logs.some((l) => l.msg === 'ready') ? true : undefined),
        120_000,
      );
      return { agent, queues, workspace, readyMs: Date.now() - spawnedAt };
    };
    const send = (url: string, body: object) =>
      sqs.send(new SendMessageCommand({ QueueUrl: url, MessageBody: JSON.stringify(body) }));

    const withCheckpoints = async (round: number) => {
      const { agent, queues } = await agentFor(`w${round}`, 'with');
      for (let m = 0; m < MESSAGES_PER_THREAD; m += 1) {
        await Promise.all(
          Array.from({ length: THREADS }, (_, t) =>
            send(queues.input, { sessionId: `s${t}`, threadId: `t${t}`, text: `file-${m}.bin` }),
          ),
        );
        await drain(sqs, queues.output, THREADS);
      }
      const pushed = await pollUntil(
        'every checkpoint pushed',
        () => {
          const lines = agent.logs.filter((l) => l.msg === 'checkpoint pushed');
          return Promise.resolve(lines.length >= THREADS * MESSAGES_PER_THREAD ? lines : undefined);
        },
        120_000,
      );
      latencies.push(...pushed.map((l) => Number(l.pushLatencyMs)));
      const stopped = await stop(agent);
      saveWith.push(stopped.saveMs);
      flushes.push(stopped.checkpointFlushMs);
    };

    const without = async (round: number) => {
      const { agent, queues, workspace } = await agentFor(`o${round}`, 'without');
      for (let t = 0; t < THREADS; t += 1)
        await send(queues.input, { type: 'thread.open', threadId: `t${t}`, sessionId: `s${t}` });
      await pollUntil(
        'the worktrees',
        () =>
          Promise.resolve(
            Array.from({ length: THREADS }, (_, t) =>
              existsSync(join(worktreePathFor(workspace, `t${t}`), '.git')),
            ).every(Boolean)
              ? true
              : undefined,
          ),
        120_000,
      );
      for (let t = 0; t < THREADS; t += 1) {
        const dir = worktreePathFor(workspace, `t${t}`);
        await mkdir(dir, { recursive: true });
        for (let m = 0; m < MESSAGES_PER_THREAD; m += 1)
          await writeFile(join(dir, `file-${m}.bin`), payload);
      }
      const stopped = await stop(agent);
      saveWithout.push(stopped.saveMs);
    };

    const startFigure = async (round: number) => {
      const order = round % 2 === 1 ? ['none', 'old'] : ['old', 'none'];
      for (const which of order) {
        const started = await agentFor(
          `s${round}${which}`,
          `start-${which}`,
          which === 'old' ? crowded : bare,
        );
        (which === 'old' ? startOld : startNone).push(started.readyMs);
        await stop(started.agent);
      }
    };

    for (let round = 1; round <= ROUNDS; round += 1) {
      say(`round ${round} of ${ROUNDS}`);
      await startFigure(round);
      if (round % 2 === 1) {
        await without(round);
        await withCheckpoints(round);
      } else {
        await withCheckpoints(round);
        await without(round);
      }
    }
  } finally {
    sqs.destroy();
    await fauxqs.stop();
    await rm(root, { recursive: true, force: true });
  }
  return {
    machine: info,
    startedAt,
    endedAt: new Date().toISOString(),
    rounds: ROUNDS,
    work: {
      threads: THREADS,
      messagesPerThread: MESSAGES_PER_THREAD,
      fileKiB: FILE_KB,
      pushInterval: PUSH_INTERVAL,
    },
    pushLatencyMs: summarize(latencies),
    saveMs: { withCheckpoints: saveWith, without: saveWithout },
    checkpointFlushMs: flushes,
    startMs: { none: startNone, oldBranches: startOld, branches: OLD_BRANCHES },
    loadAverageAtEnd: machine().loadAverage,
  };
}

const median = (values: readonly number[]) => summarize(values).p50;

function render(result: Result): string {
  const push = result.pushLatencyMs;
  return [
    `Checkpoints (npm run bench:checkpoints): ${result.rounds} rounds, ${result.work.threads} threads × ${result.work.messagesPerThread} files of ${result.work.fileKiB} KiB, BERTH_CHECKPOINT_PUSH_INTERVAL=${result.work.pushInterval}`,
    '',
    textTable(
      ['figure', 'samples', 'p50 ms', 'p99 ms', 'max ms'],
      [['workload end → checkpoint pushed', push.count, push.p50, push.p99, push.max]],
    ),
    '',
    textTable(
      ['stop', 'save ms (median)', 'save ms by round', 'checkpoint flush ms by round'],
      [
        [
          'without checkpoints (all work left for the save)',
          median(result.saveMs.without),
          result.saveMs.without.map((v) => fmt(v, 0)).join(' / '),
          '-',
        ],
        [
          'with checkpoints',
          median(result.saveMs.withCheckpoints),
          result.saveMs.withCheckpoints.map((v) => fmt(v, 0)).join(' / '),
          result.checkpointFlushMs.map((v) => fmt(v, 0)).join(' / '),
        ],
      ],
    ),
    '',
    textTable(
      ['agent start → ready', 'median ms', 'by round'],
      [
        [
          'project without old thread branches',
          median(result.startMs.none),
          result.startMs.none.map((v) => fmt(v, 0)).join(' / '),
        ],
        [
          `project with ${result.startMs.branches} old thread branches`,
          median(result.startMs.oldBranches),
          result.startMs.oldBranches.map((v) => fmt(v, 0)).join(' / '),
        ],
      ],
    ),
    '',
    `machine: ${result.machine.cpuCount} × ${result.machine.cpuModel}, load average ${result.machine.loadAverage.join(' / ')} at the start, ${result.loadAverageAtEnd.join(' / ')} at the end; ${result.startedAt} to ${result.endedAt}`,
  ].join('\n');
}

await runMain('bench:checkpoints', benchmark, render);
