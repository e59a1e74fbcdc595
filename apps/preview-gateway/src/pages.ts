/** The few pages the gateway answers itself (never the container's): small, no script. */

const escape = (text: string) =>
  text.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] ?? c,
  );

function page(title: string, body: string, refreshSeconds?: number): string {
  const refresh =
    refreshSeconds === undefined ? '' : `<meta http-equiv="refresh" content="${refreshSeconds}">`;
  return `<!doctype html><html><head><meta charset="utf-8">${refresh}<title>${escape(title)}</title>
<style>body{font:16px system-ui,sans-serif;margin:15vh auto;max-width:36em;color:#333}</style></head>
<body><h1>${escape(title)}</h1><p>${escape(body)}</p></body></html>`;
}

/** While the container (or its dev server) starts: the page reloads itself. */
export const waitingPage = (detail: string, refreshSeconds: number) =>
  page('Starting the preview…', detail, refreshSeconds);

export const errorPage = (title: string, detail: string) => page(title, detail);
