import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { App, Stack, Validations } from 'aws-cdk-lib';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import { CloudAssembly } from 'aws-cdk-lib/cx-api';
import { AwsSolutionsChecks } from 'cdk-nag';
import { IMAGE_APPS } from '../src/images.ts';

const run = promisify(execFile);
const INFRA = new URL('..', import.meta.url).pathname;
const STACKS = [
  'BerthDataStack',
  'BerthPlatformStack',
  'BerthDiscoveryStack',
  'BerthPreviewGatewayStack',
  'BerthSessionStack',
  'BerthReaperStack',
  'BerthTaskWatcherStack',
  'BerthWebhooksStack',
  'BerthOperationsStack',
];

interface Report {
  pluginReports: {
    pluginName: string;
    conclusion: string;
    violations: {
      ruleName: string;
      severity?: string;
      violatingConstructs: { constructPath: string }[];
    }[];
    suppressedViolations?: { ruleName: string; reason: string; acknowledgedAt: string }[];
  }[];
}

function filesUnder(directory: string): string[] {
  return readdirSync(directory, { recursive: true, encoding: 'utf8' })
    .filter((path) => statSync(join(directory, path)).isFile())
    .map((path) => path.split('\\').join('/'))
    .sort();
}

/** `cdk synth` as the CLI runs it: `node src/main.ts` with cdk.json's context and an outdir. */
async function synthLikeTheCli(outdir: string): Promise<void> {
  const cdkJson = JSON.parse(readFileSync(join(INFRA, 'cdk.json'), 'utf8')) as {
    app: string;
    context: object;
  };
  expect(cdkJson.app).toBe('node src/main.ts');
  // Only what the CLI would pass: no AWS credentials, no region, no Docker.
  await run(process.execPath, ['src/main.ts'], {
    cwd: INFRA,
    env: {
      PATH: process.env['PATH'] ?? '',
      HOME: process.env['HOME'] ?? tmpdir(),
      CDK_OUTDIR: outdir,
      CDK_CONTEXT_JSON: JSON.stringify(cdkJson.context),
    },
    maxBuffer: 16 * 1024 * 1024,
  });
}

let outdir: string;

beforeAll(async () => {
  outdir = mkdtempSync(join(tmpdir(), 'berth-cli-synth-'));
  await synthLikeTheCli(outdir);
});
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

