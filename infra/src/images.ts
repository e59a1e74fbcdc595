import { fileURLToPath } from 'node:url';
import { IgnoreMode } from 'aws-cdk-lib';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import { SERVICES } from './names.ts';

/** The Docker build context: the repository root, because an app needs the libraries too. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Every service's image, and the workspace agent's. */
export const IMAGE_APPS = [...SERVICES, 'workspace-agent'] as const;
export type ImageApp = (typeof IMAGE_APPS)[number];

/** The libraries every image carries (their `src`), next to its own app's sources. */
export const IMAGE_LIBRARIES = [
  'libs/domain',
  'libs/core',
  'libs/platform',
  'libs/adapters/dynamodb',
  'libs/adapters/ecs',
  'libs/adapters/messaging',
  'libs/webhook-signature',
] as const;

/** The one Dockerfile at the repository root, and where the image keeps the sources. */
export const DOCKERFILE = 'Dockerfile';
export const IMAGE_WORKDIR = '/app';

/** The Dockerfile's target: the workspace agent needs git, the services do not. */
export function imageTarget(app: ImageApp): 'service' | 'workspace' {
  return app === 'workspace-agent' ? 'workspace' : 'service';
}

/**
 * Only what the Dockerfile copies for this app reaches the build context (and cdk.out): every
 * workspace manifest, because `npm ci` checks them against the lock file, and the sources of
 * the app and the libraries. These patterns come after the root `.dockerignore`'s (CDK reads
 * both); they narrow it to one app, so that one app's change rebuilds only its own image.
 */
export function contextExcludes(app: ImageApp): string[] {
  return [
    '*',
    '!package.json',
    '!package-lock.json',
    '!apps/*/package.json',
    '!libs/*/package.json',
    '!libs/adapters/*/package.json',
    '!infra/package.json',
    '!tools/package.json',
    `!${DOCKERFILE}`,
    `!apps/${app}/src`,
    ...IMAGE_LIBRARIES.map((library) => `!${library}/src`),
    '**/node_modules',
    '**/*.test.ts',
  ];
}

/**
 * The image of one app, built from the root Dockerfile by `cdk deploy` (cdk-assets), with its
 * command and working directory written into the task definition too, so that what ECS runs
 * is readable from the template alone. Synth only stages the filtered context into cdk.out and
 * hashes it: no Docker engine is needed until the image is published.
 */
export function appContainer(
  app: ImageApp,
): Pick<ecs.ContainerDefinitionOptions, 'image' | 'command' | 'workingDirectory'> {
  return {
    image: ecs.ContainerImage.fromAsset(REPO_ROOT, {
      file: DOCKERFILE,
      buildArgs: { APP: app },
      target: imageTarget(app),
      exclude: contextExcludes(app),
      ignoreMode: IgnoreMode.DOCKER,
      // Pinned so an image built on an arm64 laptop still runs on the X86_64 task definitions.
      platform: Platform.LINUX_AMD64,
      displayName: `berth-${app}`,
    }),
    command: ['node', `apps/${app}/src/main.ts`],
    workingDirectory: IMAGE_WORKDIR,
  };
}
