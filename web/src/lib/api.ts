// The HTTP API client. The access token lives in this object only (never in storage); the
// refresh token is an HttpOnly cookie scoped to /api/auth that the browser sends on refresh.
//
// Page JavaScript cannot see that cookie, so a page load cannot tell whether there is a session
// to bring back. A non-secret hint in localStorage answers that: set when a session starts,
// cleared on sign-out and when a refresh is refused. Without it a load makes no refresh call
// (which would only fail with a 401 for a signed-out visitor).

export type Role = 'patient' | 'doctor' | 'admin';

export interface User {
  id: string;
  email: string;
  display_name: string;
  role: Role;
  status: 'active' | 'pending' | 'rejected' | 'disabled';
  created_at: string;
}

export interface Session {
  access_token: string;
  expires_in: number;
  user: User;
}

/** An error answer of the API (`{"error":{"code","message","request_id"}}`) or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId?: string,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

/** Where the "a session may exist" hint lives; its value is only ever `1`. */
export const SESSION_HINT_KEY = 'carehub.session';

/** The small part of `Storage` the hint needs. */
export interface HintStore {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
  removeItem(key: string): void;
}

function browserStore(): HintStore | null {
  try {
    return typeof localStorage === 'undefined' ? null : localStorage;
  } catch {
    return null;
  }
}

/** A body read with its validator: send `etag` back as `If-Match` to update it. */
export interface Versioned<T> {
  data: T;
  etag: string;
}

export interface ApiOptions {
  fetch?: FetchFn;
  base?: string;
  /** Seconds before expiry at which the token is renewed in the background. */
  renewBefore?: number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
  /** Where the session hint is kept (default: localStorage; none: always try the refresh). */
  hints?: HintStore | null;
}

export class Api {
  private token: string | null = null;
  private user: User | null = null;
  private refreshing: Promise<boolean> | null = null;
  private timer: unknown = null;
  private listeners = new Set<(u: User | null) => void>();
  private readonly fetchFn: FetchFn;
  private readonly base: string;
  private readonly renewBefore: number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (t: unknown) => void;
  private readonly hints: HintStore | null;

  constructor(opts: ApiOptions = {}) {
    this.fetchFn = opts.fetch ?? ((i, init) => fetch(i, init));
    this.base = opts.base ?? '';
    this.renewBefore = opts.renewBefore ?? 60;
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
    this.hints = opts.hints === undefined ? browserStore() : opts.hints;
  }

  /**
   * Whether a session may exist to be brought back by the refresh cookie. Where storage is not
   * available the answer is yes (and the refresh decides).
   */
  mayHaveSession(): boolean {
    if (!this.hints) return true;
    try {
      return this.hints.getItem(SESSION_HINT_KEY) === '1';
    } catch {
      return true;
    }
  }

  private hint(on: boolean) {
    try {
      if (on) this.hints?.setItem(SESSION_HINT_KEY, '1');
      else this.hints?.removeItem(SESSION_HINT_KEY);
    } catch {
      // Storage refused (private mode, quota): the refresh just gets tried on the next load.
    }
  }

  get currentUser(): User | null {
    return this.user;
  }

  accessToken(): string | null {
    return this.token;
  }

  onUser(fn: (u: User | null) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  private setSession(s: Session | null) {
    if (this.timer !== null) this.clearTimer(this.timer);
    this.timer = null;
    this.token = s?.access_token ?? null;
    const changed = (this.user?.id ?? null) !== (s?.user.id ?? null) || this.user?.status !== s?.user.status;
    this.user = s?.user ?? null;
    this.hint(s !== null);
    if (s) {
      const ms = Math.max(5, s.expires_in - this.renewBefore) * 1000;
      this.timer = this.setTimer(() => void this.refresh(), ms);
    }
    if (changed) for (const l of this.listeners) l(this.user);
  }

  async login(email: string, password: string): Promise<User> {
    const s = await this.raw<Session>('POST', '/api/auth/login', { email, password });
    this.setSession(s);
    return s.user;
  }

  async register(email: string, password: string, displayName: string, role: 'patient' | 'doctor') {
    return this.raw('POST', '/api/auth/register', { email, password, display_name: displayName, role });
  }

  /** Asks for a reset mail; the answer is the same whether or not the email is known. */
  async requestPasswordReset(email: string): Promise<void> {
    await this.raw('POST', '/api/auth/password/reset-request', { email });
  }

  /** Sets a new password with the token from the reset mail (single use). */
  async confirmPasswordReset(token: string, newPassword: string): Promise<void> {
    await this.raw('POST', '/api/auth/password/reset-confirm', { token, new_password: newPassword });
  }

  async logout(): Promise<void> {
    try {
      await this.raw('POST', '/api/auth/logout', {}, this.token);
    } catch {
      // The session ends locally whatever the server says.
    }
    this.setSession(null);
  }

  /**
   * Renews the access token with the refresh cookie. Concurrent callers share one request
   * (the refresh token rotates, so two requests would look like reuse). On failure the
   * session ends locally and listeners hear `null`.
   */
  refresh(): Promise<boolean> {
    if (!this.token && !this.mayHaveSession()) return Promise.resolve(false);
    if (!this.refreshing) {
      this.refreshing = (async () => {
        try {
          const s = await this.raw<Session>('POST', '/api/auth/refresh', {});
          this.setSession(s);
          return true;
        } catch (e) {
          // A refused refresh ends the session; a network failure keeps the hint for next time.
          const refused = e instanceof ApiError && e.status !== 0;
          this.setSession(null);
          if (!refused) this.hint(true);
          return false;
        } finally {
          this.refreshing = null;
        }
      })();
    }
    return this.refreshing;
  }

  /** A fresh-enough token for the websocket, renewing it first when there is none. */
  async tokenForSocket(): Promise<string | null> {
    if (this.token) return this.token;
    return (await this.refresh()) ? this.token : null;
  }

  async get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }
  async post<T>(path: string, body: unknown = {}, headers: Record<string, string> = {}): Promise<T> {
    return this.request<T>('POST', path, body, headers);
  }
  async put<T>(path: string, body: unknown, headers: Record<string, string> = {}): Promise<T> {
    return this.request<T>('PUT', path, body, headers);
  }
  async del<T>(path: string): Promise<T> {
    return this.request<T>('DELETE', path);
  }

