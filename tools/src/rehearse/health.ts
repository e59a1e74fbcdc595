/**
 * The load balancer's health check, as the target group makes it: an HTTP request to the
 * task's address and port, answered with one of the healthy codes.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as delay } from 'node:timers/promises';

/** Addresses something listens on at `port` (from /proc/net/tcp{,6}), for failure reasons. */
export function listeningAddresses(port: number): string[] {
  const found: string[] = [];
  for (const [file, v6] of [
    ['/proc/net/tcp', false],
    ['/proc/net/tcp6', true],
  ] as const) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state !== '0A' || local === undefined) continue; // 0A: LISTEN
      const [hex, portHex] = local.split(':');
      if (Number.parseInt(portHex ?? '', 16) !== port || hex === undefined) continue;
      found.push(v6 ? describeV6(hex) : describeV4(hex));
    }
  }
  return found.map((address) => `${address}:${port}`);
}

function describeV4(hex: string): string {
  // Little-endian on the machines this runs on (x86, arm64).
  const bytes = hex.match(/../g)?.map((b) => Number.parseInt(b, 16)) ?? [];
  return bytes.reverse().join('.');
}

function describeV6(hex: string): string {
  if (/^0+$/.test(hex)) return '[::]';
  if (hex === '00000000000000000000000001000000') return '[::1]';
  if (hex.startsWith('0000000000000000FFFF0000')) return describeV4(hex.slice(24));
  return `[${hex}]`;
}

export interface HealthCheck {
  url: string;
  healthyCodes: string;
  /** Why waiting is pointless (the process is gone), or undefined while it may still answer. */
  givenUp: () => string | undefined;
  timeoutMs: number;
}

function isHealthy(status: number, codes: string): boolean {
  return codes.split(',').some((part) => {
    const [low, high] = part.split('-').map((n) => Number(n.trim()));
    return high === undefined ? status === low : status >= (low ?? 0) && status <= high;
  });
}

/** Resolves once healthy; otherwise returns the reason (last answer or connection error). */
export async function waitHealthy(check: HealthCheck): Promise<string | undefined> {
  const deadline = Date.now() + check.timeoutMs;
  let last = 'no answer yet';
  while (Date.now() < deadline) {
    const gone = check.givenUp();
    if (gone !== undefined) return gone;
    try {
      const response = await fetch(check.url, { signal: AbortSignal.timeout(5_000) });
      const body = await response.text();
      if (isHealthy(response.status, check.healthyCodes)) return undefined;
      last = `answered ${response.status}: ${body.slice(0, 200)}`;
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      last =
        cause?.code ?? cause?.message ?? (error instanceof Error ? error.message : String(error));
    }
    await delay(250);
  }
  return `no healthy answer from ${check.url} within ${check.timeoutMs / 1000} s (last: ${last})`;
}
