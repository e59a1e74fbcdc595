import { pino, type Logger } from 'pino';

/** Paths that may carry credentials; pino replaces their values before anything is written. */
const REDACT = [
  'req.headers.authorization',
  'headers.authorization',
  'authorization',
  'token',
  'secret',
  'authSecret',
  'config.authSecret',
  '*.BERTH_AUTH_SECRET',
  '*.AWS_SECRET_ACCESS_KEY',
];

export function createLogger(service: string, level = 'info'): Logger {
  return pino({
    level,
    base: { service, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT, censor: '[redacted]' },
  });
}

export type { Logger };
