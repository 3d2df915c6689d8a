import { useState, type FormEvent } from 'react';
import { Link } from 'react-router-dom';
import { admin, type AccountAction } from '../lib/admin';
import { ApiError, type Role, type User, type UserStatus } from '../lib/api';
import { appointments } from '../lib/appointments';
import { doctors as directory } from '../lib/doctors';
import { groups as groupsApi } from '../lib/groups';
import { addDays, dayKey, formatWithZone, viewerZone } from '../lib/time';
import type { AffectedAppointment, Appointment, DoctorSummary, Group, Offer } from '../lib/types';
import { AffectedAppointments, appointmentCount, DataTable, Empty, ErrorMsg, Loading, Saved, SpecialtyInput, StatusBadge, statusLabel, useAction, useLoad } from '../lib/ui';
import { when, withWhom } from './Appointments';

/** A filter of a list: a select whose empty choice, "any", filters nothing. */
function AnyFilter<T extends string>(props: { label: string; value: T | ''; options: T[]; optionLabel?: (o: T) => string; onChange: (v: T | '') => void }) {
  const { optionLabel = (o: T) => o } = props;
  return (
    <label>
      {props.label}
      <select value={props.value} onChange={(e) => props.onChange(e.target.value as T | '')}>
        <option value="">any</option>
        {props.options.map((o) => (
          <option key={o} value={o}>
            {optionLabel(o)}
          </option>
        ))}
      </select>
    </label>
  );
}

export function AdminUsers() {
  const [role, setRole] = useState<Role | ''>('');
  const [status, setStatus] = useState<UserStatus | ''>('');
  const [q, setQ] = useState('');
  const { data, error, loading, reload } = useLoad(
    () => admin.users({ role: role || undefined, status: status || undefined, q: q.trim() || undefined }),
    [role, status, q],
  );
  const [busy, actionError, run, setActionError] = useAction({
    appointments_affected: 'This doctor has confirmed appointments. Disable the account anyway to cancel them (each patient is told), or keep it active.',
  });
  const [done, setDone] = useState<string | null>(null);
  /** A doctor whose disabling was refused over confirmed appointments: those, to cancel or not. */
  const [clash, setClash] = useState<{ user: User; appointments: AffectedAppointment[]; reason: string } | null>(null);
  const PAST: Record<AccountAction, string> = { approve: 'approved', reject: 'rejected', disable: 'disabled', enable: 'enabled' };
  const act = async (u: User, action: AccountAction) => {
    setClash(null);
    let affected: AffectedAppointment[] = [];
    const ok = await run(async () => {
      try {
        await admin.account(u.id, action);
      } catch (e) {
        // The 409 lists the confirmed appointments disabling would cancel, as data.
        if (e instanceof ApiError && e.code === 'appointments_affected') affected = e.details?.appointments ?? [];
        throw e;
      }
    });
    setDone(ok ? `${u.display_name}: ${PAST[action]}.` : null);
    if (ok) reload();
    else if (affected.length) setClash({ user: u, appointments: affected, reason: '' });
  };
  const forceDisable = async () => {
    if (!clash) return;
    const { user, appointments: listed, reason } = clash;
    const n = listed.length;
    if (await run(() => admin.account(user.id, 'disable', { force: true, reason: reason.trim() || undefined }))) {
      setClash(null);
      setDone(`${user.display_name}: disabled; ${appointmentCount(n)} cancelled.`);
      reload();
    }
  };
  return (
    <section>
      <h1>Users</h1>
      <div className="row">
        <AnyFilter label="Role" value={role} options={['patient', 'doctor', 'admin']} onChange={setRole} />
        <AnyFilter label="Status" value={status} options={['pending', 'active', 'disabled', 'rejected']} onChange={setStatus} />
        <label>
          Search
          <input value={q} onChange={(e) => setQ(e.target.value)} />
        </label>
      </div>
      <ErrorMsg error={error ?? actionError} />
      <Saved show={!!done && !busy}>{done}</Saved>
      {clash && (
        <AffectedAppointments
          testId="disable-clash"
          heading={<h2 className="h3">Confirmed appointments of {clash.user.display_name}</h2>}
          appointments={clash.appointments}
          busy={busy}
          confirm="Disable and cancel"
          onConfirm={forceDisable}
          keep="Keep the account active"
          onKeep={() => {
            setClash(null);
            setActionError(null);
          }}
        >
          <label>
            Reason told to each patient (optional)
            <input value={clash.reason} maxLength={500} onChange={(e) => setClash({ ...clash, reason: e.target.value })} />
          </label>
        </AffectedAppointments>
      )}
      {loading && !data && <Loading />}
      {data && data.users.length === 0 && <Empty>{role || status || q.trim() ? 'No account matches these filters.' : 'No accounts yet.'}</Empty>}
      <DataTable
        caption="Accounts"
        columns={['Name', 'Email', 'Role', 'Status', 'Actions']}
        rows={data?.users}
        row={(u) => (
          <tr key={u.id} data-email={u.email}>
            <td>{u.display_name}</td>
            <td>{u.email}</td>
            <td>{u.role}</td>
            <td>
              <StatusBadge status={u.status} />
            </td>
            <td className="row">
              {u.status === 'pending' && (
                <>
                  <button disabled={busy} onClick={() => act(u, 'approve')} aria-label={`Approve ${u.display_name}`}>
                    Approve
                  </button>
                  <button disabled={busy} className="secondary" onClick={() => act(u, 'reject')} aria-label={`Reject ${u.display_name}`}>
                    Reject
                  </button>
                </>
              )}
              {u.status === 'active' && (
                <button disabled={busy} className="secondary" onClick={() => act(u, 'disable')} aria-label={`Disable ${u.display_name}`}>
                  Disable
                </button>
              )}
              {u.status === 'disabled' && (
                <button disabled={busy} onClick={() => act(u, 'enable')} aria-label={`Enable ${u.display_name}`}>
                  Enable
                </button>
              )}
            </td>
          </tr>
        )}
      />
    </section>
  );
}

