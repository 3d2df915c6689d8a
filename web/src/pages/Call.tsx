import { useEffect, useRef, useState } from 'react';
import { Link, useParams } from 'react-router-dom';
import { CallSession, mediaErrorMessage, type CallView } from '../lib/call';
import { hub, rings, useFrames, useSession } from '../lib/ui';

const WORDS: Record<string, string> = {
  idle: 'Not in a call',
  calling: 'Calling…',
  ringing: 'Incoming call',
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting…',
  ended: 'Call ended',
  failed: 'Call failed',
};

export function CallPage() {
  const { id = '' } = useParams();
  const { user } = useSession();
  const localRef = useRef<HTMLVideoElement>(null);
  const remoteRef = useRef<HTMLVideoElement>(null);
  const [stream, setStream] = useState<MediaStream | null>(null);
  const noMedia = !navigator.mediaDevices;
  const [mediaError, setMediaError] = useState<string | null>(noMedia ? 'This browser cannot use a camera here.' : null);
  const [mediaReady, setMediaReady] = useState(noMedia);
  const [view, setView] = useState<CallView>({ phase: 'idle', message: '', remote: null });
  const [ringing, setRinging] = useState(() => rings.has(id));
  const [muted, setMuted] = useState(false);
  const [cameraOff, setCameraOff] = useState(false);
  const session = useRef<CallSession | null>(null);

  useFrames(['call_ring'], (f) => f.appointment_id === id && setRinging(true));

  useEffect(() => {
    let s: MediaStream | null = null;
    let live = true;
    navigator.mediaDevices
      ?.getUserMedia({ video: true, audio: true })
      .then((m) => {
        if (!live) return m.getTracks().forEach((t) => t.stop());
        s = m;
        setStream(m);
      })
      .catch((e) => setMediaError(mediaErrorMessage(e)))
      .finally(() => live && setMediaReady(true));
    return () => {
      live = false;
      s?.getTracks().forEach((t) => t.stop());
    };
  }, []);

  useEffect(() => {
    if (localRef.current) localRef.current.srcObject = stream;
  }, [stream]);

  const role = user?.role;
  useEffect(() => {
    if (!mediaReady || !role) return;
    // `stream` is set before `mediaReady`, and never after it.
    const c = new CallSession(hub, id, role === 'doctor', stream, setView);
    session.current = c;
    return () => {
      c.dispose();
      session.current = null;
    };
  }, [mediaReady, id, role, stream]);

  useEffect(() => {
    if (remoteRef.current && remoteRef.current.srcObject !== view.remote) remoteRef.current.srcObject = view.remote;
  }, [view.remote]);

  const toggle = (kind: 'audio' | 'video') => {
    const tracks = kind === 'audio' ? stream?.getAudioTracks() : stream?.getVideoTracks();
    tracks?.forEach((t) => (t.enabled = !t.enabled));
    if (kind === 'audio') setMuted((m) => !m);
    else setCameraOff((c) => !c);
  };
  const inCall = ['connecting', 'connected', 'reconnecting', 'calling'].includes(view.phase);
  return (
    <section>
      <h1>Video call</h1>
      <p className="call-state" role="status" aria-live="polite">
        State: <strong data-testid="call-state">{WORDS[view.phase]}</strong>
        {view.message && view.phase !== 'ringing' ? ` — ${view.message}` : ''}
      </p>
      {mediaError && (
        <p className="error" role="alert">
          {mediaError}
        </p>
      )}
      <div className="videos">
        <figure>
          <video ref={remoteRef} autoPlay playsInline data-testid="remote-video" aria-label="The other participant" />
          <figcaption>Other participant</figcaption>
        </figure>
        <figure className="self">
          <video ref={localRef} autoPlay playsInline muted aria-label="Your camera preview" />
          <figcaption>You{cameraOff ? ' (camera off)' : ''}{muted ? ' (muted)' : ''}</figcaption>
        </figure>
      </div>
      <div className="row controls">
        {!inCall && ringing && view.phase !== 'ended' && (
          <>
            <button onClick={() => { setRinging(false); rings.delete(id); session.current?.start(true); }}>Answer</button>
            <button className="secondary" onClick={() => { setRinging(false); session.current?.decline(); }}>Decline</button>
          </>
        )}
        {!inCall && !ringing && (
          <button disabled={!mediaReady} onClick={() => session.current?.start(false)}>
            Start call
          </button>
        )}
        <button className="secondary" aria-pressed={muted} disabled={!stream} onClick={() => toggle('audio')}>
          {muted ? 'Unmute' : 'Mute'}
        </button>
        <button className="secondary" aria-pressed={cameraOff} disabled={!stream} onClick={() => toggle('video')}>
          {cameraOff ? 'Camera on' : 'Camera off'}
        </button>
        {inCall && (
          <button className="danger" onClick={() => session.current?.hangup()}>
            Hang up
          </button>
        )}
      </div>
      <p>
        <Link to={`/appointments/${id}`}>Back to the appointment</Link>
      </p>
    </section>
  );
}
