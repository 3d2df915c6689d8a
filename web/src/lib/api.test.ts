import { describe, expect, it } from 'vitest';
import { Api, ApiError } from './api';

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
  const fetch = async (path: string, init?: RequestInit) => {
    const headers = (init?.headers ?? {}) as Record<string, string>;
    calls.push({ path, method: init?.method ?? 'GET', auth: headers.authorization ?? null });
    if (path === '/api/auth/login') return json(200, session(current));
    if (path === '/api/auth/refresh') {
      await opts.delayRefresh;
      if (!opts.refreshOk) return json(401, { error: { code: 'unauthorized', message: 'refresh token refused' } });
      current = `t${++n}`;
      return json(200, session(current));
    }
    if (headers.authorization !== `Bearer ${current}`) return json(401, { error: { code: 'unauthorized', message: 'expired' } });
    return json(200, { ok: true, token: current });
  };
  return {
    calls,
    fetch,
    expire() {
      current = 'rotated-elsewhere';
    },
  };
}

const noTimers = { setTimer: () => 0, clearTimer: () => {} };

describe('Api token handling', () => {
  it('keeps the access token in memory and sends it as a bearer token', async () => {
    const s = server({ refreshOk: true });
    const api = new Api({ fetch: s.fetch, ...noTimers });
    await api.login('a@b.c', 'secret-password');
    expect(api.accessToken()).toBe('t0');
    await api.get('/api/me');
    expect(s.calls.at(-1)?.auth).toBe('Bearer t0');
  });

  it('renews the token on a 401 and retries the request once', async () => {
    const s = server({ refreshOk: true });
    const api = new Api({ fetch: s.fetch, ...noTimers });
    await api.login('a@b.c', 'secret-password');
    s.expire();
    // The server no longer accepts t0; a refresh gives t1 and the retry carries it.
    const r = await api.get<{ token: string }>('/api/me');
    expect(r.token).toBe('t1');
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
    const r = await api.get<{ token: string }>('/api/me');
    expect(r.token).toBe('t1');
    expect(s.calls[0].path).toBe('/api/auth/refresh');
  });

  it('logs out cleanly when the refresh fails', async () => {
    const s = server({ refreshOk: false });
    const api = new Api({ fetch: s.fetch, ...noTimers });
    await api.login('a@b.c', 'secret-password');
    const seen: (string | null)[] = [];
    api.onUser((u) => seen.push(u?.id ?? null));
    s.expire();
    await expect(api.get('/api/me')).rejects.toMatchObject({ status: 401 });
    expect(api.accessToken()).toBeNull();
    expect(api.currentUser).toBeNull();
    expect(seen).toEqual([null]);
  });

  it('renews in the background before the token expires', async () => {
    const s = server({ refreshOk: true });
    const timers: { fn: () => void; ms: number }[] = [];
    const api = new Api({ fetch: s.fetch, renewBefore: 60, setTimer: (fn, ms) => timers.push({ fn, ms }), clearTimer: () => {} });
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
});
