import { describe, expect, it } from 'vitest';
import { Api, ApiError, SESSION_HINT_KEY, type ApiOptions, type TabMessage, type Tabs } from './api';

/** Requests go to this origin (node's `Request` needs an absolute URL). */
const base = 'http://clinic.test';
const me = (api: Api) => api.call((h) => h.GET('/api/me'));

interface Call {
  path: string;
  method: string;
  auth: string | null;
}

function session(token: string, expiresIn = 900) {
  return { access_token: token, token_type: 'Bearer', expires_in: expiresIn, user: { id: 'u1', email: 'a@b.c', display_name: 'A', role: 'patient', status: 'active', created_at: '' } };
}

function json(status: number, body: unknown): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}

/** A fake server: `/api/me` accepts only the current token; refresh rotates it while `refreshOk`. */
function server(opts: { refreshOk: boolean; delayRefresh?: Promise<void> }) {
  const calls: Call[] = [];
  let current = 't0';
  let n = 0;
  const fetch = async (req: Request) => {
    const path = new URL(req.url).pathname;
    const auth = req.headers.get('authorization');
    calls.push({ path, method: req.method, auth });
    if (path === '/api/auth/login') return json(200, session(current));
    if (path === '/api/auth/refresh') {
      await opts.delayRefresh;
      if (!opts.refreshOk) return json(401, { error: { code: 'unauthorized', message: 'refresh token refused' } });
      current = `t${++n}`;
      return json(200, session(current));
    }
    if (auth !== `Bearer ${current}`) return json(401, { error: { code: 'unauthorized', message: 'expired' } });
    return json(200, { id: current });
  };
  return {
    calls,
    fetch,
    expire() {
      current = 'rotated-elsewhere';
    },
  };
}

const noTimers: ApiOptions = { base, setTimer: () => 0, clearTimer: () => {} };