export function AdminGroups() {
  const groups = useLoad(() => groupsApi.all(), []);
  const doctors = useLoad(() => directory.search({ limit: 100 }), []);
  const [editing, setEditing] = useState<Group | null>(null);
  const [saved, setSaved] = useState<string | null>(null);
  const names = new Map((doctors.data?.doctors ?? []).map((d) => [d.id, d.display_name]));
  return (
    <section>
      <h1>Groups</h1>
      <ErrorMsg error={groups.error ?? doctors.error} />
      {groups.loading && !groups.data && <Loading />}
      {groups.data && groups.data.groups.length === 0 && <Empty>No groups yet. Create the first one below.</Empty>}
      <Saved show={!!saved}>{saved}</Saved>
      <ul className="cards" aria-label="Groups" hidden={!groups.data?.groups.length}>
        {groups.data?.groups.map((g) => (
          <li key={g.id} className="card">
            <h2 className="h3">{g.name}</h2>
            <p className="small">
              {g.specialty ?? 'any specialty'} · {g.strategy.replace('_', ' ')} · {Math.round(g.accept_deadline_secs / 60)} min to accept
            </p>
            <p className="small">Members: {g.members.length ? g.members.map((m) => names.get(m) ?? 'a doctor no longer listed').join(', ') : 'none yet'}</p>
            <button className="link" onClick={() => setEditing(g)}>
              Edit {g.name}
            </button>
          </li>
        ))}
      </ul>
      <GroupForm
        key={editing?.id ?? 'new'}
        group={editing}
        doctors={doctors.data?.doctors ?? []}
        onDone={(name) => {
          setSaved(`Group “${name}” saved.`);
          setEditing(null);
          groups.reload();
        }}
      />
    </section>
  );
}

