import type { ContainerJson, SessionJson } from '@berth/domain';
import escapeHtml from 'escape-html';

/** Markup already escaped (or written here): the only thing `html` interpolates as it is. */
export class Html {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

type Interpolated = Html | string | number | boolean | null | undefined | readonly Interpolated[];

function render(value: Interpolated): string {
  if (value === null || value === undefined || value === false) return '';
  if (value instanceof Html) return value.text;
  if (Array.isArray(value)) return (value as readonly Interpolated[]).map(render).join('');
  return escapeHtml(String(value));
}

/**
 * A template tag: every interpolated value is HTML-escaped (escape-html) unless it is `Html`
 * made by this tag, so data from the store (ids, stop reasons, webhook URLs) can never
 * become markup in an admin's browser.
 */
export function html(strings: TemplateStringsArray, ...values: Interpolated[]): Html {
  let text = strings[0] ?? '';
  values.forEach((value, index) => {
    text += render(value) + (strings[index + 1] ?? '');
  });
  return new Html(text);
}

export interface PageFrame {
  title: string;
  /** The URL the live region reloads from when a lifecycle event arrives; none: static page. */
  liveUrl?: string;
  nav?: 'containers' | 'tenant' | 'container';
  body: Html;
  signedIn: boolean;
}

/** The whole document; `body` alone is what a live reload swaps in. */
export function page(frame: PageFrame): string {
  const live = frame.liveUrl
    ? html`<main
        id="live"
        hx-get="${frame.liveUrl}"
        hx-trigger="berth:changed from:body"
        hx-swap="innerHTML"
        aria-live="polite"
      >
        ${frame.body}
      </main>`
    : html`<main id="live">${frame.body}</main>`;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <meta name="htmx-config" content='{"includeIndicatorStyles": false}' />
        <title>${frame.title} · berth console</title>
        <link rel="stylesheet" href="/console/static/console.css" />
        <script src="/console/vendor/htmx/htmx.min.js" defer></script>
        <script src="/console/static/console.js" defer></script>
      </head>
      <body>
        <a class="skip" href="#live">Skip to content</a>
        <header class="top">
          <a class="brand" href="/console">berth console</a>
          ${
            frame.signedIn
              ? html`<nav aria-label="main">
                    <a
                      href="/console"
                      ${frame.nav === 'containers' ? html`aria-current="page"` : ''}
                      >Containers</a
                    >
                  </nav>
                  <span id="feed" class="feed" data-state="connecting" role="status"
                    >connecting…</span
                  >
                  <form method="post" action="/console/logout" class="logout">
                    <button type="submit">Sign out</button>
                  </form>`
              : ''
          }
        </header>
        ${live}
      </body>
    </html>`.text;
}

export function loginBody(message?: string): Html {
  return html`<section class="login">
    <h1>Sign in</h1>
    <p>
      Paste an admin token (a JWT with <code>role: admin</code>, e.g. from
      <code>berth token --role admin</code>).
    </p>
    ${message ? html`<p class="error" role="alert" id="login-error">${message}</p>` : ''}
    <form method="post" action="/console/login">
      <label for="token">Admin token</label>
      <textarea
        id="token"
        name="token"
        rows="4"
        required
        autocomplete="off"
        spellcheck="false"
        autofocus
      ></textarea>
      <button type="submit" id="login-submit">Sign in</button>
    </form>
  </section>`;
}

const LIVE_STATUSES = new Set(['starting', 'running', 'terminating']);

export function isLive(container: Pick<ContainerJson, 'status'>): boolean {
  return LIVE_STATUSES.has(container.status);
}

/** Whole seconds to `until` from `now`, never negative. */
function secondsUntil(until: string, now: number): number {
  return Math.max(0, Math.floor((Date.parse(until) - now) / 1000));
}

/** `hh:mm:ss`, with days in front past 24h: fixed width, so a ticking value never moves. */
export function formatCountdown(totalSeconds: number): string {
  const days = Math.floor(totalSeconds / 86_400);
  const hours = Math.floor((totalSeconds % 86_400) / 3_600);
  const minutes = Math.floor((totalSeconds % 3_600) / 60);
  const seconds = totalSeconds % 60;
  const clock = [hours, minutes, seconds].map((n) => String(n).padStart(2, '0')).join(':');
  return days > 0 ? `${days}d ${clock}` : clock;
}

/** A countdown the page's script ticks every second (`data-until`); rendered right at first. */
function countdown(until: string | null, now: number, label: string): Html {
  if (!until) return html`<span class="muted">—</span>`;
  return html`<time
    class="countdown num"
    datetime="${until}"
    data-until="${until}"
    title="${label} ${until}"
    >${formatCountdown(secondsUntil(until, now))}</time
  >`;
}

function statusBadge(status: string): Html {
  return html`<span class="status status-${status}" data-status="${status}">${status}</span>`;
}

function keptAlive(reasons: readonly string[] | null | undefined): Html {
  if (!reasons || reasons.length === 0) return html`<span class="muted">nothing</span>`;
  return html`${reasons.map((reason) => html`<span class="tag">${reason}</span> `)}`;
}

function idOf(prefix: string, value: string): string {
  return `${prefix}-${value.replace(/[^A-Za-z0-9_-]/g, '_')}`;
}

export interface ContainersView {
  containers: readonly ContainerJson[];
  /** True when more containers are live than were read. */
  truncated: boolean;
  now: number;
}

/** Live containers grouped by client. */
export function containersBody(view: ContainersView): Html {
  const byClient = new Map<string, ContainerJson[]>();
  for (const container of view.containers) {
    const list = byClient.get(container.clientId) ?? [];
    list.push(container);
    byClient.set(container.clientId, list);
  }
  const clients = [...byClient.keys()].sort();
  return html`<h1>Live containers</h1>
    <p class="summary">
      <span class="num">${view.containers.length}</span> live
      container${view.containers.length === 1 ? '' : 's'} of
      <span class="num">${clients.length}</span> client${clients.length === 1 ? '' : 's'}
      ${view.truncated ? html`<strong>(only the first shown)</strong>` : ''}
    </p>
    ${clients.length === 0 ? html`<p class="empty" id="no-containers">No live containers.</p>` : ''}
    ${clients.map(
      (clientId) =>
        html`<section class="client" aria-labelledby="${idOf('client', clientId)}">
          <h2 id="${idOf('client', clientId)}">
            <a
              href="/console/clients/${encodeURIComponent(clientId)}"
              id="${idOf('tenant', clientId)}"
              >${clientId}</a
            >
          </h2>
          ${containerTable(byClient.get(clientId) ?? [], view.now)}
        </section>`,
    )}`;
}

function containerTable(containers: readonly ContainerJson[], now: number): Html {
  return html`<table class="cards">
    <thead>
      <tr>
        <th scope="col">Container</th>
        <th scope="col">Status</th>
        <th scope="col" class="n">Gen.</th>
        <th scope="col" class="n">Sessions</th>
        <th scope="col">Idle stop in</th>
        <th scope="col">Kept alive by</th>
        <th scope="col">Expires in</th>
      </tr>
    </thead>
    <tbody>
      ${[...containers]
        .sort((a, b) => a.containerId.localeCompare(b.containerId))
        .map(
          (c) =>
            html`<tr data-container="${c.containerId}">
              <td data-label="Container">
                <a
                  href="/console/containers/${encodeURIComponent(c.containerId)}"
                  id="${idOf('open', c.containerId)}"
                  >${c.projectId} / ${c.userId}</a
                >
              </td>
              <td data-label="Status">${statusBadge(c.status)}</td>
              <td data-label="Gen." class="n num">${c.generation}</td>
              <td data-label="Sessions" class="n num">${c.sessionCount}</td>
              <td data-label="Idle stop in" class="idle">
                ${countdown(c.idleStopAt, now, 'idle stop at')}
              </td>
              <td data-label="Kept alive by">${keptAlive(c.keptAliveBy)}</td>
              <td data-label="Expires in" class="expires">
                ${countdown(c.expiresAt, now, 'expires at')}
              </td>
            </tr>`,
        )}
    </tbody>
  </table>`;
}

/** Whatever rows a route answers, as a table of their scalar fields (history, usage, deliveries). */
export function genericTable(rows: readonly unknown[], caption: string): Html {
  const records = rows.filter(
    (row): row is Record<string, unknown> => typeof row === 'object' && row !== null,
  );
  if (records.length === 0) return html`<p class="empty">None.</p>`;
  const columns = [...new Set(records.flatMap((record) => Object.keys(record)))];
  const cell = (value: unknown): Html =>
    value === null || value === undefined
      ? html`<span class="muted">—</span>`
      : typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean'
        ? html`${String(value)}`
        : html`<code>${JSON.stringify(value)}</code>`;
  return html`<table class="cards">
    <caption class="sr-only">
      ${caption}
    </caption>
    <thead>
      <tr>
        ${columns.map((column) => html`<th scope="col">${column}</th>`)}
      </tr>
    </thead>
    <tbody>
      ${records.map(
        (record) =>
          html`<tr>
            ${columns.map((column) => html`<td data-label="${column}">${cell(record[column])}</td>`)}
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** The rows of an answer whose list field is not known in advance: its first array. */
export function rowsOf(body: unknown): unknown[] {
  if (Array.isArray(body)) return body;
  if (typeof body !== 'object' || body === null) return [];
  const list = Object.values(body).find(Array.isArray);
  return (list as unknown[] | undefined) ?? [body];
}

/** What an optional route answered: rows, or why there are none. */
export type Optional =
  | { kind: 'rows'; rows: unknown[] }
  | { kind: 'missing'; why: string }
  | { kind: 'error'; status: number; message: string };

function optionalSection(title: string, id: string, answer: Optional, caption: string): Html {
  return html`<section aria-labelledby="${id}">
    <h2 id="${id}">${title}</h2>
    ${
      answer.kind === 'rows'
        ? genericTable(answer.rows, caption)
        : answer.kind === 'missing'
          ? html`<p class="muted" data-missing="${id}">${answer.why}</p>`
          : html`<p class="error">${answer.status}: ${answer.message}</p>`
    }
  </section>`;
}

export interface ContainerView {
  container: ContainerJson;
  sessions: readonly SessionJson[];
  history: Optional;
  now: number;
  flash?: string;
}

export function containerBody(view: ContainerView): Html {
  const c = view.container;
  const field = (name: string, value: Html | string | number | null) =>
    html`<div>
      <dt>${name}</dt>
      <dd>${value === null || value === '' ? html`<span class="muted">—</span>` : value}</dd>
    </div>`;
  return html`<p class="crumbs">
      <a href="/console">Containers</a> ›
      <a href="/console/clients/${encodeURIComponent(c.clientId)}">${c.clientId}</a> ›
    </p>
    <h1 class="mono">${c.containerId}</h1>
    ${view.flash ? html`<p class="flash" role="status" id="flash">${view.flash}</p>` : ''}
    <dl class="facts">
      ${field('Status', statusBadge(c.status))}
      ${field('Generation', html`<span class="num">${c.generation}</span>`)}
      ${field('Sessions', html`<span class="num">${c.sessionCount}</span>`)}
      ${field('Idle stop in', countdown(c.idleStopAt, view.now, 'idle stop at'))}
      ${field('Kept alive by', keptAlive(c.keptAliveBy))}
      ${field('Expires in', countdown(c.expiresAt, view.now, 'expires at'))}
      ${field('Started', c.startedAt)} ${field('Last activity', c.lastActivityAt)}
      ${field('Stopped', c.stoppedAt)} ${field('Stop reason', c.stopReason)}
      ${field('Task', c.taskArn)} ${field('From warm pool', c.fromPool ? 'yes' : 'no')}
    </dl>
    ${
      isLive(c) && c.status !== 'terminating'
        ? html`<button
            type="button"
            class="danger"
            id="stop"
            hx-post="/console/containers/${encodeURIComponent(c.containerId)}/stop"
            hx-vals='{"generation": "${c.generation}"}'
            hx-target="#live"
            hx-confirm="Stop ${c.containerId} (generation ${c.generation})? Its workspace is saved first."
          >
            Stop container
          </button>`
        : ''
    }
    <section aria-labelledby="sessions">
      <h2 id="sessions">Sessions</h2>
      ${
        view.sessions.length === 0
          ? html`<p class="empty">No sessions.</p>`
          : html`<table class="cards">
              <thead>
                <tr>
                  <th scope="col">Session</th>
                  <th scope="col">Thread</th>
                  <th scope="col">Status</th>
                  <th scope="col">Assigned</th>
                  <th scope="col">Last activity</th>
                </tr>
              </thead>
              <tbody>
                ${view.sessions.map(
                  (s) =>
                    html`<tr>
                      <td data-label="Session" class="mono">${s.sessionId}</td>
                      <td data-label="Thread" class="mono">${s.threadId}</td>
                      <td data-label="Status">${statusBadge(s.status)}</td>
                      <td data-label="Assigned">${s.assignedAt}</td>
                      <td data-label="Last activity">${s.lastActivityAt}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
    </section>
    ${optionalSection('History', 'history', view.history, `history of ${c.containerId}`)}`;
}

export interface TenantView {
  clientId: string;
  containers: readonly ContainerJson[];
  usageToday: Optional;
  usageMonth: Optional;
  deliveries: Optional;
  now: number;
}

export function tenantBody(view: TenantView): Html {
  return html`<p class="crumbs"><a href="/console">Containers</a> ›</p>
    <h1>Client <span class="mono">${view.clientId}</span></h1>
    ${optionalSection('Usage today', 'usage-today', view.usageToday, 'usage today')}
    ${optionalSection('Usage this month', 'usage-month', view.usageMonth, 'usage this month')}
    <section aria-labelledby="tenant-containers">
      <h2 id="tenant-containers">Live containers</h2>
      ${
        view.containers.length === 0
          ? html`<p class="empty">No live containers.</p>`
          : containerTable(view.containers, view.now)
      }
    </section>
    ${optionalSection('Webhook deliveries', 'deliveries', view.deliveries, 'webhook deliveries')}`;
}

export function errorBodyHtml(status: number, message: string): Html {
  return html`<h1>${status === 404 ? 'Not found' : 'Something went wrong'}</h1>
    <p class="error" role="alert">${message}</p>
    <p><a href="/console">Back to the containers</a></p>`;
}
