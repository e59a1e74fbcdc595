/**
 * The local stack's default dev server (BERTH_DEV_SERVER_COMMAND, docs/contract.md "The dev
 * server"): serves its working directory (the workspace's main checkout) over HTTP on
 * `127.0.0.1:$PORT` (`$HOST` to listen elsewhere), files read afresh on every request, so what
 * a session writes is served at once. A thread's worktree is under
 * `/.berth/worktrees/<thread ref name>/`. Never serves a path through `.git`, nor a file a
 * symbolic link places outside the directory. A directory without an index.html is answered
 * with the list of its entries. `static-site.ts [dir]` serves `dir` instead.
 */
import { realpathSync } from 'node:fs';
import { readdir, realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { basename, resolve, sep } from 'node:path';
import escapeHtml from 'escape-html';
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

/**
 * A directory's entries as a page of links, relative (the page may be served below a prefix,
 * as the preview gateway does); `.git` is never listed. False when the path is no directory.
 */
async function listDirectory(request: IncomingMessage, response: ServerResponse): Promise<boolean> {
  const path = decodeURIComponent(new URL(request.url ?? '/', 'http://site').pathname);
  const directory = resolve(root, `.${path}`);
  if (!(await stat(directory).catch(() => undefined))?.isDirectory()) return false;
  const entries = (await readdir(directory, { withFileTypes: true }))
    .filter((entry) => entry.name !== '.git')
    .sort((a, b) =>
      a.isDirectory() === b.isDirectory() ? a.name.localeCompare(b.name) : a.isDirectory() ? -1 : 1,
    );
  // Links resolve against the page's URL: below it when it ends with `/`, beside it otherwise.
  const base = path.endsWith('/') ? '' : `${encodeURIComponent(basename(path))}/`;
  const items = entries.map((entry) => {
    const name = entry.isDirectory() ? `${entry.name}/` : entry.name;
    const href = `${base}${encodeURIComponent(entry.name)}${entry.isDirectory() ? '/' : ''}`;
    return `<li><a href="${escapeHtml(href)}">${escapeHtml(name)}</a></li>`;
  });
  response.setHeader('Content-Type', 'text/html; charset=utf-8');
  response.setHeader('Cache-Control', 'no-store');
  response.end(
    `<!doctype html><meta charset="utf-8"><title>${escapeHtml(path)}</title>` +
      `<h1>${escapeHtml(path)}</h1><ul>${items.join('')}</ul>\n`,
  );
  return true;
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
    else
      serveFile(request, response, () => {
        listDirectory(request, response).then(
          (listed) => listed || notFound(response),
          () => notFound(response),
        );
      });
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