function GroupForm({ group, doctors, onDone }: { group: Group | null; doctors: DoctorSummary[]; onDone: (name: string) => void }) {
  const [name, setName] = useState(group?.name ?? '');
  const [specialty, setSpecialty] = useState(group?.specialty ?? '');
  const [strategy, setStrategy] = useState(group?.strategy ?? 'round_robin');
  const [minutes, setMinutes] = useState(group ? Math.round(group.accept_deadline_secs / 60) : 60);
  const [members, setMembers] = useState<string[]>(group?.members ?? []);
  const [busy, error, run, setError] = useAction({
    precondition_failed: 'Changed elsewhere: reload to see the latest.',
    conflict: 'Changed elsewhere, or the name is taken: reload to see the latest.',
  });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!name.trim()) return setError('Name the group.');
    if (specialty && !/^[a-z0-9]+(-[a-z0-9]+)*$/.test(specialty)) return setError('A specialty is lowercase words joined by hyphens, e.g. general-practice.');
    if (!(minutes >= 1 && minutes <= 10080)) return setError('The deadline is 1 minute to 7 days.');
    if (members.length === 0) return setError('Choose at least one doctor.');
    const body = { name: name.trim(), specialty: specialty || undefined, strategy, accept_deadline_secs: minutes * 60, members };
    const ok = await run(() =>
      group ? groupsApi.update(group.id, group.version, body) : groupsApi.create(body),
    );
    if (ok) onDone(name.trim());
  };
  return (
    <form onSubmit={submit} aria-labelledby="group-form-h">
      <h2 id="group-form-h">{group ? `Edit ${group.name}` : 'New group'}</h2>
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} maxLength={100} />
      </label>
      <SpecialtyInput value={specialty} onChange={setSpecialty} />
      <label>
        Strategy
        <select value={strategy} onChange={(e) => setStrategy(e.target.value as Group['strategy'])}>
          <option value="round_robin">round robin</option>
          <option value="least_loaded">least loaded</option>
          <option value="broadcast">broadcast</option>
        </select>
      </label>
      <label>
        Minutes to accept an offer
        <input type="number" min={1} max={10080} value={minutes} onChange={(e) => setMinutes(Number(e.target.value))} />
      </label>
      <fieldset>
        <legend>Members</legend>
        {doctors.length === 0 && <Empty>No approved doctors yet.</Empty>}
        {doctors.map((d) => (
          <label key={d.id} className="inline">
            <input
              type="checkbox"
              checked={members.includes(d.id)}
              onChange={(e) => setMembers(e.target.checked ? [...members, d.id] : members.filter((m) => m !== d.id))}
            />{' '}
            {d.display_name}
          </label>
        ))}
      </fieldset>
      <ErrorMsg error={error} />
      <button disabled={busy}>{group ? 'Save group' : 'Create group'}</button>
    </form>
  );
}

async function allAppointments(max = 500): Promise<Appointment[]> {
  const out: Appointment[] = [];
  let cursor: string | undefined;
  do {
    const page = await admin.appointments(cursor);
    out.push(...page.appointments);
    cursor = page.next_cursor ?? undefined;
  } while (cursor && out.length < max);
  return out;
}

