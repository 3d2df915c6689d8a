import { Link } from 'react-router-dom';
import { api } from '../lib/api';
import { formatWithZone, localizeUtcTimes } from '../lib/time';
import type { Notification } from '../lib/types';
import { Empty, ErrorMsg, Loading, useAction, useFrames, useLoad, useSession } from '../lib/ui';

export function Notifications() {
  const { setUnread } = useSession();
  const { data, error, loading, reload } = useLoad(() => api.get<{ notifications: Notification[] }>('/api/notifications?limit=50'), []);
  useFrames(['notification'], reload);
  const [busy, actionError, run] = useAction();
  const after = async () => {
    reload();
    const r = await api.get<{ unread: number }>('/api/notifications/unread-count');
    setUnread(r.unread);
  };
  const act = (fn: () => Promise<unknown>) => run(fn).then(async (ok) => { if (ok) await after(); });
  return (
    <section>
      <h1>Notifications</h1>
      {data && data.notifications.some((n) => !n.read_at) && (
        <button disabled={busy} onClick={() => act(() => api.post('/api/notifications/read-all'))}>
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
              <button className="link" disabled={busy} onClick={() => act(() => api.post(`/api/notifications/${n.id}/${n.read_at ? 'unread' : 'read'}`))}>
                Mark {n.read_at ? 'unread' : 'read'}
              </button>
              <button className="link" disabled={busy} onClick={() => act(() => api.del(`/api/notifications/${n.id}`))}>
                Delete
              </button>
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}
