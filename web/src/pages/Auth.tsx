import { useState, type FormEvent } from 'react';
import { Link, Navigate, useLocation, useNavigate } from 'react-router-dom';
import { api } from '../lib/api';
import { viewerZone } from '../lib/time';
import { ErrorMsg, useAction, useSession } from '../lib/ui';

/** Passwords: the same rule the sign-up form checks before the API does. */
function passwordProblem(password: string, email?: string): string | null {
  const n = Array.from(password).length;
  if (n < 10) return 'The password needs at least 10 characters.';
  if (n > 128) return 'The password can have at most 128 characters.';
  if (email && password.trim().toLowerCase() === email.trim().toLowerCase()) return 'The password must not be your email address.';
  return null;
}

/** A new password, typed twice (reset and change). */
function NewPasswordFields(p: { password: string; again: string; onPassword: (v: string) => void; onAgain: (v: string) => void }) {
  return (
    <>
      <label>
        New password (at least 10 characters)
        <input type="password" autoComplete="new-password" value={p.password} onChange={(e) => p.onPassword(e.target.value)} required minLength={10} />
      </label>
      <label>
        New password again
        <input type="password" autoComplete="new-password" value={p.again} onChange={(e) => p.onAgain(e.target.value)} required />
      </label>
    </>
  );
}

export function Login() {
  const { user } = useSession();
  const nav = useNavigate();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, error, run, setError] = useAction({ validation_failed: 'Enter your email address and password.' });
  if (user) return <Navigate to="/" replace />;
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!email.includes('@')) return setError('Enter your email address.');
    if (!password) return setError('Enter your password.');
    if (await run(() => api.login(email.trim(), password))) nav('/');
  };
  return (
    <section className="narrow">
      <h1>Sign in to carehub</h1>
      <form onSubmit={submit} noValidate>
        <label>
          Email
          <input type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} required />
        </label>
        <label>
          Password
          <input type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
        </label>
        <ErrorMsg error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
      <p>
        <Link to="/forgot-password">Forgot password?</Link>
      </p>
      <p>
        New here? <Link to="/signup">Create an account</Link>
      </p>
    </section>
  );
}

/** Asks for a reset mail. The answer is the same whether or not the email has an account. */
export function ForgotPassword() {
  const [email, setEmail] = useState('');
  const [sent, setSent] = useState(false);
  const [busy, error, run, setError] = useAction({ validation_failed: 'Enter a valid email address.' });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email.trim())) return setError('Enter a valid email address.');
    if (await run(() => api.requestPasswordReset(email.trim()))) setSent(true);
  };
  return (
    <section className="narrow">
      <h1>Reset your password</h1>
      {sent ? (
        <p role="status">
          If <strong>{email.trim()}</strong> belongs to an account, we have sent it a link to choose a new password. The link works once
          and expires soon.
        </p>
      ) : (
        <form onSubmit={submit} noValidate>
          <p>Enter the email address of your account and we will send you a link to choose a new password.</p>
          <label>
            Email
            <input type="email" autoComplete="username" value={email} onChange={(e) => setEmail(e.target.value)} required />
          </label>
          <ErrorMsg error={error} />
          <button type="submit" disabled={busy}>
            {busy ? 'Sending…' : 'Send reset link'}
          </button>
        </form>
      )}
      <p>
        <Link to="/login">Back to sign in</Link>
      </p>
    </section>
  );
}