export function AdminAppointments() {
  const { data, error, loading, reload } = useLoad(() => allAppointments(), []);
  const groups = useLoad(() => groupsApi.all(), []);
  const [status, setStatus] = useState('');
  const [who, setWho] = useState('');
  const [busy, actionError, run, setActionError] = useAction();
  const [target, setTarget] = useState<Record<string, string>>({});
  const [why, setWhy] = useState<Record<string, string>>({});
  const [done, setDone] = useState<string | null>(null);
  const act = (what: string, change: () => Promise<unknown>) =>
    run(change).then((ok) => {
      setDone(ok ? what : null);
      if (ok) reload();
    });
  const needle = who.trim().toLowerCase();
  const list = (data ?? []).filter(
    (a) =>
      (!status || a.status === status) &&
      (!needle || [a.patient_id, a.doctor_id, a.patient_name, a.doctor_name].some((x) => x?.toLowerCase().includes(needle))),
  );
  return (
    <section>
      <h1>All appointments</h1>
      <div className="row">
        <AnyFilter
          label="Status"
          value={status}
          options={['requested', 'offered', 'confirmed', 'completed', 'no_show', 'cancelled', 'expired', 'declined']}
          optionLabel={statusLabel}
          onChange={setStatus}
        />
        <label>
          Patient or doctor (name or id)
          <input value={who} onChange={(e) => setWho(e.target.value)} />
        </label>
      </div>
      <ErrorMsg error={error ?? actionError} />
      <Saved show={!!done && !busy}>{done}</Saved>
      {loading && !data && <Loading />}
      {data && list.length === 0 && <Empty>{data.length ? 'No appointment matches these filters.' : 'No appointments yet.'}</Empty>}
      <ul className="cards" aria-label="Appointments" hidden={!list.length}>
        {list.map((a) => (
          <li key={a.id} className="card">
            <p>
              <StatusBadge status={a.status} /> <Link to={`/appointments/${a.id}`}>{a.reason}</Link>
            </p>
            <p className="small">
              {when(a)} {withWhom(a, 'admin')}
            </p>
            {['requested', 'offered'].includes(a.status) && (
              <div className="row">
                <label>
                  Re-route to group
                  <select value={target[a.id] ?? ''} onChange={(e) => setTarget({ ...target, [a.id]: e.target.value })}>
                    <option value="">Choose…</option>
                    {groups.data?.groups.map((g) => (
                      <option key={g.id} value={g.id}>
                        {g.name}
                      </option>
                    ))}
                  </select>
                </label>
                <button
                  disabled={busy || !target[a.id]}
                  onClick={() =>
                    act(`“${a.reason}” re-routed.`, () => admin.reroute(a.id, target[a.id])).then(() => setTarget((t) => ({ ...t, [a.id]: '' })))
                  }
                  aria-label={`Re-route “${a.reason}”`}
                >
                  Re-route
                </button>
              </div>
            )}
            {['requested', 'offered'].includes(a.status) && (
              <div className="row">
                <label>
                  Reason to decline
                  <input value={why[a.id] ?? ''} onChange={(e) => setWhy({ ...why, [a.id]: e.target.value })} maxLength={1000} />
                </label>
                <button
                  className="danger"
                  disabled={busy}
                  aria-label={`Decline “${a.reason}”`}
                  onClick={() => {
                    const reason = (why[a.id] ?? '').trim();
                    if (!reason) return setActionError('Give a reason to decline: the patient is told it.');
                    void act(`“${a.reason}” declined; the patient is told why.`, () => admin.decline(a.id, reason));
                  }}
                >
                  Decline
                </button>
              </div>
            )}
          </li>
        ))}
      </ul>
    </section>
  );
}

export function AdminAudit() {
  const [subject, setSubject] = useState('');
  const { data, error, loading } = useLoad(
    () =>
      admin.audit(/^[A-Za-z0-9_-]{1,100}$/.test(subject) ? subject : undefined),
    [subject],
  );
  return (
    <section>
      <h1>Audit log</h1>
      <label>
        Subject id
        <input value={subject} onChange={(e) => setSubject(e.target.value.trim())} />
      </label>
      <ErrorMsg error={error} />
      {loading && !data && <Loading />}
      {data && data.entries.length === 0 && <Empty>{subject ? 'No entries about this subject.' : 'No entries yet.'}</Empty>}
      <DataTable
        caption="Audit entries"
        columns={[`When (${viewerZone()})`, 'Action', 'Actor', 'Subject']}
        rows={data?.entries}
        row={(e) => (
          <tr key={e.event_id}>
            <td>{formatWithZone(new Date(e.at > 1e12 ? e.at : e.at * 1000).toISOString()).replace(/ \(.*\)$/, '')}</td>
            <td>
              {e.service}: {e.action}
              {e.reason ? ` (${e.reason})` : ''}
            </td>
            <td>
              {e.actor_name ?? e.actor_id.slice(0, 8)} ({e.actor_role})
            </td>
            <td>{e.subject_id ? (e.subject_name ?? e.subject_id.slice(0, 8)) : ''}</td>
          </tr>
        )}
      />
    </section>
  );
}

