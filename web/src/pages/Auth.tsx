import { useState, type FormEvent } from 'react';
import { Link, Navigate, useNavigate } from 'react-router-dom';
import { api } from '../lib/api';
import { ErrorMsg, useAction, useSession } from '../lib/ui';

export function Login() {
  const { user } = useSession();
  const nav = useNavigate();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [busy, error, run, setError] = useAction();
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
        New here? <Link to="/signup">Create an account</Link>
      </p>
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
    if (password.length < 10) return setError('The password needs at least 10 characters.');
    if (password === email) return setError('The password must not be your email address.');
    if (await run(() => api.register(email.trim(), password, name.trim(), role))) setDone(true);
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