describe('Api token handling', () => {
  it('keeps the access token in memory and sends it as a bearer token', async () => {
    const s = server({ refreshOk: true });
    const api = new Api({ fetch: s.fetch, ...noTimers });
    await api.login('a@b.c', 'secret-password');
    expect(api.accessToken()).toBe('t0');
    await me(api);
    expect(s.calls.at(-1)?.auth).toBe('Bearer t0');
  });

  it('renews the token on a 401 and retries the request once', async () => {
    const s = server({ refreshOk: true });
    const api = new Api({ fetch: s.fetch, ...noTimers });
    await api.login('a@b.c', 'secret-password');
    s.expire();
    // The server no longer accepts t0; a refresh gives t1 and the retry carries it.
    const r = await me(api);
    expect(r.id).toBe('t1');
    expect(s.calls.map((c) => c.path)).toEqual(['/api/auth/login', '/api/me', '/api/auth/refresh', '/api/me']);
  });

  it('shares one refresh between concurrent requests', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = server({ refreshOk: true, delayRefresh: gate });
    const api = new Api({ fetch: s.fetch, ...noTimers });
    const a = api.refresh();
    const b = api.refresh();
    release();
    expect(await a).toBe(true);
    expect(await b).toBe(true);
    expect(s.calls.filter((c) => c.path === '/api/auth/refresh')).toHaveLength(1);
  });

  it('restores a session after a reload from the refresh cookie alone', async () => {
    const s = server({ refreshOk: true });
    const api = new Api({ fetch: s.fetch, ...noTimers });
    // No token in memory (a fresh page): the first request refreshes first.
    const r = await me(api);
    expect(r.id).toBe('t1');
    expect(s.calls[0].path).toBe('/api/auth/refresh');
  });

  it('logs out cleanly when the refresh fails', async () => {
    const s = server({ refreshOk: false });
    const api = new Api({ fetch: s.fetch, ...noTimers });
    await api.login('a@b.c', 'secret-password');
    const seen: (string | null)[] = [];
    api.onUser((u) => seen.push(u?.id ?? null));
    s.expire();
    await expect(me(api)).rejects.toMatchObject({ status: 401 });
    expect(api.accessToken()).toBeNull();
    expect(api.currentUser).toBeNull();
    expect(seen).toEqual([null]);
  });

  it('renews in the background before the token expires', async () => {
    const s = server({ refreshOk: true });
    const timers: { fn: () => void; ms: number }[] = [];
    const api = new Api({ base, fetch: s.fetch, renewBefore: 60, setTimer: (fn, ms) => timers.push({ fn, ms }), clearTimer: () => {} });
    await api.login('a@b.c', 'secret-password');
    expect(timers[0].ms).toBe((900 - 60) * 1000);
    timers[0].fn();
    await new Promise((r) => setTimeout(r, 0));
    await new Promise((r) => setTimeout(r, 0));
    expect(api.accessToken()).toBe('t1');
  });

  it("surfaces the server's error code and message", async () => {
    const api = new Api({
      fetch: async () => json(422, { error: { code: 'validation_failed', message: 'reason: 1 to 1000 characters', request_id: 'r1' } }),
      ...noTimers,
    });
    const e = await api.login('a', 'b').catch((x) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 422, code: 'validation_failed', message: 'reason: 1 to 1000 characters', requestId: 'r1' });
  });

  it("keeps an error's structured details", async () => {
    const listed = { id: 'a1', patient_id: 'p1', patient_name: 'Ana Lima', start: '2026-03-02T09:00:00Z', end: '2026-03-02T09:30:00Z', status: 'confirmed' };
    const api = new Api({
      fetch: async () => json(409, { error: { code: 'appointments_affected', message: 'overlaps a1', request_id: 'r2', details: { appointments: [listed] } } }),
      ...noTimers,
    });
    const e = await api.login('a', 'b').catch((x) => x);
    expect(e).toMatchObject({ status: 409, code: 'appointments_affected', details: { appointments: [listed] } });
  });

  it('keeps the request id of an error answer without a JSON body', async () => {
    const api = new Api({
      fetch: async () => new Response('bad gateway', { status: 502, statusText: 'Bad Gateway', headers: { 'x-request-id': 'r9' } }),
      ...noTimers,
    });
    const e = await api.login('a', 'b').catch((x) => x);
    expect(e).toMatchObject({ status: 502, code: 'http_502', requestId: 'r9' });
  });

  it('turns a failed fetch into a network error', async () => {
    const api = new Api({ fetch: async () => Promise.reject(new TypeError('offline')), ...noTimers });
    const e = await api.login('a', 'b').catch((x) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 0, code: 'network' });
  });

  it('sends the ETag it read back as If-Match, exactly, and reads the new one', async () => {
    const seen: (string | null)[] = [];
    let version = 3;
    const fetch = async (req: Request) => {
      seen.push(req.headers.get('if-match'));
      if (new URL(req.url).pathname === '/api/auth/login') return json(200, session('t0'));
      if (req.method === 'PUT') {
        if (req.headers.get('if-match') !== `"${version}"`) return json(412, { error: { code: 'precondition_failed', message: 'stale' } });
        version += 1;
      }
      return new Response(JSON.stringify({ version }), { status: 200, headers: { etag: `"${version}"` } });
    };
    const api = new Api({ fetch, ...noTimers, hints: null });
    await api.login('a@b.c', 'secret-password');
    const read = await api.callVersioned((h) => h.GET('/api/patients/me/profile'));
    expect(read.etag).toBe('"3"');
    const put = (etag: string) => api.callVersioned((h) => h.PUT('/api/patients/me/profile', { body: {}, params: { header: { 'If-Match': etag } } }));
    const saved = await put(read.etag);
    expect(seen.at(-1)).toBe('"3"');
    expect(saved.etag).toBe('"4"');
    const stale = await put(read.etag).catch((x) => x);
    expect(stale).toMatchObject({ status: 412, code: 'precondition_failed' });
  });
});

/** An in-memory stand-in for localStorage. */
function memoryStore() {
  const m = new Map<string, string>();
  return {
    m,
    getItem: (k: string) => m.get(k) ?? null,
    setItem: (k: string, v: string) => void m.set(k, v),
    removeItem: (k: string) => void m.delete(k),
  };
}

