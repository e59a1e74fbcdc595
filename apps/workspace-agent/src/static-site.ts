/**
 * The local stack's default dev server (BERTH_DEV_SERVER_COMMAND, docs/contract.md "The dev
 * server"): serves its working directory (the workspace's main checkout) over HTTP on
 * `127.0.0.1:$PORT` (`$HOST` to listen elsewhere), files read afresh on every request, so what
 * a session writes is served at once. A thread's worktree is under
 * `/.berth/worktrees/<thread ref name>/`. Never serves a path through `.git`, nor a file a
 * symbolic link places outside the directory. `static-site.ts [dir]` serves `dir` instead.
 */
import { realpathSync } from 'node:fs';
import { realpath } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { resolve, sep } from 'node:path';
import sirv from 'sirv';

const root = realpathSync(resolve(process.argv[2] ?? '.'));
const port = Number(process.env.PORT ?? '3000');
const host = process.env.HOST ?? '127.0.0.1';
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(
    `static-site: PORT must be a port number from 1 to 65535; got "${process.env.PORT}"`,
  );
  process.exit(2);
}

// dev: no file list cached at start (the workspace changes under it); dotfiles: the worktrees
// live under `.berth/`.
const serveFile = sirv(root, { dev: true, dotfiles: true, etag: true });

function notFound(response: ServerResponse): void {
  response.statusCode = 404;
  response.setHeader('Content-Type', 'text/plain; charset=utf-8');
  response.end('not found\n');
}

/** Whether the request's path may be served; `bad` when it does not decode. */
async function allowed(request: IncomingMessage): Promise<boolean | 'bad'> {
  let path: string;
  try {
    path = decodeURIComponent(new URL(request.url ?? '/', 'http://site').pathname);
  } catch {
    return 'bad';
  }
  const segments = path.split(/[\\/]/);
  if (segments.includes('.git') || segments.includes('..') || path.includes('\0')) return false;
  // A symbolic link may point anywhere: only what really lies inside the root is served.
  try {
    const real = await realpath(resolve(root, `.${path}`));
    return real === root || real.startsWith(`${root}${sep}`);
  } catch {
    // Not there (or an index file sirv may still find): sirv answers 404 for what is missing.
    return true;
  }
}

const server = createServer((request, response) => {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    response.statusCode = 405;
    response.setHeader('Allow', 'GET, HEAD');
    response.end();
    return;
  }
  void allowed(request).then((verdict) => {
    if (verdict === 'bad') {
      response.statusCode = 400;
      response.end('bad path\n');
    } else if (!verdict) notFound(response);
    else serveFile(request, response, () => notFound(response));
  });
});
server.listen(port, host, () => {
  console.error(`static-site: serving ${root} on http://${host}:${port}`);
});
const close = (): void => {
  server.close(() => process.exit(0));
  server.closeAllConnections();
};
process.once('SIGTERM', close);
process.once('SIGINT', close);
