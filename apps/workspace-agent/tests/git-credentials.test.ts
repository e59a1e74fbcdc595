import { afterAll, afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { inspect } from 'node:util';
import type { SQSClient } from '@aws-sdk/client-sqs';
import { InvalidArgumentError, threadBranch } from '@berth/domain';
import {
  GitCredentials,
  gitProcessEnv,
  redactKnownSecrets,
  takeGitCredentials,
} from '../src/git-credentials.ts';
import { gitErrorDetail } from '../src/git-workspace.ts';
import { startGitHttpServer, type GitHttpServer } from './git-http-server.ts';
import {
  createBareRepo,
  createQueues,
  git,
  killAgent,
  receiveOutputs,
  removeDir,
  sendInput,
  showInBare,
  sqsClient,
  startAgent,
  tempDir,
  type AgentProcess,
} from './harness.ts';

const TIMEOUT = 60_000;
const USERNAME = 'x-access-token';
const PASSWORD = 'ghp_s3cr3t-Token-for-berth-tests-0123456789';
const WRONG_PASSWORD = 'ghp_wr0ng-Token-never-to-be-seen-9876543210';

describe('takeGitCredentials', () => {
  it('reads the pair and removes it from the environment, so no child inherits it', () => {
    const env: Record<string, string | undefined> = {
      BERTH_GIT_USERNAME: USERNAME,
      BERTH_GIT_PASSWORD: PASSWORD,
      OTHER: 'kept',
    };
    const credentials = takeGitCredentials(env);
    expect(credentials?.username).toBe(USERNAME);
    expect(env).toEqual({ OTHER: 'kept' });
  });

  it('is undefined without either variable', () => {
    expect(takeGitCredentials({ OTHER: 'x' })).toBeUndefined();
    expect(takeGitCredentials({ BERTH_GIT_USERNAME: '', BERTH_GIT_PASSWORD: '' })).toBeUndefined();
  });

  it('refuses half a pair, naming the missing variable and never the value', () => {
    const read = (): unknown => takeGitCredentials({ BERTH_GIT_PASSWORD: PASSWORD });
    expect(read).toThrow(InvalidArgumentError);
    expect(read).toThrow(/^BERTH_GIT_USERNAME is required when BERTH_GIT_PASSWORD is set/);
    try {
      takeGitCredentials({ BERTH_GIT_PASSWORD: PASSWORD });
    } catch (error) {
      expect(String(error)).not.toContain(PASSWORD);
      expect((error as InvalidArgumentError).field).toBe('BERTH_GIT_USERNAME');
    }
    expect(() => takeGitCredentials({ BERTH_GIT_USERNAME: USERNAME })).toThrow(
      /^BERTH_GIT_PASSWORD is required when BERTH_GIT_USERNAME is set/,
    );
  });

  it('refuses a value with a newline: git credential lines cannot be forged', () => {
    expect(() =>
      takeGitCredentials({ BERTH_GIT_USERNAME: USERNAME, BERTH_GIT_PASSWORD: 'a\nhost=evil' }),
    ).toThrow(/must be one line each/);
  });
});

describe('GitCredentials', () => {
  const credentials = new GitCredentials(USERNAME, PASSWORD);

  it('never shows the password when logged, inspected or serialized', () => {
    expect(JSON.stringify({ credentials })).toBe(
      `{"credentials":{"username":"${USERNAME}","password":"***"}}`,
    );
    expect(inspect(credentials)).not.toContain(PASSWORD);
    expect(`${inspect({ nested: { credentials } }, { depth: 5 })}`).not.toContain(PASSWORD);
  });

  it('gives git a helper scoped to the remote origin, the secret only in the environment', () => {
    const options = credentials.gitOptions('https://git.example.com/acme/website.git');
    expect(options?.config[0]).toBe('credential.helper=');
    expect(options?.config[1]).toMatch(/^credential\.https:\/\/git\.example\.com\.helper=!/);
    expect(options?.config.join(' ')).not.toContain(PASSWORD);
    expect(options?.env).toEqual({ BERTH_GIT_USERNAME: USERNAME, BERTH_GIT_PASSWORD: PASSWORD });
    expect(credentials.gitOptions('git@github.com:acme/website.git')).toBeUndefined();
    expect(credentials.gitOptions('/data/repos/acme/website.git')).toBeUndefined();
  });

  it('redacts the password from any text, git errors included', () => {
    expect(redactKnownSecrets(`token ${PASSWORD} leaked`)).toBe('token *** leaked');
    expect(gitErrorDetail(new Error(`fatal: could not read ${PASSWORD}`))).toBe(
      'fatal: could not read ***',
    );
  });

  it('keeps git processes from the variables simple-git refuses, and adds the secret', () => {
    expect(
      gitProcessEnv(
        { PATH: '/bin', GIT_DIR: '/x', GIT_TERMINAL_PROMPT: '0', EDITOR: 'vi', HOME: '/h' },
        { BERTH_GIT_PASSWORD: PASSWORD },
      ),
    ).toEqual({
      PATH: '/bin',
      GIT_TERMINAL_PROMPT: '0',
      HOME: '/h',
      BERTH_GIT_PASSWORD: PASSWORD,
    });
  });
});

describe('an HTTP remote that requires authentication (git http-backend behind basic auth)', () => {
  let sqs: SQSClient;
  let root: string;
  let bare: string;
  let server: GitHttpServer;
  const agents: AgentProcess[] = [];

  beforeEach(async () => {
    sqs ??= sqsClient();
    root = await tempDir('auth');
    bare = await createBareRepo(root);
    server = await startGitHttpServer({
      projectRoot: root,
      username: USERNAME,
      password: PASSWORD,
    });
  });

  afterEach(async () => {
    await Promise.all(agents.splice(0).map(killAgent));
    await server.close();
    await removeDir(root);
  });

  afterAll(() => {
    sqs?.destroy();
  });

  function agentWith(password: string | undefined, workspacePath: string, generation = 1) {
    return createQueues(sqs).then((queues) => {
      const started = startAgent({
        workspacePath,
        repoUrl: server.url('project.git'),
        queues,
        generation,
        extra:
          password === undefined
            ? {}
            : { BERTH_GIT_USERNAME: USERNAME, BERTH_GIT_PASSWORD: password },
      });
      agents.push(started);
      return { agent: started, queues };
    });
  }

  /** Everything the agent printed or reported. */
  function everythingSaid(agent: AgentProcess): string {
    return JSON.stringify(agent.logs) + agent.stderr() + JSON.stringify(agent.notices);
  }

  it(
    'clones and pushes with the secret, which is in no log, .git/config, commit or URL',
    async () => {
      const workspace = join(root, 'workspace');
      const { agent, queues } = await agentWith(PASSWORD, workspace);
      await agent.ready;
      expect(await readFile(join(workspace, 'README.md'), 'utf8')).toBe('# project\n');

      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 'auth-1', text: 'pushed' });
      await receiveOutputs(sqs, queues.output, 1);
      expect(await agent.stop()).toEqual({ code: 0, signal: null });

      // Pushed through the authenticating server.
      expect(await showInBare(bare, threadBranch('john', 'auth-1'), 'CHAT.md')).toBe('pushed\n');
      expect(
        server.requests.some(
          (r) => r.url.includes('git-receive-pack') && r.method === 'POST' && r.user === USERNAME,
        ),
      ).toBe(true);
      // The first request of each command is challenged; git answered with the helper's pair.
      expect(server.requests.some((r) => r.status === 401)).toBe(true);
      expect(server.requests.every((r) => !r.url.includes(PASSWORD))).toBe(true);
      // Nowhere on disk or in history.
      const config = await readFile(join(workspace, '.git', 'config'), 'utf8');
      expect(config).not.toContain(PASSWORD);
      expect(config).not.toMatch(/credential|helper/);
      expect(config).toContain(`url = ${server.url('project.git')}`);
      const history = await git(bare, 'log', '--all', '-p', '--format=%H %an %ae %s%n%b');
      expect(history).toContain('pushed');
      expect(history).not.toContain(PASSWORD);
      expect(everythingSaid(agent)).not.toContain(PASSWORD);
    },
    TIMEOUT,
  );

  it(
    'a workload does not inherit the secret',
    async () => {
      const workspace = join(root, 'workspace');
      const queues = await createQueues(sqs);
      const agent = startAgent({
        workspacePath: workspace,
        repoUrl: server.url('project.git'),
        queues,
        workloadCommand: 'printf "user=%s pass=%s" "$BERTH_GIT_USERNAME" "$BERTH_GIT_PASSWORD"',
        extra: { BERTH_GIT_USERNAME: USERNAME, BERTH_GIT_PASSWORD: PASSWORD },
      });
      agents.push(agent);
      await agent.ready;
      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 'env', text: 'x' });
      const [output] = await receiveOutputs(sqs, queues.output, 1);
      expect(output?.text).toBe('user= pass=');
      expect((await agent.stop()).code).toBe(0);
    },
    TIMEOUT,
  );

  it(
    'without credentials the clone fails at start, naming the authentication failure',
    async () => {
      const { agent } = await agentWith(undefined, join(root, 'workspace'));
      const exit = await agent.exited;
      expect(exit.code).not.toBe(0);
      const stopping = agent.notices.find((n) => n.type === 'stopping');
      expect(stopping?.reason).toMatch(
        /^start_failed:clone failed: .*(Authentication failed|could not read Username)/,
      );
    },
    TIMEOUT,
  );

  it(
    'a wrong secret: save_failed naming the authentication failure, without either secret',
    async () => {
      const workspace = join(root, 'workspace');
      const first = await agentWith(PASSWORD, workspace);
      await first.agent.ready;
      expect((await first.agent.stop()).code).toBe(0);

      // The secret was replaced by a wrong one: the next generation finds its checkout, cannot
      // fetch (logged, not fatal), works, and cannot push.
      const { agent, queues } = await agentWith(WRONG_PASSWORD, workspace, 2);
      await agent.ready;
      await sendInput(sqs, queues.input, { sessionId: 's', threadId: 'kept', text: 'kept' });
      await receiveOutputs(sqs, queues.output, 1);
      const exit = await agent.stop();

      expect(exit.code).toBe(75);
      const stopping = agent.notices.find((n) => n.type === 'stopping');
      expect(stopping?.reason).toMatch(
        /^save_failed:push: .*Authentication failed for 'http:\/\/127\.0\.0\.1:\d+\/project\.git\/'/,
      );
      for (const secret of [PASSWORD, WRONG_PASSWORD]) {
        expect(everythingSaid(agent)).not.toContain(secret);
        expect(await readFile(join(workspace, '.git', 'config'), 'utf8')).not.toContain(secret);
      }
      // The work is kept for the next start.
      expect(await showInBare(bare, threadBranch('john', 'kept'), 'CHAT.md')).toBeUndefined();
      expect(
        server.requests
          .filter((r) => r.url.includes('git-receive-pack'))
          .every((r) => r.status === 401),
      ).toBe(true);
    },
    TIMEOUT,
  );
});
