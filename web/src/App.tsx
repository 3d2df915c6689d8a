import { BrowserRouter, Link, Navigate, NavLink, Route, Routes, useLocation, useNavigate } from 'react-router-dom';
import { api } from './lib/api';
import { viewerZone } from './lib/time';
import { useState } from 'react';
import { Loading, SessionProvider, useFrames, useSession } from './lib/ui';
import { Account } from './pages/Account';
import { ForgotPassword, Login, ResetPassword, Signup } from './pages/Auth';
import { DoctorProfile } from './pages/DoctorProfile';
import { Directory, DoctorPage } from './pages/Directory';
import { BookRequest } from './pages/Book';
import { AppointmentDetail, Appointments } from './pages/Appointments';
import { Notifications } from './pages/Notifications';
import { Profile } from './pages/Profile';
import { Availability, Offers, Schedule } from './pages/Doctor';
import { AdminAppointments, AdminAudit, AdminGroups, AdminUsers, Dashboard } from './pages/Admin';
import { CallPage } from './pages/Call';

function Header() {
  const { user, unread, hubState } = useSession();
  const nav = useNavigate();
  const { pathname } = useLocation();
  const [ring, setRing] = useState<string | null>(null);
  // On a phone the links sit behind a menu button; following one closes the menu.
  // Open on the page where it was opened: moving to another page closes it.
  const [openOn, setOpenOn] = useState<string | null>(null);
  const open = openOn === pathname;
  useFrames(['call_ring'], (f) => setRing(f.appointment_id));
  useFrames(['call_cancel', 'call_hangup', 'call_accept'], () => setRing(null));
  if (!user) return null;
  const links: [string, string][] =
    user.role === 'patient'
      ? [
          ['/doctors', 'Doctors'],
          ['/book', 'Book'],
          ['/appointments', 'Appointments'],
          ['/profile', 'Profile'],
        ]
      : user.role === 'doctor'
        ? [
            ['/offers', 'Offers'],
            ['/schedule', 'Schedule'],
            ['/availability', 'Availability'],
            ['/appointments', 'Appointments'],
            ['/profile', 'Profile'],
          ]
        : [
            ['/admin', 'Dashboard'],
            ['/admin/users', 'Users'],
            ['/admin/groups', 'Groups'],
            ['/admin/appointments', 'Appointments'],
            ['/admin/audit', 'Audit log'],
          ];
  return (
    <header className="top">
      <div className="bar">
        <Link to="/" className="brand">
          carehub
        </Link>
        <Link
          to="/notifications"
          className="bell"
          aria-label={unread > 0 ? `Notifications, ${unread} unread` : 'Notifications'}
          data-testid="bell"
          data-unread={unread}
        >
          <svg aria-hidden="true" width="20" height="20" viewBox="0 0 24 24" className="bell-icon">
            <path d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1Z" />
          </svg>
          {unread > 0 && (
            <span className="count" data-testid="unread-count" aria-hidden="true">
              {unread > 99 ? '99+' : unread}
            </span>
          )}
        </Link>
        <button type="button" className="menu-toggle secondary" aria-expanded={open} aria-controls="header-menu" onClick={() => setOpenOn(open ? null : pathname)}>
          Menu
        </button>
      </div>
      <div id="header-menu" className={`menu ${open ? 'open' : ''}`}>
        <nav aria-label="Main">
          <ul>
            {links.map(([to, label]) => (
              <li key={to}>
                <NavLink to={to} end>
                  {label}
                </NavLink>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <span className={`conn conn-${hubState}`} title="Live connection">
            {hubState === 'connected' ? 'live' : hubState === 'reconnecting' ? 'reconnecting…' : hubState}
          </span>
          <span className="muted small">
            {user.display_name} · {viewerZone()}
          </span>
          <Link to="/account" className="small">
            Account
          </Link>
          <button
            type="button"
            className="link"
            onClick={async () => {
              await api.logout();
              nav('/login');
            }}
          >
            Sign out
          </button>
        </div>
      </div>
      {ring && (
        <p className="ring" role="alert">
          Incoming video call. <Link to={`/call/${ring}`} onClick={() => setRing(null)}>Open the call</Link>
        </p>
      )}
    </header>
  );
}

function Home() {
  const { user } = useSession();
  if (!user) return <Navigate to="/login" replace />;
  if (user.role === 'doctor') return <Navigate to={user.status === 'active' ? '/offers' : '/pending'} replace />;
  if (user.role === 'admin') return <Navigate to="/admin" replace />;
  return <Navigate to="/appointments" replace />;
}

function Pending() {
  return (
    <section>
      <h1>Waiting for approval</h1>
      <p>An administrator has to approve your doctor account before patients can find you.</p>
    </section>
  );
}

function Guard({ children, role }: { children: React.ReactNode; role?: string }) {
  const { user, ready } = useSession();
  if (!ready) return <Loading what="Signing you in" />;
  if (!user) return <Navigate to="/login" replace />;
  if (role && user.role !== role) return <p role="alert">This page is for {role}s.</p>;
  return <>{children}</>;
}

/** A patient's profile is their medical details; a doctor's is what the directory shows. */
function RoleProfile() {
  const { user } = useSession();
  if (user?.role === 'patient') return <Profile />;
  if (user?.role === 'doctor') return <DoctorProfile />;
  return <p role="alert">This page is for patients and doctors.</p>;
}

function Shell() {
  const { ready } = useSession();
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <Header />
      <main id="main" tabIndex={-1}>
        {!ready ? (
          <Loading what="Signing you in" />
        ) : (
          <Routes>
            <Route path="/" element={<Home />} />
            <Route path="/login" element={<Login />} />
            <Route path="/signup" element={<Signup />} />
            <Route path="/forgot-password" element={<ForgotPassword />} />
            <Route path="/reset-password" element={<ResetPassword />} />
            <Route path="/pending" element={<Pending />} />
            <Route path="/doctors" element={<Guard><Directory /></Guard>} />
            <Route path="/doctors/:id" element={<Guard><DoctorPage /></Guard>} />
            <Route path="/book" element={<Guard role="patient"><BookRequest /></Guard>} />
            <Route path="/appointments" element={<Guard><Appointments /></Guard>} />
            <Route path="/appointments/:id" element={<Guard><AppointmentDetail /></Guard>} />
            <Route path="/notifications" element={<Guard><Notifications /></Guard>} />
            <Route path="/profile" element={<Guard><RoleProfile /></Guard>} />
            <Route path="/offers" element={<Guard role="doctor"><Offers /></Guard>} />
            <Route path="/schedule" element={<Guard role="doctor"><Schedule /></Guard>} />
            <Route path="/availability" element={<Guard role="doctor"><Availability /></Guard>} />
            <Route path="/admin" element={<Guard role="admin"><Dashboard /></Guard>} />
            <Route path="/admin/users" element={<Guard role="admin"><AdminUsers /></Guard>} />
            <Route path="/admin/groups" element={<Guard role="admin"><AdminGroups /></Guard>} />
            <Route path="/admin/appointments" element={<Guard role="admin"><AdminAppointments /></Guard>} />
            <Route path="/admin/audit" element={<Guard role="admin"><AdminAudit /></Guard>} />
            <Route path="/account" element={<Guard><Account /></Guard>} />
            <Route path="/password" element={<Navigate to="/account" replace />} />
            <Route path="/call/:id" element={<Guard><CallPage /></Guard>} />
            <Route path="*" element={<p>Nothing here. <Link to="/">Home</Link></p>} />
          </Routes>
        )}
      </main>
    </>
  );
}

export function App() {
  return (
    <BrowserRouter>
      <SessionProvider>
        <Shell />
      </SessionProvider>
    </BrowserRouter>
  );
}
