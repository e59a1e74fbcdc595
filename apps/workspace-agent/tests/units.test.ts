import { describe, expect, it } from '@jest/globals';
import { ConfigError, threadRefName } from '@berth/domain';
import { formatSavedElsewhere } from '@berth/domain';
import { saveFailureDetail } from '../src/agent.ts';
import { restartDelayMs } from '../src/dev-server.ts';
import { parseAgentEnv, saveReserveMs } from '../src/env.ts';
import { gitErrorDetail, redactCredentials, threadIdOfRef } from '../src/git-workspace.ts';
import { KeyedSerialQueue } from '../src/keyed-queue.ts';
import {
  invalidAnswer,
  outputBody,
  parseInputMessage,
  type InvalidMessage,
} from '../src/messages.ts';

const VALID_ENV = {
  CONTAINER_ID: 'acme.website.john',
  WORKSPACE_PATH: '/data/workspaces/acme/website/john',
  BERTH_REPO_URL: '/data/repos/acme/website.git',
  BERTH_GENERATION: '3',
  BERTH_INPUT_QUEUE_URL: 'http://sqs.us-east-1.localhost:4566/000000000000/in',
  BERTH_OUTPUT_QUEUE_URL: 'http://sqs.us-east-1.localhost:4566/000000000000/out',
};

describe('parseAgentEnv', () => {
  it('reads a complete environment', () => {
    const env = parseAgentEnv({
      ...VALID_ENV,
      BERTH_SHUTDOWN_GRACE: '90s',
      BERTH_WORKLOAD_COMMAND: 'claude -p',
      BERTH_AGENT_REPORTS_URL: 'http://sqs.us-east-1.localhost:4566/000000000000/cmds',
      BERTH_CHECKPOINT_PUSH_INTERVAL: '2s',
      BERTH_DEV_SERVER_COMMAND: 'npx astro dev --host 0.0.0.0 --port "$PORT"',
      BERTH_DEV_SERVER_PORT: '4321',
      BERTH_DEV_SERVER_THREAD: 'site:main',
      BERTH_DEV_SERVER_READY_PATH: '/health?from=berth',
    });

    expect(env).toEqual({
      containerId: 'acme.website.john',
      key: { clientId: 'acme', projectId: 'website', userId: 'john' },
      workspacePath: '/data/workspaces/acme/website/john',
      repoUrl: '/data/repos/acme/website.git',
      generation: 3,
      inputQueueUrl: VALID_ENV.BERTH_INPUT_QUEUE_URL,
      outputQueueUrl: VALID_ENV.BERTH_OUTPUT_QUEUE_URL,
      workloadCommand: 'claude -p',
      shutdownGraceMs: 90_000,
      logLevel: 'info',
      agentReportsUrl: 'http://sqs.us-east-1.localhost:4566/000000000000/cmds',
      checkpointPushIntervalMs: 2000,
      devServerCommand: 'npx astro dev --host 0.0.0.0 --port "$PORT"',
      devServerPort: 4321,
      devServerThread: 'site:main',
      devServerReadyPath: '/health?from=berth',
    });
  });

  it('defaults the grace to 60s, leaves the workload to the built-in one and the generation unknown', () => {
    const { BERTH_GENERATION: _generation, ...withoutGeneration } = VALID_ENV;
    const env = parseAgentEnv(withoutGeneration);

    expect(env.generation).toBeUndefined();
    expect(env.shutdownGraceMs).toBe(60_000);
    expect(env.workloadCommand).toBeUndefined();
    expect(env.agentReportsUrl).toBeUndefined();
    expect(env.checkpointPushIntervalMs).toBe(5000);
    expect(env.devServerCommand).toBeUndefined();
    expect(env.devServerPort).toBe(3000);
    expect(env.devServerThread).toBeUndefined();
    expect(env.devServerReadyPath).toBe('/');
  });

  it('names a bad dev server port, thread or ready path', () => {
    for (const [variable, value] of [
      ['BERTH_DEV_SERVER_PORT', '0'],
      ['BERTH_DEV_SERVER_PORT', '65536'],
      ['BERTH_DEV_SERVER_PORT', '30x'],
      ['BERTH_DEV_SERVER_THREAD', '../etc'],
      ['BERTH_DEV_SERVER_READY_PATH', 'health'],
      ['BERTH_DEV_SERVER_READY_PATH', '//metadata.internal/'],
      ['BERTH_DEV_SERVER_READY_PATH', '/a b'],
      ['BERTH_DEV_SERVER_READY_PATH', '/page#top'],
      ['BERTH_DEV_SERVER_READY_PATH', `/${'a'.repeat(1024)}`],
    ] as const) {
      let error: unknown;
      try {
        parseAgentEnv({ ...VALID_ENV, [variable]: value });
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).problems.map((p) => p.field)).toEqual([variable]);
    }
  });

  it('names every bad variable at once', () => {
    let error: unknown;
    try {
      parseAgentEnv({
        CONTAINER_ID: 'acme-website-john',
        BERTH_GENERATION: 'two',
        BERTH_INPUT_QUEUE_URL: 'queue',
      });
    } catch (caught) {
      error = caught;
    }

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems.map((p) => p.field)).toEqual([
      'CONTAINER_ID',
      'WORKSPACE_PATH',
      'BERTH_REPO_URL',
      'BERTH_GENERATION',
      'BERTH_INPUT_QUEUE_URL',
      'BERTH_OUTPUT_QUEUE_URL',
    ]);
  });

  it('keeps part of the grace for the save', () => {
    expect(saveReserveMs(60_000)).toBe(15_000);
    expect(saveReserveMs(12_000)).toBe(5_000);
    expect(saveReserveMs(4_000)).toBe(2_000);
    expect(saveReserveMs(600_000)).toBe(20_000);
  });
});

