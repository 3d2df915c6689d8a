import { createContext, useCallback, useContext, useEffect, useEffectEvent, useLayoutEffect, useRef, useState, type ReactNode } from 'react';
import { api, ApiError, type User } from './api';
import { errorSentence } from './errors';
import { notifications } from './notifications';
import { Hub, hubUrl, type HubState, type ServerFrameOf, type ServerFrameType } from './hub';
import { formatRange, viewerZone } from './time';
import type { AffectedAppointment } from './types';

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
  // Loading again as soon as what is loaded changes, in the same render (not one render late).
  const key = [...deps, tick];
  const [loadedKey, setLoadedKey] = useState(key);
  if (key.length !== loadedKey.length || key.some((k, i) => !Object.is(k, loadedKey[i]))) {
    setLoadedKey(key);
    setLoading(true);
  }
  // The latest `load` (it closes over the caller's state), without restarting the effect.
  const run = useEffectEvent(() => load());
  useEffect(() => {
    let live = true;
    run()
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

/** The sentence shown for an error (never the API's own message: see errors.ts). */
export function errorText(e: unknown, overrides?: Record<string, string>): string {
  return errorSentence(e, overrides);
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

/**
 * A table of `rows`, hidden while there are none: `caption` names it for screen readers,
 * `columns` are its column headers and `row` renders the `<tr>` of each row.
 */
export function DataTable<T>({ caption, columns, rows, row }: { caption: string; columns: string[]; rows: T[] | undefined; row: (r: T) => ReactNode }) {
  return (
    <table hidden={!rows?.length}>
      <caption className="sr-only">{caption}</caption>
      <thead>
        <tr>
          {columns.map((c) => (
            <th key={c} scope="col">
              {c}
            </th>
          ))}
        </tr>
      </thead>
      <tbody>{rows?.map((r) => row(r))}</tbody>
    </table>
  );
}

/** The specialty of a search or a group, as typed (the caller normalizes or checks it). */
export function SpecialtyInput({ value, onChange }: { value: string; onChange: (v: string) => void }) {
  return (
    <label>
      Specialty
      <input value={value} onChange={(e) => onChange(e.target.value)} placeholder="e.g. cardiology" />
    </label>
  );
}

/** The confirmation after a save; a status region, so screen readers announce it. */
export function Saved({ show, children = 'Saved.' }: { show: boolean; children?: ReactNode }) {
  return (
    <p role="status" className="saved" data-testid="saved">
      {show ? children : ''}
    </p>
  );
}

/**
 * Runs an action, showing its error as a sentence; returns a busy flag and the runner.
 * `overrides` give this screen its own sentence for some error codes.
 */
export function useAction(
  overrides?: Record<string, string>,
): [boolean, string | null, (fn: () => Promise<unknown>) => Promise<boolean>, (e: string | null) => void] {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  // The latest wording, for a failure that comes after a re-render.
  const over = useRef(overrides);
  useLayoutEffect(() => {
    over.current = overrides;
  });
  const run = useCallback(async (fn: () => Promise<unknown>) => {
    setBusy(true);
    setError(null);
    try {
      await fn();
      return true;
    } catch (e) {
      setError(errorText(e, over.current));
      return false;
    } finally {
      setBusy(false);
    }
  }, []);
  return [busy, error, run, setError];
}

/**
 * Saving a versioned resource (a form edited against the version it was loaded at). `stale`
 * gives the sentence for each error code that means someone else saved first; such a refusal
 * changes nothing, keeps what was typed and sets `stale`, so the form offers to load the latest.
 * `overrides` give this form its own sentence for other codes. `save` runs the write and sets
 * `saved` when it succeeded.
 */
export function useVersionedSave(stale: Record<string, string>, overrides?: Record<string, string>) {
  const [saved, setSaved] = useState(false);
  const [isStale, setStale] = useState(false);
  const [busy, error, run, setError] = useAction({ ...stale, ...overrides });
  const save = async (write: () => Promise<void>) => {
    const ok = await run(async () => {
      try {
        await write();
      } catch (err) {
        if (err instanceof ApiError && Object.hasOwn(stale, err.code)) setStale(true);
        throw err;
      }
    });
    setSaved(ok);
  };
  return { busy, error, setError, saved, setSaved, stale: isStale, save };
}

/**
 * The end of a versioned form: its error, the offer to load the latest after a stale save, the
 * confirmation and the save button. `what` names the resource: "profile" reads "Load the latest
 * profile", "Profile saved." and "Save profile".
 */
export function VersionedSaveFooter({ what, form, onReload }: { what: string; form: ReturnType<typeof useVersionedSave>; onReload: () => void }) {
  const { error, stale, saved, busy } = form;
  return (
    <>
      <ErrorMsg error={error} />
      {stale && (
        <button type="button" className="secondary" onClick={onReload}>
          {`Load the latest ${what} (discards your changes)`}
        </button>
      )}
      <Saved show={saved && !busy}>{`${what.charAt(0).toUpperCase()}${what.slice(1)} saved.`}</Saved>
      <button type="submit" disabled={busy}>
        {busy ? 'Saving…' : `Save ${what}`}
      </button>
    </>
  );
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
for (const t of ['call_cancel', 'call_hangup', 'call_accept', 'call_decline'] as const) hub.on(t, (f) => rings.delete(f.appointment_id));

export function SessionProvider({ children }: { children: ReactNode }) {
  const [user, setUser] = useState<User | null>(api.currentUser);
  const [ready, setReady] = useState(false);
  const [hubState, setHubState] = useState<HubState>(hub.state);
  const [unread, setUnread] = useState(0);
  useEffect(() => {
    const off = api.onUser((u) => {
      setUser(u);
      if (!u) setUnread(0);
    });
    // A reload keeps no token: the refresh cookie brings the session back silently, when the
    // hint says there may be one (a signed-out visitor's load makes no failing request).
    const restore = !api.currentUser && api.mayHaveSession() ? api.refresh() : Promise.resolve(true);
    void restore.finally(() => setReady(true));
    return () => {
      off();
    };
  }, []);
  useEffect(() => hub.onState(setHubState), []);
  const userId = user?.id;
  useEffect(() => {
    if (!userId) {
      hub.stop();
      return;
    }
    hub.start();
    notifications
      .unreadCount()
      .then((r) => setUnread(r.unread))
      .catch(() => {});
    const off = hub.on('notification', (f) => setUnread(f.unread_count));
    return () => {
      off();
    };
  }, [userId]);
  return <SessionCtx.Provider value={{ user, ready, hub, hubState, unread, setUnread }}>{children}</SessionCtx.Provider>;
}

export function useSession(): Ctx {
  const c = useContext(SessionCtx);
  if (!c) throw new Error('no session provider');
  return c;
}

/** Calls `fn` on every live frame of these types (e.g. to reload a list). */
export function useFrames<K extends ServerFrameType>(types: K[], fn: (f: ServerFrameOf<K>) => void) {
  const onFrame = useEffectEvent(fn);
  useEffect(() => {
    const offs = types.map((t) => hub.on(t, (f) => onFrame(f)));
    return () => offs.forEach((o) => o());
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [types.join(',')]);
}

const STATUS_LABELS: Record<string, string> = {
  requested: 'requested',
  offered: 'offered to a doctor',
  confirmed: 'confirmed',
  completed: 'completed',
  no_show: 'missed (no-show)',
  cancelled: 'cancelled',
  expired: 'expired',
  declined: 'declined',
  pending: 'waiting for approval',
  active: 'active',
  disabled: 'disabled',
  rejected: 'rejected',
};

/** A status in words. */
export function statusLabel(status: string): string {
  return STATUS_LABELS[status] ?? status.replace(/_/g, ' ');
}

export function StatusBadge({ status, testId }: { status: string; testId?: string }) {
  return (
    <span className={`badge badge-${status}`} data-testid={testId}>
      {statusLabel(status)}
    </span>
  );
}

/** "this appointment" or "these N appointments". */
const theseAppointments = (n: number) => (n === 1 ? 'this appointment' : `these ${n} appointments`);

/** "1 appointment" or "N appointments". */
export const appointmentCount = (n: number) => (n === 1 ? '1 appointment' : `${n} appointments`);

/**
 * The confirmed appointments a change would cancel (from a 409 `appointments_affected`), each
 * with its patient and time in the viewer's zone, and the choice: `confirm` (cancelling them)
 * or `keep`. `children` stand between the list and the buttons (e.g. a reason).
 */
export function AffectedAppointments(props: {
  testId: string;
  heading: ReactNode;
  appointments: AffectedAppointment[];
  busy: boolean;
  confirm: string;
  onConfirm: () => void;
  keep: string;
  onKeep: () => void;
  children?: ReactNode;
}) {
  const { appointments: listed, busy } = props;
  return (
    <div className="card" data-testid={props.testId}>
      {props.heading}
      <ul>
        {listed.map((a) => (
          <li key={a.id}>
            {a.patient_name ?? 'A patient'}: {formatRange(a.start, a.end, viewerZone())}
          </li>
        ))}
      </ul>
      {props.children}
      <div className="row">
        <button className="danger" disabled={busy} onClick={props.onConfirm}>
          {props.confirm} {theseAppointments(listed.length)}
        </button>
        <button className="secondary" disabled={busy} onClick={props.onKeep}>
          {props.keep}
        </button>
      </div>
    </div>
  );
}
