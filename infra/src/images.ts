import { fileURLToPath } from 'node:url';
import { IgnoreMode } from 'aws-cdk-lib';
import { Platform } from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';

/** The Docker build context: the repository root, because an app needs the libraries too. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export type ImageApp = 'discovery' | 'session' | 'reaper' | 'task-watcher' | 'workspace-agent';

/**
 * Only what the image's Dockerfile copies reaches the build context (and cdk.out): every
 * workspace manifest, because `npm ci` checks them against the lock file, and the sources
 * of the app and the libraries. node_modules, tests, other apps' code and .git stay out,
 * which also keeps the fingerprint at synth time cheap.
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
    `!apps/${app}/Dockerfile`,
    `!apps/${app}/src`,
    '!libs/domain/src',
    '!libs/core/src',
    '!libs/platform/src',
    '!libs/adapters/*/src',
    '**/node_modules',
    '**/*.test.ts',
  ];
}

/**
 * The image of one app, built from its own Dockerfile by `cdk deploy` (cdk-assets). Synth
 * only stages the filtered context into cdk.out and hashes it: no Docker engine is needed
 * until the image is published.
 */
export function appImage(app: ImageApp): ecs.ContainerImage {
  return ecs.ContainerImage.fromAsset(REPO_ROOT, {
    file: `apps/${app}/Dockerfile`,
    exclude: contextExcludes(app),
    ignoreMode: IgnoreMode.DOCKER,
    // Pinned so an image built on an arm64 laptop still runs on the X86_64 task definitions.
    platform: Platform.LINUX_AMD64,
    displayName: `berth-${app}`,
  });
}