describe('the session hint', () => {
  it('makes no refresh request on a load without the hint', async () => {
    const s = server({ refreshOk: false });
    const api = new Api({ fetch: s.fetch, ...noTimers, hints: memoryStore() });
    expect(api.mayHaveSession()).toBe(false);
    expect(await api.refresh()).toBe(false);
    expect(s.calls).toEqual([]);
  });

  it('is set on sign-in and cleared on sign-out', async () => {
    const s = server({ refreshOk: true });
    const store = memoryStore();
    const api = new Api({ fetch: s.fetch, ...noTimers, hints: store });
    await api.login('a@b.c', 'secret-password');
    expect(store.m.get(SESSION_HINT_KEY)).toBe('1');
    // A reload: a new client with the same storage tries the refresh cookie.
    const reloaded = new Api({ fetch: s.fetch, ...noTimers, hints: store });
    expect(await reloaded.refresh()).toBe(true);
    await reloaded.logout();
    expect(store.m.has(SESSION_HINT_KEY)).toBe(false);
  });

  it('is cleared when the server refuses the refresh, kept when the network fails', async () => {
    const store = memoryStore();
    store.setItem(SESSION_HINT_KEY, '1');
    const offline = new Api({ fetch: async () => Promise.reject(new TypeError('offline')), ...noTimers, hints: store });
    expect(await offline.refresh()).toBe(false);
    expect(store.m.get(SESSION_HINT_KEY)).toBe('1');
    const refused = new Api({ fetch: server({ refreshOk: false }).fetch, ...noTimers, hints: store });
    expect(await refused.refresh()).toBe(false);
    expect(store.m.has(SESSION_HINT_KEY)).toBe(false);
  });
});

/** Tabs of one fake browser: one lock, one channel (delivered to the other tabs, not the sender). */
function browser() {
  let held: Promise<unknown> = Promise.resolve();
  const listeners: { fn: (m: TabMessage) => void; self: object }[] = [];
  return (): Tabs => {
    const self = {};
    return {
      exclusive<T>(fn: () => Promise<T>): Promise<T> {
        const next = held.then(fn, fn);
        held = next.catch(() => {});
        return next;
      },
      post: (m) => listeners.filter((l) => l.self !== self).forEach((l) => l.fn(structuredClone(m))),
      listen: (fn) => void listeners.push({ fn, self }),
    };
  };
}

describe('tabs of one browser', () => {
  it('two tabs loading at once renew once, one after the other, and both are signed in', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s = server({ refreshOk: true, delayRefresh: gate });
    const tab = browser();
    const a = new Api({ fetch: s.fetch, hints: null, tabs: tab(), ...noTimers });
    const b = new Api({ fetch: s.fetch, hints: null, tabs: tab(), ...noTimers });
    const both = Promise.all([a.refresh(), b.refresh()]);
    release();
    expect(await both).toEqual([true, true]);
    // One rotation: the second tab waited for the lock and took the first tab's session.
    expect(s.calls.filter((c) => c.path === '/api/auth/refresh')).toHaveLength(1);
    expect(a.accessToken()).toBe('t1');
    expect(b.accessToken()).toBe('t1');
    expect((await me(b)).id).toBe('t1');
  });

  it('a renewal in one tab reaches the other, and signing out in one signs out the other', async () => {
    const s = server({ refreshOk: true });
    const tab = browser();
    const a = new Api({ fetch: s.fetch, hints: null, tabs: tab(), ...noTimers });
    const b = new Api({ fetch: s.fetch, hints: null, tabs: tab(), ...noTimers });
    await a.login('a@b.c', 'secret-password');
    // A tab asking just after takes the session the first one started, without a request.
    await b.refresh();
    expect(b.accessToken()).toBe('t0');
    expect(s.calls.filter((c) => c.path === '/api/auth/refresh')).toHaveLength(0);
    await a.refresh();
    expect(b.accessToken()).toBe('t1');
    await b.logout();
    expect(a.accessToken()).toBe(null);
    expect(a.currentUser).toBe(null);
  });
});
