import type {
  ContainerJson,
  DeliveryJson,
  GenerationJson,
  SessionJson,
  UsageRow,
} from '@berth/domain';
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
        <div id="flash-area" class="flash-area" role="status" aria-live="polite"></div>
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

/** `2026-12-01 14:17:54Z`: a UTC instant that reads at a glance and does not wrap. */
export function when(iso: string | null | undefined): Html {
  if (!iso) return html`<span class="muted">—</span>`;
  const text = iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z');
  return html`<time class="when num" datetime="${iso}">${text}</time>`;
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

/** What a route that may not exist on this deployment answered: its body, or why there is none. */
export type Optional<T> =
  | { kind: 'ok'; value: T }
  | { kind: 'missing'; why: string }
  | { kind: 'error'; status: number; message: string };

function optionalSection<T>(
  title: string,
  id: string,
  answer: Optional<T>,
  render: (value: T) => Html,
): Html {
  return html`<section aria-labelledby="${id}">
    <h2 id="${id}">${title}</h2>
    ${
      answer.kind === 'ok'
        ? render(answer.value)
        : answer.kind === 'missing'
          ? html`<p class="muted" data-missing="${id}">${answer.why}</p>`
          : html`<p class="error">${answer.status}: ${answer.message}</p>`
    }
  </section>`;
}

const dash = html`<span class="muted">—</span>`;
const orDash = (value: string | number | null | undefined): Html | string | number =>
  value === null || value === undefined || value === '' ? dash : value;

/** `1h 02m 03s`-style, for a generation's length. */
export function formatDuration(totalSeconds: number | null): string | null {
  if (totalSeconds === null) return null;
  const hours = Math.floor(totalSeconds / 3_600);
  const minutes = Math.floor((totalSeconds % 3_600) / 60);
  const seconds = Math.floor(totalSeconds % 60);
  if (hours > 0) return `${hours}h ${String(minutes).padStart(2, '0')}m`;
  if (minutes > 0) return `${minutes}m ${String(seconds).padStart(2, '0')}s`;
  return `${seconds}s`;
}

/** `GET /v1/containers/{id}/history` (docs/contract.md). */
export interface HistoryJson {
  containerId: string;
  generations: GenerationJson[];
}

export function historyTable(history: HistoryJson): Html {
  if (history.generations.length === 0) return html`<p class="empty">No generations.</p>`;
  return html`<table class="cards" id="history-table">
    <thead>
      <tr>
        <th scope="col" class="n">Gen.</th>
        <th scope="col">Status</th>
        <th scope="col">Started</th>
        <th scope="col">Stopped</th>
        <th scope="col">Ran for</th>
        <th scope="col">Why</th>
        <th scope="col">By</th>
        <th scope="col">Events</th>
      </tr>
    </thead>
    <tbody>
      ${history.generations.map(
        (g) =>
          html`<tr data-generation="${g.generation}">
            <td data-label="Gen." class="n num">${g.generation}</td>
            <td data-label="Status">${statusBadge(g.status)}</td>
            <td data-label="Started">${when(g.startedAt ?? g.createdAt)}</td>
            <td data-label="Stopped">${when(g.stoppedAt)}</td>
            <td data-label="Ran for" class="num">${orDash(formatDuration(g.durationSeconds))}</td>
            <td data-label="Why">${orDash(g.stopReason)}</td>
            <td data-label="By">
              ${orDash(g.stoppedBy?.reason)}
              ${
                g.stoppedBy?.commandId
                  ? html`<br /><span class="mono muted">${g.stoppedBy.commandId}</span>`
                  : ''
              }
            </td>
            <td data-label="Events">
              <details>
                <summary>${g.events.length} event${g.events.length === 1 ? '' : 's'}</summary>
                <ol class="events">
                  ${g.events.map((e) => html`<li>${when(e.occurredAt)} ${e.type}</li>`)}
                </ol>
              </details>
            </td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

/** `GET /v1/usage` (docs/contract.md). */
export interface UsageJson {
  clientId: string | null;
  from: string;
  to: string;
  retainedSince: string;
  days: UsageRow[];
  totals: { containerHours: number; sessions: number; generations: number };
}

/** Two decimals; a little that rounds to nothing still shows it is not nothing. */
const hours = (value: number) => (value > 0 && value < 0.005 ? '< 0.01' : value.toFixed(2));

/** Today's and this month's figures from one month-to-date answer, then per project. */
export function usageSummary(usage: UsageJson, today: string): Html {
  const todays = usage.days.filter((day) => day.day === today);
  const sum = (days: UsageJson['days'], pick: (d: UsageJson['days'][number]) => number) =>
    days.reduce((total, day) => total + pick(day), 0);
  const projects = new Map<string, { containerHours: number; sessions: number }>();
  for (const day of usage.days) {
    const project = projects.get(day.projectId) ?? { containerHours: 0, sessions: 0 };
    project.containerHours += day.containerHours;
    project.sessions += day.sessions;
    projects.set(day.projectId, project);
  }
  return html`<dl class="facts figures">
      <div>
        <dt>Container-hours today</dt>
        <dd class="num" id="hours-today">${hours(sum(todays, (d) => d.containerHours))}</dd>
      </div>
      <div>
        <dt>Container-hours this month</dt>
        <dd class="num" id="hours-month">${hours(usage.totals.containerHours)}</dd>
      </div>
      <div>
        <dt>Sessions today</dt>
        <dd class="num" id="sessions-today">${sum(todays, (d) => d.sessions)}</dd>
      </div>
      <div>
        <dt>Sessions this month</dt>
        <dd class="num">${usage.totals.sessions}</dd>
      </div>
    </dl>
    <p class="muted">
      ${usage.from} to ${usage.to} (UTC days); the history is kept since ${usage.retainedSince}.
    </p>
    ${
      projects.size === 0
        ? ''
        : html`<table class="cards">
            <thead>
              <tr>
                <th scope="col">Project (this month)</th>
                <th scope="col" class="n">Container-hours</th>
                <th scope="col" class="n">Sessions</th>
              </tr>
            </thead>
            <tbody>
              ${[...projects.entries()]
                .sort(([a], [b]) => a.localeCompare(b))
                .map(
                  ([projectId, totals]) =>
                    html`<tr>
                      <td data-label="Project">${projectId}</td>
                      <td data-label="Container-hours" class="n num">
                        ${hours(totals.containerHours)}
                      </td>
                      <td data-label="Sessions" class="n num">${totals.sessions}</td>
                    </tr>`,
                )}
            </tbody>
          </table>`
    }`;
}

/** One lifecycle event as `GET /v1/events` answers it (the topic's message body). */
export interface EventJson {
  type: string;
  eventId: string;
  occurredAt: string;
  containerId?: string | null;
  sessionId?: string | null;
  payload?: Record<string, unknown>;
}

/** What an event adds to its type: a stop's reason, a rejection's reason. */
function eventDetail(event: EventJson): string | null {
  const container = event.payload?.container as { stopReason?: unknown } | undefined;
  if (typeof container?.stopReason === 'string') return container.stopReason;
  const reason = event.payload?.reason;
  return typeof reason === 'string' ? reason : null;
}

export function eventsTable(answer: { events: readonly EventJson[] }): Html {
  if (answer.events.length === 0) return html`<p class="empty">None.</p>`;
  return html`<table class="cards" id="recent-events">
    <thead>
      <tr>
        <th scope="col">When</th>
        <th scope="col">Event</th>
        <th scope="col">Container</th>
        <th scope="col">Session</th>
        <th scope="col">Detail</th>
      </tr>
    </thead>
    <tbody>
      ${answer.events.map(
        (e) =>
          html`<tr>
            <td data-label="When">${when(e.occurredAt)}</td>
            <td data-label="Event">${e.type}</td>
            <td data-label="Container" class="mono">
              ${
                e.containerId
                  ? html`<a href="/console/containers/${encodeURIComponent(e.containerId)}"
                      >${e.containerId}</a
                    >`
                  : dash
              }
            </td>
            <td data-label="Session" class="mono">${orDash(e.sessionId)}</td>
            <td data-label="Detail">${orDash(eventDetail(e))}</td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export interface WebhookView {
  webhook: { url: string; events: string[] } | null;
  dead: readonly DeliveryJson[];
  recent: readonly DeliveryJson[];
}

function deliveryTable(deliveries: readonly DeliveryJson[], id: string): Html {
  if (deliveries.length === 0) return html`<p class="empty">None.</p>`;
  return html`<table class="cards" id="${id}">
    <thead>
      <tr>
        <th scope="col">Event</th>
        <th scope="col">Container</th>
        <th scope="col">Status</th>
        <th scope="col" class="n">Attempts</th>
        <th scope="col">Last answer</th>
        <th scope="col">When</th>
      </tr>
    </thead>
    <tbody>
      ${deliveries.map(
        (d) =>
          html`<tr>
            <td data-label="Event">${d.eventType}</td>
            <td data-label="Container" class="mono">${d.containerId}</td>
            <td data-label="Status">${statusBadge(d.status)}</td>
            <td data-label="Attempts" class="n num">${d.attempts}</td>
            <td data-label="Last answer">
              ${orDash(d.lastStatusCode ?? d.lastError)}${
                d.lastStatusCode !== null && d.lastError
                  ? html` <span class="muted">${d.lastError}</span>`
                  : ''
              }
            </td>
            <td data-label="When">
              ${
                d.status === 'pending' && d.nextAttemptAt
                  ? html`next ${when(d.nextAttemptAt)}`
                  : when(d.deliveredAt ?? d.deadAt ?? d.lastAttemptAt)
              }
            </td>
          </tr>`,
      )}
    </tbody>
  </table>`;
}

export function webhookSection(view: WebhookView): Html {
  return html`${
      view.webhook
        ? html`<p>
            Sends <span class="mono">${view.webhook.events.join(', ')}</span> to
            <span class="mono">${view.webhook.url}</span>
          </p>`
        : html`<p class="muted">No webhook configured.</p>`
    }
    <h3>Dead letters</h3>
    ${deliveryTable(view.dead, 'dead-letters')}
    <h3>Recent deliveries</h3>
    ${deliveryTable(view.recent, 'recent-deliveries')}`;
}

/**
 * The link to a container's logs from a template (`BERTH_CONSOLE_LOG_URL`): `{region}` and
 * `{taskId}` come from its task's ARN (`arn:aws:ecs:<region>:<account>:task/<cluster>/<id>`),
 * each value URL-encoded. None without a template or a task.
 */
export function logUrlOf(
  template: string | undefined,
  container: Pick<ContainerJson, 'taskArn' | 'containerId' | 'generation'>,
): string | null {
  if (!template || !container.taskArn) return null;
  const values: Record<string, string> = {
    region: container.taskArn.split(':')[3] ?? '',
    taskId: container.taskArn.split('/').pop() ?? '',
    containerId: container.containerId,
    generation: String(container.generation),
  };
  return template.replace(/\{(region|taskId|containerId|generation)\}/g, (_, name: string) =>
    encodeURIComponent(values[name] ?? ''),
  );
}

export interface ContainerView {
  /** Where its logs are, when the deployment says (logUrlOf). */
  logUrl: string | null;
  container: ContainerJson;
  sessions: readonly SessionJson[];
  history: Optional<HistoryJson>;
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
    ${
      view.flash
        ? // Out of band (htmx): into #flash-area, outside the live region, so the reload that
          // the stop's own events cause does not wipe the message away.
          html`<div id="flash-area" hx-swap-oob="true">
            <p class="flash" id="flash">${view.flash}</p>
          </div>`
        : ''
    }
    <dl class="facts">
      ${field('Status', statusBadge(c.status))}
      ${field('Generation', html`<span class="num">${c.generation}</span>`)}
      ${field('Sessions', html`<span class="num">${c.sessionCount}</span>`)}
      ${field('Idle stop in', countdown(c.idleStopAt, view.now, 'idle stop at'))}
      ${field('Kept alive by', keptAlive(c.keptAliveBy))}
      ${field('Expires in', countdown(c.expiresAt, view.now, 'expires at'))}
      ${field('Started', when(c.startedAt))} ${field('Last activity', when(c.lastActivityAt))}
      ${field('Stopped', when(c.stoppedAt))} ${field('Stop reason', c.stopReason)}
      ${field('Task', c.taskArn)} ${field('From warm pool', c.fromPool ? 'yes' : 'no')}
      ${
        view.logUrl
          ? field(
              'Logs',
              html`<a href="${view.logUrl}" id="logs" target="_blank" rel="noopener noreferrer"
                >this generation's logs</a
              >`,
            )
          : ''
      }
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
                      <td data-label="Assigned">${when(s.assignedAt)}</td>
                      <td data-label="Last activity">${when(s.lastActivityAt)}</td>
                    </tr>`,
                )}
              </tbody>
            </table>`
      }
    </section>
    ${optionalSection('History', 'history', view.history, historyTable)}`;
}

export interface TenantView {
  clientId: string;
  containers: readonly ContainerJson[];
  /** Month to date, today included. */
  usage: Optional<UsageJson>;
  today: string;
  webhooks: Optional<WebhookView>;
  events: Optional<{ events: EventJson[] }>;
  now: number;
}

export function tenantBody(view: TenantView): Html {
  return html`<p class="crumbs"><a href="/console">Containers</a> ›</p>
    <h1>Client <span class="mono">${view.clientId}</span></h1>
    ${optionalSection('Usage', 'usage', view.usage, (usage) => usageSummary(usage, view.today))}
    <section aria-labelledby="tenant-containers">
      <h2 id="tenant-containers">Live containers</h2>
      ${
        view.containers.length === 0
          ? html`<p class="empty">No live containers.</p>`
          : containerTable(view.containers, view.now)
      }
    </section>
    ${optionalSection('Recent events', 'events', view.events, eventsTable)}
    ${optionalSection('Webhook deliveries', 'deliveries', view.webhooks, webhookSection)}`;
}

export function errorBodyHtml(status: number, message: string): Html {
  return html`<h1>${status === 404 ? 'Not found' : 'Something went wrong'}</h1>
    <p class="error" role="alert">${message}</p>
    <p><a href="/console">Back to the containers</a></p>`;
}
