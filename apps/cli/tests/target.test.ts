/** Which berth the CLI talks to, and how it says so: the local stack's file or explicit settings. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadClientConfig, loadConfig, type LocalStack } from '@berth/domain';
import { writeLocalStack } from '@berth/platform';
import { resolveTarget } from '../src/target.ts';

let dataDir: string;

beforeEach(() => {
  dataDir = mkdtempSync(join(tmpdir(), 'berth-target-'));
});
afterEach(() => rmSync(dataDir, { recursive: true, force: true }));

function stackFile(pid = process.pid): LocalStack {
  writeFileSync(join(dataDir, 'admin-token'), 'the-admin-token\n');
  const stack: LocalStack = {
    version: 1,
    pid,
    startedAt: new Date().toISOString(),
    region: 'us-east-1',
    discoveryUrl: 'http://127.0.0.1:18080',
    runtimeUrl: 'http://127.0.0.1:18599',
    endpoints: {
      dynamodb: 'http://127.0.0.1:18000',
      sqs: 'http://127.0.0.1:14566',
      sns: 'http://127.0.0.1:14566',
    },
    tables: { containers: 'berth-containers', sessions: 'berth-sessions' },
    lifecycleCommandsUrl: 'http://127.0.0.1:14566/000000000000/berth-lifecycle-commands',
    topicArn: 'arn:aws:sns:us-east-1:000000000000:berth-lifecycle-events',
    adminTokenPath: join(dataDir, 'admin-token'),
    dataDir,
  };
  writeLocalStack(dataDir, stack);
  return stack;
}

const config = () => loadConfig({ BERTH_DATA_DIR: dataDir });

describe('resolveTarget', () => {
  it('takes everything from a running local stack when nothing is set', () => {
    // Prepare
    stackFile();

    // Act
    const target = resolveTarget({}, config(), loadClientConfig({ BERTH_DATA_DIR: dataDir }));

    // Assess
    expect(target.discoveryUrl).toBe('http://127.0.0.1:18080');
    expect(target.token).toBe('the-admin-token');
    expect(target.sqs).toEqual({
      region: 'us-east-1',
      endpoint: 'http://127.0.0.1:14566',
      credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
    });
    expect(target.sns).toMatchObject({ endpoint: 'http://127.0.0.1:14566' });
    expect(target.explain[0]).toBe(
      `discovery http://127.0.0.1:18080 (from ${join(dataDir, 'stack.json')})`,
    );
  });

  it('ignores the file of a stack that is gone, and says why', () => {
    // Prepare: a pid far above any pid_max
    stackFile(2 ** 30);

    // Act
    const target = resolveTarget({}, config(), loadClientConfig({ BERTH_DATA_DIR: dataDir }));

    // Assess
    expect(target.discoveryUrl).toBe('http://127.0.0.1:8080');
    expect(target.sqs).toEqual({});
    expect(target.explain[0]).toContain('is stale: its stack (pid 1073741824) is gone');
  });

  it.each([
    ['AWS_REGION', { AWS_REGION: 'eu-west-1' }],
    ['AWS_PROFILE', { AWS_PROFILE: 'prod' }],
    ['$BERTH_URL', { BERTH_URL: 'https://berth.example.com' }],
  ])('leaves the local stack alone when %s is set', (name, env) => {
    // Prepare
    stackFile();

    // Act
    const target = resolveTarget(
      {},
      config(),
      loadClientConfig({ BERTH_DATA_DIR: dataDir, ...env }),
    );

    // Assess
    expect(target.sqs).toEqual({});
    expect(target.explain[0]).toBe(`not the local stack: ${name} given`);
  });

  it('prefers --url and --token to everything', () => {
    // Prepare
    stackFile();

    // Act
    const target = resolveTarget(
      { url: 'http://elsewhere:1', token: 't' },
      config(),
      loadClientConfig({ BERTH_TOKEN: 'other' }),
    );

    // Assess
    expect(target.discoveryUrl).toBe('http://elsewhere:1');
    expect(target.token).toBe('t');
    expect(target.explain).toContain('token from --token');
  });

  it('reads a damaged file as no stack, naming the field', () => {
    // Prepare
    writeFileSync(join(dataDir, 'stack.json'), '{"version": 1}');

    // Act
    const target = resolveTarget({}, config(), loadClientConfig({}));

    // Assess
    expect(target.explain[0]).toMatch(/stack\.json is unusable: .*pid/);
  });
});
