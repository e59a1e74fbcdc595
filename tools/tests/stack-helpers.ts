import { EcsRuntime, createEcsClient } from '@berth/ecs';
import { mintToken } from '@berth/platform';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { RunningStack } from '../src/stack/harness.ts';

export interface HttpAnswer<T = Record<string, unknown>> {
  status: number;
  body: T;
}

export async function http<T = Record<string, unknown>>(
  stack: RunningStack,
  method: string,
  path: string,
  options: { token?: string | null; body?: unknown } = {},
): Promise<HttpAnswer<T>> {
  const token = options.token === undefined ? stack.adminToken : options.token;
  const response = await fetch(`${stack.url}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(options.body !== undefined ? { body: JSON.stringify(options.body) } : {}),
  });
  const text = await response.text();
  return { status: response.status, body: (text ? JSON.parse(text) : {}) as T };
}

export function tokenFor(stack: RunningStack, client: string, user: string, role: 'user' | 'service' | 'admin' = 'user'): string {
  const secret = readFileSync(join(stack.dataDir, 'auth-secret'), 'utf8').trim();
  return mintToken(secret, { client, sub: user, role });
}

/** The local runtime's own view of the tasks, through the same ECS API the services use. */
export function runtimeOf(stack: RunningStack): EcsRuntime {
  return new EcsRuntime({
    client: createEcsClient({ endpoint: `http://127.0.0.1:${stack.env.BERTH_RUNTIME_PORT}` }),
    cluster: 'berth-local',
    taskDefinition: 'berth-workspace',
    containerName: 'workspace',
    subnets: [],
    securityGroups: [],
    workspaceRoot: join(stack.dataDir, 'workspaces'),
    launchType: undefined,
  });
}

/** Polls until `check` returns a value (not undefined) or the deadline passes. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}${last instanceof Error ? `: ${last.message}` : ''}`);
}
