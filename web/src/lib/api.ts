// The HTTP API client. The access token lives in this object only (never in storage); the
// refresh token is an HttpOnly cookie scoped to /api/auth that the browser sends on refresh.
//
// Page JavaScript cannot see that cookie, so a page load cannot tell whether there is a session
// to bring back. A non-secret hint in localStorage answers that: set when a session starts,
// cleared on sign-out and when a refresh is refused. Without it a load makes no refresh call
// (which would only fail with a 401 for a signed-out visitor).

import createClient, { type Client } from 'openapi-fetch';
import type { components, paths } from './api.gen';

/** A schema of the OpenAPI document, by name: `Schema<'Appointment'>`. */
export type Schema<N extends keyof components['schemas']> = components['schemas'][N];
export type User = Schema<'User'>;
type UserQuery = NonNullable<paths['/api/admin/users']['get']['parameters']['query']>;
/** A role (the document spells `User.role` as a string; the admin filter lists the values). */
export type Role = NonNullable<UserQuery['role']>;
/** An account's status, as the admin filter lists them. */
export type UserStatus = NonNullable<UserQuery['status']>;
export type Session = Schema<'Session'>;

/** The JSON body an operation takes: `Body<'/api/appointments', 'post'>`. */
export type Body<P extends keyof paths, M extends 'post' | 'put'> = NonNullable<paths[P][M]>['requestBody'] extends
  | { content: { 'application/json': infer B } }
  | undefined
  ? B
  : never;

/** The typed client of the API's paths (openapi-fetch over the generated types). */
export type Http = Client<paths>;

/**
 * One call through the typed client, as `(http) => http.GET('/api/me')`: the path, its
 * parameters, headers and body are checked against the OpenAPI document by `tsc`.
 */
export type Send<T> = (http: Http) => Promise<{ data?: T; error?: unknown; response: Response }>;

/** Structured details some error codes carry (`appointments_affected`: `appointments`). */
export type ErrorDetails = Schema<'ErrorDetails'>;

/**
 * An error answer of the API (`{"error":{"code","message","request_id","details"?}}`) or a
 * network failure.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly requestId?: string,
    readonly details?: ErrorDetails,
  ) {
    super(message);
    this.name = 'ApiError';
  }
}

type FetchFn = (request: Request) => Promise<Response>;

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
  /** The origin of the API (default: the page's own). */
  base?: string;
  /** Seconds before expiry at which the token is renewed in the background. */
  renewBefore?: number;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
  /** Where the session hint is kept (default: localStorage; none: always try the refresh). */
  hints?: HintStore | null;
  /** How tabs of one browser take turns renewing (default: Web Locks and a BroadcastChannel). */
  tabs?: Tabs | null;
}

/** A message between tabs of one browser about the session they share. */
export type TabMessage = { type: 'session'; session: Session } | { type: 'signed_out' };

/**
 * What tabs of one browser share: a lock held while one of them renews (the refresh token
 * rotates, so two tabs renewing with the same cookie would look like reuse and end the session),
 * and a channel on which the tab that renewed hands the new session to the others.
 */
export interface Tabs {
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  post(m: TabMessage): void;
  listen(fn: (m: TabMessage) => void): void;
}

const TAB_LOCK = 'carehub.refresh';
const TAB_CHANNEL = 'carehub.session';

function browserTabs(): Tabs | null {
  if (typeof window === 'undefined' || typeof BroadcastChannel === 'undefined') return null;
  const channel = new BroadcastChannel(TAB_CHANNEL);
  const locks = typeof navigator !== 'undefined' ? navigator.locks : undefined;
  return {
    // Without Web Locks the tabs still share what they renewed; each may then renew on its own.
    exclusive: <T,>(fn: () => Promise<T>): Promise<T> => (locks ? (locks.request(TAB_LOCK, fn) as Promise<T>) : fn()),
    post: (m) => channel.postMessage(m),
    listen: (fn) => channel.addEventListener('message', (e: MessageEvent<TabMessage>) => fn(e.data)),
  };
}