/** The page the reset mail links to: `/reset-password#token=…` (the token never reaches a server log). */
export function ResetPassword() {
  const { hash } = useLocation();
  const token = new URLSearchParams(hash.replace(/^#/, '')).get('token') ?? '';
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [done, setDone] = useState(false);
  const [busy, error, run, setError] = useAction({
    unauthorized: 'This reset link has expired or was already used. Ask for a new one.',
    validation_failed: 'The password needs 10 to 128 characters.',
  });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const problem = passwordProblem(password);
    if (problem) return setError(problem);
    if (password !== again) return setError('The two passwords are not the same.');
    if (await run(() => api.confirmPasswordReset(token, password))) setDone(true);
  };
  if (!token)
    return (
      <section className="narrow">
        <h1>Choose a new password</h1>
        <p role="alert">This link is not complete. Open the link from the mail again, or ask for a new one.</p>
        <Link to="/forgot-password">Ask for a new link</Link>
      </section>
    );
  return (
    <section className="narrow">
      <h1>Choose a new password</h1>
      {done ? (
        <>
          <p role="status">Your password is changed. Sign in with the new password.</p>
          <Link to="/login">Sign in</Link>
        </>
      ) : (
        <form onSubmit={submit} noValidate>
          <NewPasswordFields password={password} again={again} onPassword={setPassword} onAgain={setAgain} />
          <ErrorMsg error={error} />
          <button type="submit" disabled={busy}>
            {busy ? 'Saving…' : 'Set new password'}
          </button>
        </form>
      )}
    </section>
  );
}

export function Signup() {
  const [email, setEmail] = useState('');
  const [name, setName] = useState('');
  const [password, setPassword] = useState('');
  const [role, setRole] = useState<'patient' | 'doctor'>('patient');
  const [done, setDone] = useState(false);
  const [busy, error, run, setError] = useAction();
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (!/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(email)) return setError('Enter a valid email address.');
    if (!name.trim()) return setError('Enter your name.');
    const problem = passwordProblem(password, email);
    if (problem) return setError(problem);
    // The browser's zone: the account's mails and reminders are written in it (changed on Account).
    if (await run(() => api.register(email.trim(), password, name.trim(), role, viewerZone()))) setDone(true);
  };
  if (done)
    return (
      <section className="narrow">
        <h1>Account requested</h1>
        <p role="status">
          {role === 'doctor'
            ? 'Your doctor account waits for an administrator’s approval. You can sign in now.'
            : 'You can sign in now.'}
        </p>
        <Link to="/login">Sign in</Link>
      </section>
    );
  return (
    <section className="narrow">
      <h1>Create an account</h1>
      <form onSubmit={submit} noValidate>
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} autoComplete="name" required maxLength={100} />
        </label>
        <label>
          Email
          <input type="email" value={email} onChange={(e) => setEmail(e.target.value)} autoComplete="email" required />
        </label>
        <label>
          Password (at least 10 characters)
          <input type="password" value={password} onChange={(e) => setPassword(e.target.value)} autoComplete="new-password" required minLength={10} />
        </label>
        <fieldset>
          <legend>I am a</legend>
          <label className="inline">
            <input type="radio" name="role" checked={role === 'patient'} onChange={() => setRole('patient')} /> patient
          </label>
          <label className="inline">
            <input type="radio" name="role" checked={role === 'doctor'} onChange={() => setRole('doctor')} /> doctor
          </label>
        </fieldset>
        <ErrorMsg error={error} />
        <button type="submit" disabled={busy}>
          {busy ? 'Creating…' : 'Create account'}
        </button>
      </form>
      <p>
        Have an account? <Link to="/login">Sign in</Link>
      </p>
    </section>
  );
}

/**
 * A signed-in person changes their password: the current one, then the new one twice. One part of
 * the Account page.
 */
export function ChangePassword() {
  const { user } = useSession();
  const [current, setCurrent] = useState('');
  const [password, setPassword] = useState('');
  const [again, setAgain] = useState('');
  const [done, setDone] = useState(false);
  const [busy, error, run, setError] = useAction({
    invalid_credentials: 'Your current password is not right. Type it again.',
    forbidden: 'Your current password is not right. Type it again.',
    validation_failed: 'The new password is not accepted: it needs 10 to 128 characters and must not be your email address.',
  });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setDone(false);
    if (!current) return setError('Type your current password.');
    const problem = passwordProblem(password, user?.email);
    if (problem) return setError(problem.replace(/^The password/, 'The new password'));
    if (password !== again) return setError('The two new passwords are not the same.');
    if (password === current) return setError('The new password is the same as the current one.');
    if (await run(() => api.changePassword(current, password))) {
      setDone(true);
      setCurrent('');
      setPassword('');
      setAgain('');
    }
  };
  return (
    <>
      <h2>Change your password</h2>
      <form onSubmit={submit} noValidate aria-label="Change your password">
        <label>
          Current password
          <input type="password" autoComplete="current-password" value={current} onChange={(e) => setCurrent(e.target.value)} required />
        </label>
        <NewPasswordFields password={password} again={again} onPassword={setPassword} onAgain={setAgain} />
        <ErrorMsg error={error} />
        <p role="status" className="saved">
          {done && !busy ? 'Your password is changed. Other devices are signed out; use the new password the next time you sign in.' : ''}
        </p>
        <button type="submit" disabled={busy}>
          {busy ? 'Saving…' : 'Change password'}
        </button>
      </form>
    </>
  );
}
