import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from 'react';
import { api, ApiError, type User } from './api';
import { Hub, hubUrl, type HubState } from './hub';

/** Loads data; gives loading, error and a reload. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
} {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let live = true;
    setLoading(true);
    loadRef
      .current()
      .then((d) => live && (setData(d), setError(null)))
      .catch((e) => live && setError(errorText(e)))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return { data, error, loading, reload: useCallback(() => setTick((t) => t + 1), []) };
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return e.message || e.code;
  return (e as Error)?.message ?? String(e);
}

export function Loading({ what = 'Loading' }: { what?: string }) {
  return (
    <p className="muted" role="status">
      {what}…
    </p>
  );
}

export function ErrorMsg({ error }: { error: string | null }) {
  if (!error) return null;
  return (
    <p className="error" role="alert">
      {error}
    </p>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** Runs an action, showing its error; returns a busy flag and the runner. */
export function useAction(): [boolean, string | null, (fn: () => Promise<unknown>) => Promise<boolean>, (e: string | null) => void] {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = useCallback(async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      return true;
    } catch (e) {
      setError(errorText(e));
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return [busy, error, run, setError];
}

interface Ctx {
  user: User | null;
  ready: boolean;
  hub: Hub;
  hubState: HubState;
  unread: number;
  setUnread: (n: number) => void;
}

const SessionCtx = createContext<Ctx | null>(null);

export const hub = new Hub({
  url: hubUrl(),
  token: async (fresh) => {
    if (fresh) return (await api.refresh()) ? api.accessToken() : null;
    return api.tokenForSocket();
  },
});

/** Appointments whose call is ringing for this user (a ring may come before the call page opens). */
export const rings = new Set<string>();
hub.on('call_ring', (f) => rings.add(f.appointment_id));
for (const t of ['call_cancel', 'call_hangup', 'call_accept', 'call_decline']) hub.on(t, (f) => rings.delete(f.appointment_id));

export function SessionProvider({ children }: { children: ReactNode }) {
  const [user, setUser] = useState<User | null>(api.currentUser);
  const [ready, setReady] = useState(false);
  const [hubState, setHubState] = useState<HubState>(hub.state);
  const [unread, setUnread] = useState(0);
  useEffect(() => {
    const off = api.onUser(setUser);
    // A reload keeps no token: the refresh cookie brings the session back silently.
    if (!api.currentUser) void api.refresh().finally(() => setReady(true));
    else setReady(true);
    return () => {
      off();
    };
  }, []);
  useEffect(() => hub.onState(setHubState), []);
  useEffect(() => {
    if (!user) {
      hub.stop();
      setUnread(0);
      return;
    }
    hub.start();
    api
      .get<{ unread: number }>('/api/notifications/unread-count')
      .then((r) => setUnread(r.unread))
      .catch(() => {});
    const off = hub.on('notification', (f) => setUnread(f.unread_count));
    return () => {
      off();
    };
  }, [user?.id]);
  return <SessionCtx.Provider value={{ user, ready, hub, hubState, unread, setUnread }}>{children}</SessionCtx.Provider>;
}

export function useSession(): Ctx {
  const c = useContext(SessionCtx);
  if (!c) throw new Error('no session provider');
  return c;
}

/** Calls `fn` on every live frame of these types (e.g. to reload a list). */
export function useFrames(types: string[], fn: (f: import('./hub').Frame) => void) {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    const offs = types.map((t) => hub.on(t, (f) => ref.current(f)));
    return () => offs.forEach((o) => o());
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [types.join(',')]);
}

export function StatusBadge({ status }: { status: string }) {
  return <span className={`badge badge-${status}`}>{status.replace('_', ' ')}</span>;
}
