/**
 * The operator console (issue 18, item 3) end to end in a real headless Chromium (Debian's
 * package, driven by playwright-core) on the local stack: sign in, see a container appear
 * when it is discovered (no reload: server-sent events), watch its idle countdown tick
 * without moving the layout, stop it from its page with the keyboard, see it stopped and in
 * its history. Screenshots of each page go to tools/tests/artifacts/console/ (git-ignored);
 * docs/console.md shows one of each, copied from there.
 */
// The functions given to page.evaluate and waitForFunction run in the browser.
/// <reference lib="dom" />
import { mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { RunningStack } from '../src/stack/harness.ts';
import {
  connect,
  eventually,
  http,
  startStackRetrying,
  tokenFor,
  type StackClients,
} from './stack-helpers.ts';

const CHROMIUM = process.env.BERTH_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = fileURLToPath(new URL('./artifacts/console/', import.meta.url));
const STACK_ENV = {
  // Long enough that the countdown is still running when the test stops the container.
  BERTH_IDLE_TIMEOUT: '30m',
  BERTH_POOL_SIZE: '0',
  BERTH_SHUTDOWN_GRACE: '20s',
  // The test's webhook receiver listens on 127.0.0.1 over http.
  BERTH_WEBHOOK_ALLOW_HTTP: 'true',
  BERTH_WEBHOOK_ALLOWED_NETWORKS: '127.0.0.1/32',
  // Where the container page links a generation's logs (on AWS: CloudWatch).
  BERTH_CONSOLE_LOG_URL:
    'https://logs.example/{region}/{taskId}?container={containerId}&g={generation}',
};
const IDLE = { clientId: 'acme', projectId: 'console', userId: 'ann' };
const IDLE_ID = 'acme.console.ann';
const BUSY = { clientId: 'acme', projectId: 'console', userId: 'bob' };
const BUSY_ID = 'acme.console.bob';
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

let stack: RunningStack;
let clients: StackClients;
let browser: Browser;
/** A webhook receiver that accepts everything. */
let receiver: Server;
let receiverUrl: string;

/** Whole seconds of an `hh:mm:ss` (or `Nd hh:mm:ss`) countdown. */
function secondsOf(text: string): number {
  const match = /^(?:(\d+)d )?(\d{2}):(\d{2}):(\d{2})$/.exec(text.trim());
  if (!match) throw new Error(`not a countdown: ${JSON.stringify(text)}`);
  const [, days, hours, minutes, seconds] = match;
  return (
    Number(days ?? 0) * 86_400 + Number(hours) * 3_600 + Number(minutes) * 60 + Number(seconds)
  );
}

async function screenshot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: `${ARTIFACTS}${name}.png`, fullPage: true });
}

/** Waits until the page's status badge (in `scope`) says `status`. */
async function waitForStatus(page: Page, scope: string, status: string, timeout = 90_000) {
  await page.waitForFunction(
    ([selector, wanted]) =>
      document.querySelector(`${selector} [data-status]`)?.getAttribute('data-status') === wanted,
    [scope, status] as const,
    { timeout },
  );
}

async function signIn(context: BrowserContext, token: string): Promise<Page> {
  const page = await context.newPage();
  await page.goto(`${stack.url}/console`);
  await page.waitForURL('**/console/login');
  await page.fill('#token', token);
  await page.click('#login-submit');
  await page.waitForURL(/\/console$/);
  return page;
}

