// Starts a private carehub for the browser tests: its own nats-server on a free port, `carehub up
// --demo` with a temp data dir serving web/dist, and the hub as a separate `carehub serve
// hub` process the tests can stop and start again. Drives Debian's chromium with playwright-core.

import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import AxeBuilder from '@axe-core/playwright';

const here = dirname(fileURLToPath(import.meta.url));
export const webDir = resolve(here, '..');
export const repo = resolve(webDir, '..');
export const artifacts = join(webDir, 'e2e-artifacts');

function carehubBin() {
  if (process.env.CAREHUB_BIN) return process.env.CAREHUB_BIN;
  const target = process.env.CARGO_TARGET_DIR ? resolve(repo, process.env.CARGO_TARGET_DIR) : join(repo, 'target');
  for (const p of [join(target, 'debug', 'carehub'), join(target, 'release', 'carehub')]) if (existsSync(p)) return p;
  throw new Error(`no carehub binary under ${target}: run \`cargo build --bin carehub\` first (or set CAREHUB_BIN)`);
}

function natsBin() {
  // scripts/test.sh exports the nats-server carehub is tested on (2.15.1).
  if (process.env.CAREHUB_NATS_SERVER) return process.env.CAREHUB_NATS_SERVER;
  for (const p of ['/usr/sbin/nats-server', '/usr/bin/nats-server', '/usr/local/bin/nats-server']) if (existsSync(p)) return p;
  return 'nats-server';
}

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns a truthy value or `ms` passes. */
export async function until(what, fn, ms = 60_000) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
}

function child(name, cmd, args, env, log) {
  const p = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  p.out = '';
  const keep = (d) => {
    p.out += d.toString();
    if (p.out.length > 200_000) p.out = p.out.slice(-100_000);
    if (process.env.E2E_VERBOSE) process.stderr.write(`[${name}] ${d}`);
  };
  p.stdout.on('data', keep);
  p.stderr.on('data', keep);
  p.exited = new Promise((r) => p.once('exit', (code, signal) => r({ code, signal })));
  log.push(p);
  return p;
}

/**
 * What a page must not do unless a test provoked it: log a console error, fail a request, get an
 * HTTP answer of 400 or more, or show the API's own error message (people read sentences).
 */
class Watch {
  /** `[status, url pattern]` pairs a test provoked on purpose. */
  allowed = [];
  /** Console error patterns a test provoked on purpose. */
  allowedConsole = [];
  problems = [];
  /** `error.message` of every API error answer the page received. */
  apiMessages = new Set();
  /** Error bodies still being read. */
  pending = [];

