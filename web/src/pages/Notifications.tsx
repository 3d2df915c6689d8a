import { Link } from 'react-router-dom';
import { formatWithZone, localizeUtcTimes } from '../lib/time';
import { notifications } from '../lib/notifications';
import { Empty, ErrorMsg, Loading, useAction, useFrames, useLoad, useSession } from '../lib/ui';

export function Notifications() {
  const { setUnread } = useSession();
  const { data, error, loading, reload } = useLoad(() => notifications.list(), []);
  useFrames(['notification'], reload);
  const [busy, actionError, run] = useAction();
  const after = async () => {
    reload();
    const r = await notifications.unreadCount();
    setUnread(r.unread);
  };
  const act = (fn: () => Promise<unknown>) => run(fn).then(async (ok) => { if (ok) await after(); });
  return (
    <section>
      <h1>Notifications</h1>
      {data && data.notifications.some((n) => !n.read_at) && (
        <button disabled={busy} onClick={() => act(() => notifications.readAll())}>
          Mark all as read
        </button>
      )}
      <ErrorMsg error={error ?? actionError} />
      {loading && !data && <Loading />}
      {data && data.notifications.length === 0 && <Empty>No notifications. News about your appointments will appear here.</Empty>}
      <ul className="cards" aria-label="Notifications" data-testid="notifications" hidden={!data?.notifications.length}>
        {data?.notifications.map((n) => (
          <li key={n.id} className={`card ${n.read_at ? 'read' : 'unread'}`}>
            <h2 className="h3">
              {n.read_at ? '' : <span className="dot" aria-label="unread" role="img" />} {localizeUtcTimes(n.title)}
            </h2>
            <p>{localizeUtcTimes(n.body)}</p>
            <p className="small muted">{formatWithZone(n.created_at)}</p>
            <div className="row">
              {n.appointment_id && <Link to={`/appointments/${n.appointment_id}`}>Open appointment</Link>}
              <button className="link" disabled={busy} onClick={() => act(() => notifications.markRead(n.id, !n.read_at))}>
                Mark {n.read_at ? 'unread' : 'read'}
              </button>
              <button className="link" disabled={busy} onClick={() => act(() => notifications.remove(n.id))}>
                Delete
              </button>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
