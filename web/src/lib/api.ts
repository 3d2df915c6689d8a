// The HTTP API client. The access token lives in this object only (never in storage); the
// refresh token is an HttpOnly cookie scoped to /api/auth that the browser sends on refresh.

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

export interface ApiOptions {
  fetch?: FetchFn;
  base?: string;
  /** Seconds before expiry at which the token is renewed in the background. */
  renewBefore?: number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
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

  constructor(opts: ApiOptions = {}) {
    this.fetchFn = opts.fetch ?? ((i, init) => fetch(i, init));
    this.base = opts.base ?? '';
    this.renewBefore = opts.renewBefore ?? 60;
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
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
    if (!this.refreshing) {
      this.refreshing = (async () => {
        try {
          const s = await this.raw<Session>('POST', '/api/auth/refresh', {});
          this.setSession(s);
          return true;
        } catch {
          this.setSession(null);
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

  /** An authenticated request; a 401 renews the token once and retries. */
  async request<T>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<T> {
    if (!this.token && !(await this.refresh())) {
      throw new ApiError(401, 'unauthorized', 'Your session has ended; please sign in again.');
    }
    const sent = this.token;
    try {
      return await this.raw<T>(method, path, body, sent, headers);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
      // Another call may have renewed the token meanwhile.
      if (this.token === sent && !(await this.refresh())) throw e;
      return this.raw<T>(method, path, body, this.token, headers);
    }
  }

  private async raw<T>(
    method: string,
    path: string,
    body?: unknown,
    token?: string | null,
    extra: Record<string, string> = {},
  ): Promise<T> {
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
      throw new ApiError(res.status, err?.code ?? 'http_' + res.status, err?.message ?? res.statusText, err?.request_id);
    }
    return json as T;
  }
}

/** A key for Idempotency-Key headers. */
export function newKey(): string {
  return (crypto.randomUUID?.() ?? Math.random().toString(36).slice(2) + Date.now().toString(36)).replace(/[^A-Za-z0-9_-]/g, '');
}

export const api = new Api();