describe('parseInputMessage', () => {
  it('accepts a work message', () => {
    expect(parseInputMessage('{"sessionId":"s-1","threadId":"t:1","text":"hi"}')).toEqual({
      kind: 'work',
      sessionId: 's-1',
      threadId: 't:1',
      text: 'hi',
    });
  });

  it('accepts thread.open with or without a session', () => {
    expect(parseInputMessage('{"type":"thread.open","threadId":"t"}')).toEqual({
      kind: 'thread.open',
      threadId: 't',
      sessionId: undefined,
    });
    expect(
      parseInputMessage('{"type":"thread.open","threadId":"t","sessionId":"s"}'),
    ).toMatchObject({ sessionId: 's' });
  });

  it.each([
    [undefined, 'body'],
    ['nope', 'body'],
    ['[1,2]', 'body'],
    ['{"threadId":"t","text":"x"}', 'sessionId'],
    ['{"sessionId":"s","text":"x"}', 'threadId'],
    ['{"sessionId":"s","threadId":"a/b","text":"x"}', 'threadId'],
    [`{"sessionId":"s","threadId":"${'x'.repeat(129)}","text":"x"}`, 'threadId'],
    ['{"sessionId":"s","threadId":"t"}', 'text'],
    ['{"sessionId":"s","threadId":"t","text":null}', 'text'],
    ['{"type":"thread.open"}', 'threadId'],
    ['{"type":"thread.open","threadId":"t","sessionId":"bad id"}', 'sessionId'],
    ['{"type":"other","threadId":"t"}', 'type'],
  ])('rejects %s naming %s', (body, field) => {
    const parsed = parseInputMessage(body);

    expect(parsed.kind).toBe('invalid');
    expect((parsed as InvalidMessage).field).toBe(field);
    expect(invalidAnswer(parsed as InvalidMessage).text).toContain(
      field === 'body' ? 'message body' : field,
    );
  });

  it('echoes only valid ids in the answer', () => {
    const parsed = parseInputMessage(
      '{"sessionId":"s","threadId":"no spaces allowed","text":"x"}',
    ) as InvalidMessage;

    expect(invalidAnswer(parsed)).toEqual({
      sessionId: 's',
      text: expect.stringMatching(/^invalid message: threadId must be/) as unknown as string,
      exitCode: 2,
    });
  });
});