beforeAll(async () => {
  mkdirSync(ARTIFACTS, { recursive: true });
  stack = await startStackRetrying(STACK_ENV);
  clients = await connect(stack);
  browser = await chromium.launch({ executablePath: CHROMIUM });
  receiver = createServer((request, response) => {
    request.resume();
    request.on('end', () => response.writeHead(204).end());
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await new Promise((resolve) => (receiver ? receiver.close(resolve) : resolve(undefined)));
  await clients?.close();
  await stack?.stop();
}, 120_000);

describe('the console in a headless browser', () => {
  it('shows the login form to a visitor without a token and refuses a bad or non-admin token', async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    try {
      const page = await context.newPage();
      await page.goto(`${stack.url}/console/containers/${IDLE_ID}`);
      await page.waitForURL('**/console/login');
      await screenshot(page, 'login');

      await page.fill('#token', 'not-a-token');
      await page.click('#login-submit');
      expect(await page.textContent('#login-error')).toContain('invalid or expired');

      await page.fill('#token', tokenFor(stack, 'acme', 'ann', 'user'));
      await page.click('#login-submit');
      expect(await page.textContent('#login-error')).toContain('needs an admin token');
      expect(await context.cookies()).toEqual([]);

      // The event stream refuses the browser too, and says so.
      const answer = await page.evaluate(async () => {
        const response = await fetch('/console/events');
        return response.status;
      });
      expect(answer).toBe(401);
    } finally {
      await context.close();
    }
  });

  it('shows a container when it is discovered, ticks its countdown, stops it from its page and shows its history', async () => {
    const context = await browser.newContext({ viewport: DESKTOP });
    try {
      // Prepare: a lifetime policy, so the page has an expiry to count down to as well.
      expect(
        (
          await http(stack, 'PUT', `/v1/policies/${IDLE.clientId}`, {
            body: { maxLifetime: '12h' },
          })
        ).status,
      ).toBe(200);
      // A webhook to a local receiver, so the tenant page has deliveries to show.
      const webhook = await http(stack, 'PUT', `/v1/webhooks/${IDLE.clientId}`, {
        body: {
          url: `${receiverUrl}/acme`,
          events: ['container.*'],
          secret: 'a-console-test-webhook-secret',
        },
      });
      expect([webhook.status, webhook.body]).toEqual([200, expect.anything()]);
      const page = await signIn(context, stack.adminToken);
      const cookies = await context.cookies();
      expect(cookies.map((c) => [c.name, c.httpOnly, c.sameSite, c.path])).toEqual([
        ['berth_console', true, 'Strict', '/console'],
      ]);
      expect(page.url()).not.toContain(stack.adminToken);
      await page.waitForSelector('#feed[data-state="live"]', { timeout: 30_000 });
      // A reload would lose this: what follows must arrive through the event stream.
      await page.evaluate(() => {
        (window as unknown as { berthMarker: string }).berthMarker = 'not reloaded';
      });

      // Act: discover one container (idle: it has no session), and give another a session.
      expect((await http(stack, 'POST', '/v1/containers/discover', { body: IDLE })).status).toBe(
        201,
      );
      await clients.commands.sendCommand('session.assign', {
        ...BUSY,
        sessionId: 'console-bob-1',
        threadId: 'plan',
      });

      // Assert: both appear, running, without a reload.
      const idleRow = `tr[data-container="${IDLE_ID}"]`;
      await waitForStatus(page, idleRow, 'running');
      await waitForStatus(page, `tr[data-container="${BUSY_ID}"]`, 'running');
      expect(
        await page.evaluate(() => (window as unknown as { berthMarker?: string }).berthMarker),
      ).toBe('not reloaded');
      expect(
        await page.textContent(`tr[data-container="${BUSY_ID}"] td[data-label="Kept alive by"]`),
      ).toContain('sessions');

      // The idle countdown ticks down, and its box keeps its size as it does.
      const countdown = page.locator(`${idleRow} td.idle time`);
      await countdown.waitFor();
      const before = (await countdown.textContent()) ?? '';
      const boxBefore = await countdown.boundingBox();
      await page.waitForFunction(
        ([selector, first]) => document.querySelector(selector)?.textContent !== first,
        [`${idleRow} td.idle time`, before] as const,
        { timeout: 10_000 },
      );
      const after = (await countdown.textContent()) ?? '';
      expect(secondsOf(after)).toBeLessThan(secondsOf(before));
      expect(secondsOf(before)).toBeLessThanOrEqual(30 * 60);
      const boxAfter = await countdown.boundingBox();
      expect(boxAfter?.width).toBe(boxBefore?.width);
      expect(boxAfter?.height).toBe(boxBefore?.height);
      expect(
        secondsOf((await page.textContent(`${idleRow} td.expires time`)) ?? ''),
      ).toBeGreaterThan(11 * 3_600);
      await screenshot(page, 'containers');
      await page.setViewportSize(PHONE);
      await screenshot(page, 'containers-phone');
      // On a phone the table is a list of cards: nothing wider than the screen.
      expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(
        PHONE.width,
      );
      await page.setViewportSize(DESKTOP);

      // The busy container's page lists its session.
      await page.goto(`${stack.url}/console/containers/${BUSY_ID}`);
      expect(await page.textContent('#live')).toContain('console-bob-1');

      // To the idle container's page and its stop button with the keyboard only.
      await page.goto(`${stack.url}/console`);
      await page.waitForSelector(idleRow);
      await page.keyboard.press('Tab');
      expect(await page.evaluate(() => document.activeElement?.textContent)).toBe(
        'Skip to content',
      );
      await page.focus(`#open-${IDLE_ID.replaceAll('.', '_')}`);
      await page.keyboard.press('Enter');
      await page.waitForURL(`**/console/containers/${IDLE_ID}`);
      await page.waitForSelector('#feed[data-state="live"]', { timeout: 30_000 });
      await screenshot(page, 'container');
      expect(await page.getAttribute('#logs', 'href')).toMatch(
        new RegExp(`^https://logs\\.example/local/[^/?]+\\?container=${IDLE_ID}&g=1$`),
      );

      page.once('dialog', (dialog) => void dialog.accept());
      const stopAnswer = page.waitForResponse((response) => response.url().endsWith('/stop'));
      await page.focus('#stop');
      await page.keyboard.press('Enter');
      const stopped = await stopAnswer;
      expect([stopped.status(), stopped.status() === 200 ? '' : await stopped.text()]).toEqual([
        200,
        '',
      ]);
      await page.waitForSelector('#flash');
      expect(await page.textContent('#flash')).toContain('Stop requested');

      // It becomes stopped on the page as the events arrive, without a reload.
      await page.evaluate(() => {
        (window as unknown as { berthMarker: string }).berthMarker = 'not reloaded';
      });
      await waitForStatus(page, '.facts', 'stopped');
      expect(
        await page.evaluate(() => (window as unknown as { berthMarker?: string }).berthMarker),
      ).toBe('not reloaded');
      expect(await page.textContent('.facts')).toContain('manual:console: by');
      expect(await page.locator('#stop').count()).toBe(0);

      // Its history (GET /v1/containers/{id}/history). The history is written by another
      // service from its own queue, so it may trail the event that made the page live: the
      // page is reloaded until it shows the stop.
      await eventually('the stop in the history on the page', async () => {
        await page.reload();
        const text = (await page.textContent('#history-table').catch(() => null)) ?? '';
        return text.includes('manual:console') ? text : undefined;
      });
      const generation = '#history-table tr[data-generation="1"]';
      expect(await page.textContent(`${generation} [data-status]`)).toBe('stopped');
      expect(await page.textContent(`${generation} td[data-label="By"]`)).toContain('manual');
      expect(await page.textContent(`${generation} td[data-label="Events"]`)).toContain(
        'container.stopped',
      );
      await screenshot(page, 'container-stopped');

      // The tenant view: its live containers (bob's), usage, its webhook and its deliveries.
      await page.click(`.crumbs a[href="/console/clients/${IDLE.clientId}"]`);
      await page.waitForURL(`**/console/clients/${IDLE.clientId}`);
      expect(await page.textContent('#live')).toContain(BUSY_ID.split('.').slice(1).join(' / '));
      // Usage from the history: bob's session today (the container-hours are fractions of one).
      expect(await page.textContent('#hours-today')).toMatch(/^(< )?\d+\.\d{2}$/);
      await eventually("bob's session in the usage on the page", async () => {
        if ((await page.textContent('#sessions-today')) === '1') return true;
        await page.reload();
        return undefined;
      });
      expect(await page.textContent('section[aria-labelledby="deliveries"]')).toContain(
        `${receiverUrl}/acme`,
      );
      // The client's recent events (GET /v1/events), the console's stop among them.
      const stopEvent = page.locator('#recent-events tbody tr', { hasText: 'container.stopped' });
      expect(await stopEvent.first().textContent()).toContain('manual:console');
      // The webhook service delivered the stop to the receiver, and the page lists it.
      await eventually('the delivered container.stopped on the page', async () => {
        const rows = await page
          .locator('#recent-deliveries tbody tr', { hasText: 'container.stopped' })
          .allTextContents();
        if (rows.some((row) => row.includes(IDLE_ID) && row.includes('delivered'))) return true;
        await page.reload();
        return undefined;
      });
      await screenshot(page, 'tenant');

      // Signing out clears the cookie: the console is the login form again.
      await page.click('.logout button');
      await page.waitForURL('**/console/login');
      expect(await context.cookies()).toEqual([]);
    } finally {
      await context.close();
    }
  });
});
