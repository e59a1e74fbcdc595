import { pino, type Logger } from 'pino';

export interface LoggerOptions {
  level: string;
  containerId?: string;
  generation?: number;
}

/**
 * JSON lines on stdout. Written synchronously so that the last lines before `process.exit`
 * (the save's outcome) are never lost.
 */
export function createLogger(options: LoggerOptions): Logger {
  return pino(
    {
      level: options.level,
      base: {
        service: 'workspace-agent',
        ...(options.containerId === undefined ? {} : { containerId: options.containerId }),
        ...(options.generation === undefined ? {} : { generation: options.generation }),
      },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    pino.destination({ dest: 1, sync: true }),
  );
}