/** Bars of counts per day, drawn as SVG. */
export function BarChart({ title, series, days }: { title: string; series: { label: string; cls: string; values: number[] }[]; days: string[] }) {
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const w = 640;
  const h = 160;
  const group = w / days.length;
  const bw = Math.max(2, (group - 6) / series.length);
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${w} ${h + 20}`} role="img" aria-label={`${title}: ${series.map((s) => `${s.label} ${s.values.reduce((a, b) => a + b, 0)}`).join(', ')}`}>
        {days.map((d, i) =>
          series.map((s, j) => {
            const v = s.values[i];
            const bh = (v / max) * h;
            return <rect key={`${d}-${j}`} className={s.cls} x={i * group + 3 + j * bw} y={h - bh} width={bw} height={bh} />;
          }),
        )}
        {days.map((d, i) =>
          i % Math.ceil(days.length / 7) === 0 ? (
            <text key={d} x={i * group + 2} y={h + 15} className="axis">
              {d.slice(5)}
            </text>
          ) : null,
        )}
      </svg>
      <figcaption>
        {title}:{' '}
        {series.map((s) => (
          <span key={s.label} className={`legend ${s.cls}`}>
            {s.label}
          </span>
        ))}
      </figcaption>
    </figure>
  );
}

export function Dashboard() {
  const zone = viewerZone();
  const { data, error, loading } = useLoad(async () => {
    const apps = await allAppointments(500);
    // Offers come with each appointment's detail: the newest 60 are enough for the table.
    const details = await Promise.all(
      apps.slice(0, 60).map((a) => appointments.detail(a.id).catch(() => ({ offers: [] as Offer[] }))),
    );
    const doctors = await directory.search({ limit: 100 });
    return { apps, offers: details.flatMap((d) => d.offers), doctors: doctors.doctors };
  }, []);
  if (loading) return <Loading what="Counting" />;
  if (!data) return <ErrorMsg error={error} />;
  const days = Array.from({ length: 14 }, (_, i) => dayKey(addDays(new Date().toISOString(), i - 13), zone));
  const count = (pred: (a: Appointment) => string | null) => days.map((d) => data.apps.filter((a) => pred(a) === d).length);
  const requests = count((a) => dayKey(a.created_at, zone));
  const accepted = data.offers.filter((o) => o.status === 'accepted' && o.decided_at);
  const confirmations = days.map((d) => accepted.filter((o) => dayKey(o.decided_at!, zone) === d).length);
  // An appointment does not record when it lapsed: expiries count on the day the request was made.
  const expiries = count((a) => (a.status === 'expired' ? dayKey(a.created_at, zone) : null));
  const names = new Map(data.doctors.map((d) => [d.id, d.display_name]));
  const perDoctor = new Map<string, { offers: number; accepted: number; secs: number[] }>();
  for (const o of data.offers) {
    const e = perDoctor.get(o.doctor_id) ?? { offers: 0, accepted: 0, secs: [] };
    e.offers += 1;
    if (o.status === 'accepted' && o.decided_at) {
      e.accepted += 1;
      e.secs.push((new Date(o.decided_at).getTime() - new Date(o.created_at).getTime()) / 1000);
    }
    perDoctor.set(o.doctor_id, e);
  }
  const median = (xs: number[]) => (xs.length ? [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] : null);
  return (
    <section>
      <h1>Dashboard</h1>
      <p className="small">
        The last 14 days in {zone}, from {data.apps.length} appointments.
      </p>
      <BarChart
        title="Per day"
        days={days}
        series={[
          { label: 'requests', cls: 's1', values: requests },
          { label: 'confirmations', cls: 's2', values: confirmations },
          { label: 'expiries (by request day)', cls: 's3', values: expiries },
        ]}
      />
      <h2>Offers per doctor</h2>
      {perDoctor.size === 0 && <Empty>No offers yet.</Empty>}
      <DataTable
        caption="Offers and accept times per doctor"
        columns={['Doctor', 'Offers', 'Accepted', 'Median time to accept']}
        rows={[...perDoctor.entries()]}
        row={([id, e]) => {
          const m = median(e.secs);
          return (
            <tr key={id}>
              <td>{names.get(id) ?? id.slice(0, 8)}</td>
              <td>
                <span className="hbar" data-w={Math.min(10, e.offers)} aria-hidden="true" /> {e.offers}
              </td>
              <td>{e.accepted}</td>
              <td>{m === null ? '–' : m < 120 ? `${Math.round(m)} s` : `${Math.round(m / 60)} min`}</td>
            </tr>
          );
        }}
      />
    </section>
  );
}