export class Api {
  private token: string | null = null;
  private user: User | null = null;
  private refreshing: Promise<boolean> | null = null;
  private timer: unknown = null;
  private listeners = new Set<(u: User | null) => void>();
  /** Calls that carry the access token (added as each request leaves). */
  private readonly http: Http;
  /** Calls that must not carry it: sign-in, sign-up, refresh, password reset. */
  private readonly anon: Http;
  private readonly renewBefore: number;
  private readonly setTimer: (fn: () => void, ms: number) => unknown;
  private readonly clearTimer: (t: unknown) => void;
  private readonly hints: HintStore | null;
  private readonly tabs: Tabs | null;
  /** The last session another tab renewed, and when it arrived. */
  private fromTab: { session: Session; at: number } | null = null;

  constructor(opts: ApiOptions = {}) {
    const fetchFn = opts.fetch ?? ((r: Request) => fetch(r));
    const client = () =>
      createClient<paths>({
        baseUrl: opts.base ?? '',
        fetch: fetchFn,
        credentials: 'same-origin',
        headers: { accept: 'application/json' },
      });
    this.anon = client();
    this.http = client();
    this.http.use({
      onRequest: ({ request }) => {
        if (this.token) request.headers.set('authorization', `Bearer ${this.token}`);
        return request;
      },
    });
    this.renewBefore = opts.renewBefore ?? 60;
    this.setTimer = opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms));
    this.clearTimer = opts.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>));
    this.hints = opts.hints === undefined ? browserStore() : opts.hints;
    this.tabs = opts.tabs === undefined ? browserTabs() : opts.tabs;
    this.tabs?.listen((m) => this.fromOtherTab(m));
  }

  /**
   * Another tab renewed the session (or signed out). A tab signed in as the same user takes the
   * new session, so only one tab renews per period; a tab waiting to renew takes it instead.
   */
  private fromOtherTab(m: TabMessage) {
    if (m.type === 'signed_out') {
      this.fromTab = null;
      if (this.token) this.setSession(null);
      return;
    }
    this.fromTab = { session: m.session, at: Date.now() };
    if (this.token && this.user?.id === m.session.user.id) this.setSession(m.session);
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
    const s = await this.send(this.anon, (h) => h.POST('/api/auth/login', { body: { email, password } }));
    this.setSession(s.data);
    this.tabs?.post({ type: 'session', session: s.data });
    return s.data.user;
  }

  /**
   * Signs up. `timeZone` (the browser's) is the zone the account's mails and reminders are written
   * in; should the API not know it, the account is made without one (UTC), which its owner can
   * change on the Account page, rather than refusing the sign-up.
   */
  async register(email: string, password: string, displayName: string, role: Schema<'SignupRole'>, timeZone?: string) {
    type Zone = NonNullable<Body<'/api/auth/register', 'post'>['time_zone']>;
    const signUp = (time_zone?: Zone) =>
      this.send(this.anon, (h) => h.POST('/api/auth/register', { body: { email, password, display_name: displayName, role, time_zone } }));
    try {
      return (await signUp(timeZone ? (timeZone.trim() as Zone) : undefined)).data;
    } catch (e) {
      const zoneRefused = timeZone && e instanceof ApiError && e.code === 'validation_failed' && e.message.startsWith('time_zone');
      if (!zoneRefused) throw e;
      return (await signUp()).data;
    }
  }

  /** Asks for a reset mail; the answer is the same whether or not the email is known. */
  async requestPasswordReset(email: string): Promise<void> {
    await this.send(this.anon, (h) => h.POST('/api/auth/password/reset-request', { body: { email } }));
  }

  /** Sets a new password with the token from the reset mail (single use). */
  async confirmPasswordReset(token: string, newPassword: string): Promise<void> {
    await this.send(this.anon, (h) => h.POST('/api/auth/password/reset-confirm', { body: { token, new_password: newPassword } }));
  }

  async logout(): Promise<void> {
    const token = this.token;
    try {
      await this.send(this.anon, (h) =>
        h.POST('/api/auth/logout', { body: {}, headers: token ? { authorization: `Bearer ${token}` } : {} }),
      );
    } catch {
      // The session ends locally whatever the server says.
    }
    this.setSession(null);
    this.tabs?.post({ type: 'signed_out' });
  }

  /**
   * Changes the caller's password. The answer is a new session (the others of this account end),
   * which this tab and the other tabs take.
   *
   * Fails with `invalid_credentials` when `current` is wrong, `validation_failed` when `next` is
   * not accepted.
   */
  async changePassword(current: string, next: string): Promise<void> {
    const s = await this.call((h) => h.POST('/api/auth/password/change', { body: { current_password: current, new_password: next } }));
    this.setSession(s);
    this.tabs?.post({ type: 'session', session: s });
  }

  /**
   * Renews the access token with the refresh cookie. Concurrent callers share one request
   * (the refresh token rotates, so two requests would look like reuse), and so do the tabs of
   * this browser: one renews at a time, and a tab that waited takes the session another tab
   * renewed meanwhile instead of renewing again. On failure the session ends locally and
   * listeners hear `null`.
   */
  refresh(): Promise<boolean> {
    if (!this.token && !this.mayHaveSession()) return Promise.resolve(false);
    if (!this.refreshing) {
      const asked = Date.now();
      const renew = async () => {
        const shared = this.fromTab;
        if (shared && shared.at >= asked) {
          this.setSession(shared.session);
          return true;
        }
        try {
          const s = await this.send(this.anon, (h) => h.POST('/api/auth/refresh', { body: {} }));
          this.setSession(s.data);
          this.tabs?.post({ type: 'session', session: s.data });
          return true;
        } catch (e) {
          // A refused refresh ends the session; a network failure keeps the hint for next time.
          const refused = e instanceof ApiError && e.status !== 0;
          this.setSession(null);
          if (!refused) this.hint(true);
          return false;
        }
      };
      this.refreshing = (this.tabs ? this.tabs.exclusive(renew) : renew()).finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  /** A fresh-enough token for the websocket, renewing it first when there is none. */
  async tokenForSocket(): Promise<string | null> {
    if (this.token) return this.token;
    return (await this.refresh()) ? this.token : null;
  }

  /**
   * An authenticated call, resolving to the answer's body: `api.call((h) => h.GET('/api/me'))`.
   * A 401 renews the token once and retries; an error answer throws an [`ApiError`].
   */
  async call<T>(send: Send<T>): Promise<T> {
    return (await this.callFull(send)).data;
  }

  /**
   * A call whose answer is versioned: the body with its `ETag`. Send the ETag back exactly as
   * read (never `*`) in the update's `If-Match`; a stale one fails with `precondition_failed`
   * and changes nothing.
   */
  async callVersioned<T>(send: Send<T>): Promise<Versioned<T>> {
    const res = await this.callFull(send);
    return { data: res.data, etag: etagOf(res.response.headers, res.data) };
  }

  private async callFull<T>(send: Send<T>): Promise<{ data: T; response: Response }> {
    if (!this.token && !(await this.refresh())) {
      throw new ApiError(401, 'unauthorized', 'Your session has ended; please sign in again.');
    }
    // The middleware reads the token synchronously as the request leaves: this one.
    const sent = this.token;
    try {
      return await this.send(this.http, send);
    } catch (e) {
      if (!(e instanceof ApiError) || e.status !== 401) throw e;
      // Another call may have renewed the token meanwhile.
      if (this.token === sent && !(await this.refresh())) throw e;
      return this.send(this.http, send);
    }
  }

  /** Runs one call; an error answer or a network failure becomes an [`ApiError`]. */
  private async send<T>(http: Http, send: Send<T>): Promise<{ data: T; response: Response }> {
    let r: Awaited<ReturnType<Send<T>>>;
    try {
      r = await send(http);
    } catch {
      throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection and try again.');
    }
    const res = r.response;
    if (!res.ok) {
      const err = (r.error as Partial<Schema<'ErrorBody'>> | undefined)?.error;
      throw new ApiError(
        res.status,
        err?.code ?? 'http_' + res.status,
        err?.message ?? res.statusText,
        err?.request_id ?? res.headers.get('x-request-id') ?? undefined,
        err?.details ?? undefined,
      );
    }
    return { data: r.data as T, response: res };
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
