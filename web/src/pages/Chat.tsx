import { useEffect, useLayoutEffect, useRef, useState, type FormEvent } from 'react';
import { newKey } from '../lib/api';
import { frameErrorSentence } from '../lib/errors';
import { lastSeq, mergeMessages, settlePending, type ChatMessage, type Pending } from '../lib/chat';
import { formatTime } from '../lib/time';
import { hub, useSession } from '../lib/ui';

/** The chat of appointment `room` with `other` (the other participant's name), and whether they are online. */
export function Chat({ room, other }: { room: string; other: string }) {
  const { user, hubState } = useSession();
  // Whether the other participant is online: asked on every (re)join, then pushed by the hub.
  const [online, setOnline] = useState<boolean | null>(null);
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [pending, setPending] = useState<Pending[]>([]);
  const [hasMore, setHasMore] = useState(false);
  const [typing, setTyping] = useState(false);
  const [otherRead, setOtherRead] = useState(0);
  const [text, setText] = useState('');
  const [error, setError] = useState<string | null>(null);
  // The latest lists for the frame handlers, set as soon as React commits them.
  const msgsRef = useRef(messages);
  const pendingRef = useRef(pending);
  useLayoutEffect(() => {
    msgsRef.current = messages;
    pendingRef.current = pending;
  });
  const me = user?.id ?? '';
  const typingSent = useRef(false);

  useEffect(() => {
    const mine = (f: { room: string }) => f.room === room;
    const add = (ms: ChatMessage[]) => {
      setMessages((cur) => mergeMessages(cur, ms));
      setPending((p) => settlePending(p, ms, me));
    };
    const offs = [
      hub.on('chat_history', (f) => {
        if (!mine(f)) return;
        add(f.messages);
        setHasMore(f.has_more);
      }),
      hub.on('chat_backlog', (f) => {
        if (!mine(f)) return;
        add(f.messages);
        if (f.has_more) hub.send({ type: 'resume', room, after_seq: lastSeq(msgsRef.current) });
      }),
      hub.on('chat_message', (f) => mine(f.message) && add([f.message])),
      hub.on('typing', (f) => mine(f) && f.user_id !== me && setTyping(f.active)),
      hub.on('chat_read', (f) => mine(f) && f.user_id !== me && setOtherRead(f.seq)),
      hub.on('presence', (f) => f.appointment_id === room && setOnline(f.online)),
      hub.on('error', (f) => {
        if (f.request?.startsWith('chat') || f.request === 'resume')
          setError(frameErrorSentence(f.code, { forbidden: 'The chat of this appointment is not open to you.', not_found: 'This appointment’s chat is not available.' }));
      }),
    ];
    const join = () => {
      hub.send({ type: 'presence_get', appointment_id: room });
      if (msgsRef.current.length) hub.send({ type: 'resume', room, after_seq: lastSeq(msgsRef.current) });
      else hub.send({ type: 'chat_history', room, limit: 30 });
      // Sends that were not acknowledged before a drop go again; client ids make that safe.
      for (const p of pendingRef.current) hub.send({ type: 'chat_send', room, client_id: p.client_id, body: p.body });
    };
    offs.push(hub.on('welcome', join));
    if (hub.state === 'connected') join();
    return () => offs.forEach((o) => o());
  }, [room, me]);

  // Tell the other side what we have read.
  const newest = lastSeq(messages);
  useEffect(() => {
    if (newest > 0 && document.visibilityState === 'visible') hub.send({ type: 'chat_read', room, seq: newest });
  }, [newest, room]);

  const send = (e: FormEvent) => {
    e.preventDefault();
    const body = text.trim();
    if (!body) return setError('Write a message first.');
    if (body.length > 4000) return setError('A message is at most 4000 characters.');
    const p = { client_id: newKey().slice(0, 64), body };
    setPending((cur) => [...cur, p]);
    setText('');
    setError(null);
    hub.send({ type: 'chat_send', room, client_id: p.client_id, body });
    hub.send({ type: 'typing', room, active: false });
    typingSent.current = false;
  };
  const onType = (v: string) => {
    setText(v);
    const active = v.length > 0;
    if (active !== typingSent.current) {
      typingSent.current = active;
      hub.send({ type: 'typing', room, active });
    }
  };
  const older = () => hub.send({ type: 'chat_history', room, before_seq: messages[0]?.seq, limit: 30 });
  return (
    <section className="chat" aria-labelledby="chat-h">
      <h2 id="chat-h">Chat</h2>
      {hubState !== 'connected' && <p className="muted" role="status">Connecting to chat…</p>}
      {hubState === 'connected' && online !== null && (
        <p className="small muted" role="status" data-testid="presence">
          {other} is {online ? 'online' : 'offline'}
        </p>
      )}
      {hasMore && (
        <button className="link" onClick={older}>
          Show older messages
        </button>
      )}
      <ol className="messages" aria-live="polite" aria-label="Messages" data-testid="messages">
        {messages.length === 0 && pending.length === 0 && <li className="muted">No messages yet.</li>}
        {messages.map((m) => (
          <li key={m.seq} className={m.sender_id === me ? 'mine' : 'theirs'}>
            <span className="body">{m.body}</span>
            <span className="small muted">
              {' '}
              {formatTime(new Date(m.sent_at).toISOString())}
              {m.sender_id === me && otherRead >= m.seq ? ' · read' : ''}
            </span>
          </li>
        ))}
        {pending.map((p) => (
          <li key={p.client_id} className="mine pending">
            <span className="body">{p.body}</span> <span className="small muted">sending…</span>
          </li>
        ))}
      </ol>
      {typing && <p className="small muted" role="status">The other side is typing…</p>}
      <form onSubmit={send} className="row">
        <label className="grow">
          Message
          <input value={text} onChange={(e) => onType(e.target.value)} maxLength={4000} />
        </label>
        <button type="submit">Send</button>
      </form>
      {error && <p className="error" role="alert">{error}</p>}
    </section>
  );
}
