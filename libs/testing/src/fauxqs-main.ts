/**
 * Runs fauxqs as a process of its own (the package's CLI logs every request and takes no
 * port option). Listens on 127.0.0.1; FAUXQS_PORT and FAUXQS_DATA_DIR as fauxqs defines them.
 */
import { startFauxqs } from 'fauxqs';

const port = Number(process.env.FAUXQS_PORT ?? '4566');
const dataDir = process.env.FAUXQS_DATA_DIR;
const server = await startFauxqs({ port, logger: false, ...(dataDir ? { dataDir } : {}) });

const shutdown = (): void => {
  server.stop().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);
// Started with an IPC channel: when the process that started it is gone, stop too.
if (process.connected) process.once('disconnect', shutdown);