describe('outputBody', () => {
  it('keeps a small answer as it is', () => {
    const output = { sessionId: 's', threadId: 't', text: 'hello', exitCode: 0 };

    expect(JSON.parse(outputBody(output))).toEqual(output);
  });

  it('cuts a text that would not fit in one queue message, counting JSON escapes', () => {
    const output = { sessionId: 's', threadId: 't', text: '\u0001'.repeat(100_000), exitCode: 0 };

    const body = outputBody(output, 50_000);

    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(50_000);
    const parsed = JSON.parse(body) as { text: string; exitCode: number };
    expect(parsed.text.endsWith('[berth: output truncated]')).toBe(true);
    expect(parsed.exitCode).toBe(0);
  });
});

describe('KeyedSerialQueue', () => {
  it('runs one key in order and different keys side by side, past failures', async () => {
    const queue = new KeyedSerialQueue();
    const events: string[] = [];
    let releaseA!: () => void;
    const gateA = new Promise<void>((resolve) => (releaseA = resolve));

    const a1 = queue.run('a', async () => {
      events.push('a1 start');
      await gateA;
      events.push('a1 end');
      throw new Error('a1 failed');
    });
    const a2 = queue.run('a', () => {
      events.push('a2');
      return Promise.resolve('a2 done');
    });
    const b1 = queue.run('b', () => {
      events.push('b1');
      return Promise.resolve('b1 done');
    });

    await expect(b1).resolves.toBe('b1 done');
    expect(events).toEqual(['a1 start', 'b1']);
    releaseA();
    await expect(a1).rejects.toThrow('a1 failed');
    await expect(a2).resolves.toBe('a2 done');
    expect(events).toEqual(['a1 start', 'b1', 'a1 end', 'a2']);
    await Promise.resolve();
    expect(queue.activeKeys).toBe(0);
  });
});

describe('git helpers', () => {
  it.each(['plain', 'chat:1', '..hidden..', 'ends.', 'x.lock', 'a:b.c..d'])(
    'decodes the ref name of %s',
    (threadId) => {
      expect(threadIdOfRef(threadRefName(threadId))).toBe(threadId);
    },
  );

  it('never shows credentials of a remote URL', () => {
    const message =
      "fatal: unable to access 'https://bot:s3cr3t-token@git.example.com/acme/website.git/': 403";

    expect(redactCredentials(message)).not.toContain('s3cr3t');
    expect(gitErrorDetail(new Error(`hint: try again\n${message}`))).toBe(
      "fatal: unable to access 'https://***@git.example.com/acme/website.git/': 403",
    );
  });

  it('summarises a failed save for the stop reason', () => {
    expect(
      saveFailureDetail({
        ok: false,
        committed: [],
        pushed: [],
        merged: [],
        fallbacks: [],
        failures: [
          {
            step: 'push',
            target: 'thread/a',
            detail: "fatal: '/x.git' does not appear to be a git repository",
          },
          { step: 'commit', target: '/w', detail: 'error' },
        ],
      }),
    ).toBe("push: fatal: '/x.git' does not appear to be a git repository (+1 more)");
  });

  it('names the fallback refs in the stop reason, counting what does not fit', () => {
    const prefix = 'refs/berth/conflicts/acme.website.john/3/';
    expect(formatSavedElsewhere(prefix, ['thread/a', 'workspace/john'])).toBe(
      `saved_elsewhere:${prefix} thread/a workspace/john`,
    );
    const many = Array.from({ length: 40 }, (_, i) => `thread/long-thread-name-${i}`);
    const reason = formatSavedElsewhere(prefix, many);
    expect(reason.length).toBeLessThanOrEqual(255);
    const named = reason.split(' ').filter((part) => part.startsWith('thread/'));
    expect(reason).toMatch(new RegExp(` \\+${many.length - named.length} more$`));
    expect(named).toEqual(many.slice(0, named.length));
  });
});

describe('restartDelayMs', () => {
  const tuning = (random: number) => ({
    backoffBaseMs: 1000,
    backoffMaxMs: 30_000,
    random: () => random,
  });

  it('doubles with each crash in a row up to the cap, with a random factor from 0.5 to 1', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 40].map((n) => restartDelayMs(n, tuning(0.999999)))).toEqual([
      1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000,
    ]);
    expect([1, 2, 6, 40].map((n) => restartDelayMs(n, tuning(0)))).toEqual([
      500, 1000, 15_000, 15_000,
    ]);
  });
});