describe('the app synthesized the way the CDK CLI does it', () => {
  test('produces every stack, each deployable on its own', () => {
    const manifest = JSON.parse(readFileSync(join(outdir, 'manifest.json'), 'utf8')) as {
      artifacts: Record<string, { type: string; dependencies?: string[] }>;
    };
    const stacks = Object.entries(manifest.artifacts).filter(
      ([, artifact]) => artifact.type === 'aws:cloudformation:stack',
    );
    expect(stacks.map(([name]) => name).sort()).toEqual([...STACKS].sort());
    // `cdk deploy --all` deploys in this order, and a first deploy needs what SSM parameters
    // other stacks read to exist: data, then platform, and the preview gateway before discovery
    // (which reads /berth/preview-gateway/url).
    const order = stacks.map(([name]) => name);
    expect(order.slice(0, 2)).toEqual(['BerthDataStack', 'BerthPlatformStack']);
    expect(order.indexOf('BerthPreviewGatewayStack')).toBeLessThan(
      order.indexOf('BerthDiscoveryStack'),
    );
    for (const [name, artifact] of stacks) {
      // Only its own assets: no stack waits for another.
      expect(
        (artifact.dependencies ?? []).filter((dependency) => STACKS.includes(dependency)),
      ).toEqual([]);
      const template = readFileSync(join(outdir, `${name}.template.json`), 'utf8');
      expect(template).not.toContain('Fn::ImportValue');
      const outputs =
        (JSON.parse(template) as { Outputs?: Record<string, { Export?: unknown }> }).Outputs ?? {};
      expect(Object.values(outputs).filter((output) => output.Export !== undefined)).toEqual([]);
    }
  });

  test('cdk-nag (AwsSolutions) and every other validation report nothing unacknowledged', () => {
    const report = JSON.parse(
      readFileSync(join(outdir, 'validation-report.json'), 'utf8'),
    ) as Report;
    const nag = report.pluginReports.find((plugin) => plugin.pluginName === 'AwsSolutions');
    expect(nag).toBeDefined();
    expect(nag!.conclusion).toBe('success');
    for (const plugin of report.pluginReports) {
      expect({ plugin: plugin.pluginName, violations: plugin.violations }).toEqual({
        plugin: plugin.pluginName,
        violations: [],
      });
    }
    // Every acknowledgment says why, and sits on a berth stack.
    const suppressed = nag!.suppressedViolations ?? [];
    expect(suppressed.length).toBeGreaterThan(0);
    for (const violation of suppressed) {
      expect(violation.reason.length).toBeGreaterThan(40);
      expect(STACKS).toContain(violation.acknowledgedAt.split('/')[0]);
    }
  });

  test('each image context holds the manifests and its own sources, nothing else', () => {
    const apps: readonly string[] = IMAGE_APPS;
    const seen = new Set<string>();
    for (const stack of STACKS) {
      const assets = JSON.parse(readFileSync(join(outdir, `${stack}.assets.json`), 'utf8')) as {
        dockerImages?: Record<
          string,
          {
            source: {
              directory: string;
              dockerFile: string;
              dockerBuildArgs?: Record<string, string>;
              dockerBuildTarget?: string;
            };
          }
        >;
      };
      for (const { source } of Object.values(assets.dockerImages ?? {})) {
        // One Dockerfile for every app, the app a build argument.
        expect(source.dockerFile).toBe('Dockerfile');
        const app = source.dockerBuildArgs?.['APP'];
        expect(apps).toContain(app);
        expect(source.dockerBuildTarget).toBe(app === 'workspace-agent' ? 'workspace' : 'service');
        seen.add(app!);
        const context = join(outdir, source.directory);
        const files = filesUnder(context);
        const allowed = new RegExp(
          `^(\\.dockerignore|Dockerfile|package(-lock)?\\.json|(apps|libs|libs/adapters)/[^/]+/package\\.json|(infra|tools)/package\\.json|apps/${app}/src/.+|libs/(domain|core|platform|webhook-signature|adapters/[^/]+)/src/.+)$`,
        );
        expect(files.filter((file) => !allowed.test(file))).toEqual([]);
        expect(files.filter((file) => /node_modules|\.test\.ts$|(^|\/)tests\//.test(file))).toEqual(
          [],
        );
        expect(files).toContain(`apps/${app}/src/main.ts`);
        // Every COPY of the Dockerfile finds its source in the context (APP expanded): the
        // build cannot fail on a missing path.
        const dockerfile = readFileSync(join(context, source.dockerFile), 'utf8');
        const copies = dockerfile
          .split('\n')
          .filter((line) => line.startsWith('COPY ') && !line.includes('--from='))
          .flatMap((line) => line.split(/\s+/).slice(1, -1))
          .map((path) => path.replaceAll('${APP}', app!));
        expect(copies.length).toBeGreaterThan(10);
        for (const path of copies) {
          expect({
            path,
            found: files.some(
              (file) => file === path || file.startsWith(`${path.replace(/\/$/, '')}/`),
            ),
          }).toEqual({ path, found: true });
        }
      }
    }
    expect([...seen].sort()).toEqual([...apps].sort());
  });
});

describe('cdk-nag on every stack', () => {
  test('no unacknowledged annotation error or warning, and no nag finding, on any stack', () => {
    const assembly = new CloudAssembly(outdir);
    const report = JSON.parse(
      readFileSync(join(outdir, 'validation-report.json'), 'utf8'),
    ) as Report;
    const nag = report.pluginReports.find((plugin) => plugin.pluginName === 'AwsSolutions')!;
    expect(assembly.stacks.map((stack) => stack.stackName).sort()).toEqual([...STACKS].sort());
    for (const stack of assembly.stacks) {
      // The annotations of the stack, as Annotations.fromStack would collect them.
      const annotations = stack.messages
        .filter((message) => ['error', 'warning'].includes(String(message.level)))
        .map(
          (message) => `${message.level} at ${message.id}: ${JSON.stringify(message.entry.data)}`,
        );
      const findings = nag.violations.filter((violation) =>
        violation.violatingConstructs.some((construct) =>
          construct.constructPath.startsWith(`${stack.stackName}/`),
        ),
      );
      expect({ stack: stack.stackName, annotations, findings }).toEqual({
        stack: stack.stackName,
        annotations: [],
        findings: [],
      });
    }
    // The suppressions of the one file reach every stack that needs one.
    const acknowledged = new Set(
      (nag.suppressedViolations ?? []).map((violation) => violation.acknowledgedAt.split('/')[0]),
    );
    expect([...acknowledged].sort()).toEqual(
      STACKS.filter((name) => name !== 'BerthOperationsStack').sort(),
    );
  });

  test('the check is live: an unencrypted, plain-HTTP queue with no dead letters fails the synth', () => {
    const controlOutdir = mkdtempSync(join(tmpdir(), 'berth-nag-control-'));
    try {
      const app = new App({ outdir: controlOutdir, builtinCloudFormationValidation: false });
      const stack = new Stack(app, 'Control');
      new sqs.Queue(stack, 'Careless', { encryption: sqs.QueueEncryption.UNENCRYPTED });
      Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
      expect(() => app.synth()).toThrow(
        /AwsSolutions-SQS2[\s\S]*AwsSolutions-SQS3|AwsSolutions-SQS3[\s\S]*AwsSolutions-SQS2/,
      );
    } finally {
      rmSync(controlOutdir, { recursive: true, force: true });
    }
  });
});

describe('the Dockerfile', () => {
  const root = join(INFRA, '..');
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');
  const lines = dockerfile.split('\n');
  const stage = (name: string): string => {
    const start = lines.findIndex(
      (line) => line.startsWith('FROM ') && line.endsWith(` AS ${name}`),
    );
    expect(start).toBeGreaterThanOrEqual(0);
    const end = lines.findIndex((line, index) => index > start && line.startsWith('FROM '));
    return lines.slice(start, end === -1 ? undefined : end).join('\n');
  };

  test('one file for every service: multi-stage, Node 24, npm ci --omit=dev, APP a build argument', () => {
    for (const app of IMAGE_APPS) {
      expect(existsSync(join(root, 'apps', app, 'Dockerfile'))).toBe(false);
    }
    expect(lines).toContain('ARG NODE_IMAGE=node:24-slim');
    expect(lines.filter((line) => line.startsWith('FROM '))).toEqual([
      'FROM ${NODE_IMAGE} AS build',
      'FROM ${NODE_IMAGE} AS base',
      'FROM base AS service',
      'FROM base AS workspace',
    ]);
    const build = stage('build');
    expect(build).toMatch(/^RUN npm ci --omit=dev --ignore-scripts/m);
    // No source in the build stage: only manifests.
    expect(
      build
        .split('\n')
        .filter((line) => line.startsWith('COPY ') && !/package(-lock)?\.json/.test(line)),
    ).toEqual([]);
    const base = stage('base');
    expect(base).toMatch(/^ARG APP$/m);
    expect(base).toContain('COPY --from=build /app/node_modules ./node_modules');
    const sources = base
      .split('\n')
      .filter((line) => line.startsWith('COPY ') && line.includes('/src'))
      .map((line) => line.split(/\s+/)[1]);
    expect(sources.filter((source) => source!.startsWith('apps/'))).toEqual(['apps/${APP}/src']);
    expect(sources.filter((source) => source!.startsWith('libs/testing'))).toEqual([]);
  });

  test.each([
    ['service', false],
    ['workspace', true],
  ])('target %s: non-root, git only in the workspace', (target, hasGit) => {
    const runtime = stage(target);
    expect(runtime).toMatch(/^USER node$/m);
    expect(runtime.split('\n').filter((line) => line.startsWith('CMD '))).toEqual([
      'CMD ["node", "main.ts"]',
    ]);
    expect(/apt-get install[^\n]*\bgit\b/.test(runtime)).toBe(hasGit);
    // The USER line comes after everything that needs root.
    expect(runtime.lastIndexOf('USER node')).toBeGreaterThan(runtime.lastIndexOf('RUN '));
  });

  test('the root .dockerignore admits what the Dockerfile copies, and no test, tool or engine', () => {
    const ignore = readFileSync(join(root, '.dockerignore'), 'utf8');
    const patterns = ignore.split('\n').filter((line) => line !== '' && !line.startsWith('#'));
    expect(patterns[0]).toBe('*');
    expect(patterns).toEqual(
      expect.arrayContaining(['!Dockerfile', '**/node_modules', '**/*.test.ts']),
    );
    expect(
      patterns.filter((pattern) => /testing|tools\/src|infra\/src|tests/.test(pattern)),
    ).toEqual([]);
  });
});
