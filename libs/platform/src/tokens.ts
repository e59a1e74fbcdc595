import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createSigner } from 'fast-jwt';

const PRIVATE = 0o600;

/**
 * Writes a file only its owner may read. `writeFileSync`'s mode applies only when it creates
 * the file, so one left behind with loose modes (an older berth, a copy) is narrowed too.
 */
export function writePrivateFile(file: string, content: string): void {
  writeFileSync(file, content, { mode: PRIVATE });
  chmodSync(file, PRIVATE);
}

/**
 * The local stack's signing secret: BERTH_AUTH_SECRET when given, otherwise generated once
 * and kept (mode 600) in the data directory, so tokens survive a restart on the same data.
 */
export function localAuthSecret(
  dataDir: string,
  fromEnv: string | undefined,
  create = true,
): string {
  if (fromEnv) return fromEnv;
  const file = join(dataDir, 'auth-secret');
  if (existsSync(file)) {
    // Kept from an earlier run, maybe with loose modes: it signs admin tokens.
    chmodSync(file, PRIVATE);
    return readFileSync(file, 'utf8').trim();
  }
  if (!create) {
    throw new Error(
      `no BERTH_AUTH_SECRET and no ${file}: start the local stack first, or set BERTH_AUTH_SECRET`,
    );
  }
  mkdirSync(dirname(file), { recursive: true });
  const secret = randomBytes(32).toString('hex');
  writePrivateFile(file, `${secret}\n`);
  return secret;
}

export interface TokenClaims {
  client: string;
  sub: string;
  role: 'user' | 'service' | 'admin';
}

export function mintToken(
  secret: string,
  claims: TokenClaims,
  expiresInMs = 12 * 3_600_000,
): string {
  const sign = createSigner({ key: secret, algorithm: 'HS256', expiresIn: expiresInMs });
  return sign({ ...claims });
}