  /** A GET that also gives the body's `ETag`, to send back as `If-Match` on an update. */
  async getVersioned<T>(path: string): Promise<Versioned<T>> {
    const res = await this.requestFull<T>('GET', path);
    return { data: res.data, etag: etagOf(res.headers, res.data) };
  }

  /**
   * A PUT that applies only if the resource is still at `etag` (sent as `If-Match`, exactly as
   * it was read: never `*`). A stale `etag` fails with `precondition_failed` and changes nothing.
   */
  async putVersioned<T>(path: string, body: unknown, etag: string): Promise<Versioned<T>> {
    const res = await this.requestFull<T>('PUT', path, body, { 'if-match': etag });
    return { data: res.data, etag: etagOf(res.headers, res.data) };
  }

  /** An authenticated request; a 401 renews the token once and retries. */
  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    return (await this.requestFull<T>(method, path, body, headers)).data;
  }

  private async requestFull<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ data: T; headers: Headers }> {
    if (!this.token && !(await this.refresh())) {
      throw new ApiError(401, 'unauthorized', 'Your session has ended; please sign in again.');
    }
    const sent = this.token;
    try {
      return await this.rawFull<T>(method, path, body, sent, headers);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
      // Another call may have renewed the token meanwhile.
      if (this.token === sent && !(await this.refresh())) throw e;
      return this.rawFull<T>(method, path, body, this.token, headers);
    }
  }

  private async raw<T>(
    method: string,
    path: string,
    body?: unknown,
    token?: string | null,
    extra: Record<string, string> = {},
  ): Promise<T> {
    return (await this.rawFull<T>(method, path, body, token, extra)).data;
  }

  private async rawFull<T>(
    method: string,
    path: string,
    body?: unknown,
    token?: string | null,
    extra: Record<string, string> = {},
  ): Promise<{ data: T; headers: Headers }> {
    const headers: Record<string, string> = { accept: 'application/json', ...extra };
    if (body !== undefined) headers['content-type'] = 'application/json';
    if (token) headers.authorization = `Bearer ${token}`;
    let res: Response;
    try {
      res = await this.fetchFn(this.base + path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        credentials: 'same-origin',
      });
    } catch {
      throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection and try again.');
    }
    const text = await res.text();
    let json: unknown = null;
    if (text) {
      try {
        json = JSON.parse(text);
      } catch {
        json = null;
      }
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: string; message?: string; request_id?: string } } | null)?.error;
      throw new ApiError(
        res.status,
        err?.code ?? 'http_' + res.status,
        err?.message ?? res.statusText,
        err?.request_id ?? res.headers.get('x-request-id') ?? undefined,
      );
    }
    return { data: json as T, headers: res.headers };
  }
}

/**
 * The ETag of a versioned answer. The API sends it as a header; a body's `version` is the same
 * number, which serves when a proxy dropped the header.
 */
function etagOf(headers: Headers, body: unknown): string {
  const tag = headers.get('etag');
  if (tag) return tag;
  const v = (body as { version?: unknown } | null)?.version;
  if (typeof v === 'number') return `"${v}"`;
  throw new ApiError(0, 'missing_etag', 'The answer had no version to save against.');
}

/** A key for Idempotency-Key headers. */
export function newKey(): string {
  return (crypto.randomUUID?.() ?? Math.random().toString(36).slice(2) + Date.now().toString(36)).replace(/[^A-Za-z0-9_-]/g, '');
}

export const api = new Api();