  constructor(page) {
    this.page = page;
    page.on('pageerror', (e) => this.problems.push(`page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() !== 'error') return;
      const text = m.text();
      const url = m.location()?.url ?? '';
      // Chromium logs every HTTP error answer as a console error too; judged with the response.
      const status = /status of (\d{3})/.exec(text);
      if (status && this.isAllowed(Number(status[1]), url)) return;
      if (this.allowedConsole.some((re) => re.test(text))) return;
      this.problems.push(`console error: ${text} (${url})`);
    });
    page.on('requestfailed', (r) => {
      const why = r.failure()?.errorText ?? '';
      // A navigation or a closing page cancels what is in flight: not a failure of the app.
      if (why === 'net::ERR_ABORTED') return;
      if (this.isAllowed(0, r.url())) return;
      this.problems.push(`request failed: ${r.method()} ${r.url()} ${why}`);
    });
    page.on('response', (r) => {
      if (r.status() < 400) return;
      const url = r.url();
      if (!this.isAllowed(r.status(), url)) this.problems.push(`HTTP ${r.status()}: ${r.request().method()} ${url}`);
      this.pending.push(
        r
          .text()
          .then((t) => {
            const message = JSON.parse(t)?.error?.message;
            if (message) this.apiMessages.add(message);
          })
          .catch(() => {}), // Not JSON, or the page went away first.
      );
    });
  }

  isAllowed(status, url) {
    return this.allowed.some(([s, re]) => (s === status || s === '*') && re.test(url));
  }

  /** Fails when an API error message is on screen now. */
  async rawMessagesShown() {
    // A body the page never read may never arrive: wait a little, not forever.
    await Promise.race([Promise.all(this.pending), sleep(5000)]);
    if (this.page.isClosed()) return [];
    const text = await this.page.evaluate(() => document.body.innerText).catch(() => '');
    return [...this.apiMessages].filter((m) => m.length > 3 && text.includes(m));
  }
}

export class Clinic {
  procs = [];
  accounts = [];
  /** Content-Security-Policy violations any page reported. */
  cspErrors = [];
  watches = new Map();

  async start() {
    mkdirSync(artifacts, { recursive: true });
    this.tmp = mkdtempSync(join(tmpdir(), 'carehub-e2e-'));
    const [nats, gw, hub, innerHub] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    this.base = `http://127.0.0.1:${gw}`;
    this.hubPort = hub;
    const natsUrl = `nats://127.0.0.1:${nats}`;
    const dist = join(webDir, 'dist');
    if (!existsSync(join(dist, 'index.html'))) throw new Error('web/dist is missing: run `npm run build` first');
    this.common = {
      CAREHUB_NATS_URL: natsUrl,
      CAREHUB_PUBLIC_URL: this.base,
      // Calls may start any time before a confirmed appointment (tests book days ahead).
      CAREHUB_CALL_EARLY: String(30 * 86400),
      CAREHUB_LOG_JSON: 'false',
      RUST_LOG: process.env.RUST_LOG ?? 'warn',
    };
    this.nats = child('nats', natsBin(), ['-a', '127.0.0.1', '-p', String(nats), '-js', '-sd', join(this.tmp, 'nats')], {}, this.procs);
    await until('nats-server', async () => {
      await new Promise((ok, fail) => {
        const s = createServer();
        s.once('error', () => ok());
        s.listen(nats, '127.0.0.1', () => s.close(() => fail(new Error('not listening'))));
      });
      return true;
    }, 20_000);
    this.bin = carehubBin();
    this.startHub();
    this.up = child(
      'carehub',
      this.bin,
      ['up', '--demo'],
      {
        ...this.common,
        CAREHUB_DATA_DIR: join(this.tmp, 'data'),
        CAREHUB_GATEWAY_ADDR: `127.0.0.1:${gw}`,
        // `carehub up` runs a hub of its own; the gateway uses the separate one.
        CAREHUB_HUB_ADDR: `127.0.0.1:${innerHub}`,
        CAREHUB_HUB_URL: `ws://127.0.0.1:${hub}/ws`,
        CAREHUB_WEB_DIR: dist,
        CAREHUB_RATE_LIMIT_PER_SEC: '2000',
        CAREHUB_RATE_LIMIT_BURST: '4000',
      },
      this.procs,
    );
    await until('carehub up', async () => {
      if (this.up.exitCode !== null) throw new Error(`carehub exited:\n${this.up.out.slice(-3000)}`);
      const r = await fetch(`${this.base}/readyz`);
      return r.ok && /Sign in with/.test(this.up.out);
    }, 120_000);
    for (const line of this.up.out.split('\n')) {
      const m = /^\s+(patient|doctor|admin)\s+(\S+@\S+)\s+(\S+)\s+\((.+)\)\s*$/.exec(line);
      if (m) this.accounts.push({ role: m[1], email: m[2], password: m[3], name: m[4] });
    }
    if (this.accounts.length < 5) throw new Error(`demo accounts not found in:\n${this.up.out}`);
    // The demo is furnished in the background: wait for its two groups and the doctors' hours.
    const admin = await this.token(this.account('admin'));
    await until('demo groups', async () => {
      const g = await this.api('GET', '/api/admin/groups', admin);
      return g.groups?.length >= 2;
    }, 90_000);
    const pat = await this.token(this.account('patient'));
    await until('demo doctors with specialties', async () => {
      const d = await this.api('GET', '/api/doctors?limit=100', pat);
      return d.doctors?.filter((x) => x.specialties.length).length >= 4;
    }, 90_000);
    this.browser = await chromium.launch({
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      headless: true,
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--use-fake-device-for-media-stream',
        '--use-fake-ui-for-media-stream',
        '--allow-loopback-in-peer-connection',
        '--disable-features=WebRtcHideLocalIpsWithMdns',
      ],
    });
  }

  startHub() {
    this.hub = child(
      'hub',
      this.bin,
      ['serve', 'hub'],
      { ...this.common, CAREHUB_DATA_DIR: join(this.tmp, 'hub'), CAREHUB_HUB_ADDR: `127.0.0.1:${this.hubPort}` },
      this.procs,
    );
    return this.hub;
  }

  /** Stops the hub process (it closes its sockets on the way out) and waits until it is gone. */
  async stopHub() {
    const h = this.hub;
    h.kill('SIGTERM');
    const r = await Promise.race([h.exited, sleep(15_000).then(() => null)]);
    if (!r) {
      h.kill('SIGKILL');
      await h.exited;
    }
  }

  async stop() {
    await this.browser?.close().catch(() => {});
    for (const p of this.procs.reverse()) if (p.exitCode === null && p.signalCode === null) p.kill('SIGTERM');
    await Promise.race([Promise.all(this.procs.map((p) => p.exited)), sleep(15_000)]);
    for (const p of this.procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    if (this.tmp && !process.env.E2E_KEEP) rmSync(this.tmp, { recursive: true, force: true });
  }

  account(role, n = 0) {
    const list = this.accounts.filter((a) => a.role === role);
    return list[n];
  }

  byEmail(prefix) {
    return this.accounts.find((a) => a.email.startsWith(prefix));
  }

  async api(method, path, token, body, headers = {}) {
    const r = await fetch(this.base + path, {
      method,
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    const json = text ? JSON.parse(text) : null;
    if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${text}`);
    return json;
  }

  async token(acct) {
    const s = await this.api('POST', '/api/auth/login', null, { email: acct.email, password: acct.password, refresh_token_in: 'body' });
    return s.access_token;
  }

  /** A signed-in page in a fresh browser context. */
  async pageAs(acct, opts = {}) {
    const ctx = await this.browser.newContext({ baseURL: this.base, ...opts });
    const page = await ctx.newPage();
    this.watches.set(page, new Watch(page));
    page.on('pageerror', (e) => console.error(`[page error] ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' && /Content Security Policy|Refused to/.test(m.text())) this.cspErrors.push(m.text());
    });
    if (acct) await this.login(page, acct);
    return page;
  }

  /** Watches another page of a context `pageAs` made (a second tab), as `pageAs` does. */
  watch(page) {
    this.watches.set(page, new Watch(page));
    return page;
  }

  async login(page, acct) {
    await page.goto('/login');
    await page.getByLabel('Email').fill(acct.email);
    await page.getByLabel('Password').fill(acct.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // The bell shows on every screen size (the sign-out button sits behind a menu on a phone).
    await page.getByTestId('bell').waitFor();
  }

  /**
   * Lets `page` receive an HTTP `status` (or, with 0, a failed request; with '*', any) from
   * URLs matching `url` without failing the test: the test provokes it on purpose.
   */
  allow(page, status, url) {
    this.watches.get(page).allowed.push([status, url]);
  }

  /** Lets `page` log console errors matching `re`: the test provokes them on purpose. */
  allowConsole(page, re) {
    this.watches.get(page).allowedConsole.push(re);
  }

  /** What went wrong on `page` so far that no test asked for (and raw API messages on screen). */
  async problems(page) {
    const w = this.watches.get(page);
    const raw = await w.rawMessagesShown();
    return [...w.problems, ...raw.map((m) => `the API's own message is on screen: ${m}`)];
  }

  /** Checks `page` had no unprovoked problem, then closes its context. */
  async close(...pages) {
    const found = [];
    for (const page of pages) {
      found.push(...(await this.problems(page)));
      this.watches.delete(page);
      await page.context().close();
    }
    if (found.length) throw new Error(`problems on the page:\n${found.join('\n')}`);
  }

  /** The unread count the bell shows (no badge: none unread). */
  async unread(page) {
    return Number((await page.getByTestId('bell').getAttribute('data-unread')) ?? 'NaN');
  }

  /** Names of the mail files the clinic has written so far. */
  mailFiles() {
    const dir = join(this.tmp, 'data', 'mail');
    return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.eml')) : [];
  }

  /**
   * Waits for a mail to `to` that is not among `before` (names from `mailFiles()`); carehub writes
   * mail as .eml files under its data dir when no SMTP server is configured.
   */
  async mailTo(to, before = []) {
    const dir = join(this.tmp, 'data', 'mail');
    return until(`a mail to ${to}`, () => {
      for (const f of this.mailFiles()) {
        if (before.includes(f)) continue;
        const text = readFileSync(join(dir, f), 'utf8');
        if (text.includes(to)) return text;
      }
      return null;
    }, 30_000);
  }
}

/** Screenshot into e2e-artifacts/ and an axe-core check: no serious or critical violation. */
export async function checkScreen(page, name) {
  await page.waitForLoadState('networkidle').catch(() => {});
  await page.screenshot({ path: join(artifacts, `${name}.png`), fullPage: true });
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  return bad.map((v) => `${name}: ${v.id} (${v.impact}) ${v.help} — ${v.nodes.map((n) => n.target.join(' ')).slice(0, 3).join('; ')}`);
}

export { sleep };
