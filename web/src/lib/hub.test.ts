import { describe, expect, it } from 'vitest';
import { Hub, hubUrl, type ClientFrame, type HubState, type ServerFrame } from './hub';
import { lastSeq, mergeMessages, settlePending, type ChatMessage } from './chat';

/** A scripted socket standing in for the browser's WebSocket. */
class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: ClientFrame[] = [];
  closed: { code?: number } | null = null;
  onopen: ((ev: unknown) => void) | null = null;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onclose: ((ev: { code: number; reason: string }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.all.push(this);
  }
  send(data: string) {
    this.sent.push(JSON.parse(data));
  }
  close(code?: number) {
    this.closed = { code };
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  receive(f: ServerFrame) {
    this.onmessage?.({ data: JSON.stringify(f) });
  }
  drop(code: number) {
    this.readyState = 3;
    this.onclose?.({ code, reason: '' });
  }
}

/** The hub's answer to `auth`. */
const WELCOME: ServerFrame = { type: 'welcome', user_id: 'u1', role: 'patient', expires_at: 0, node: 'n' };

const tick = () => new Promise((r) => setTimeout(r, 0));

function setup(tokens: (string | null)[] = ['tok1', 'tok2', 'tok3', 'tok4']) {
  FakeSocket.all = [];
  const timers: { fn: () => void; ms: number }[] = [];
  const asked: boolean[] = [];
  const hub = new Hub({
    url: 'ws://example.test/ws',
    token: async (fresh) => {
      asked.push(fresh);
      return tokens.shift() ?? null;
    },
    socket: (u) => new FakeSocket(u),
    setTimer: (fn, ms) => timers.push({ fn, ms }),
    clearTimer: () => {},
    backoff: [100, 200, 400],
  });
  const states: HubState[] = [];
  hub.onState((s) => states.push(s));
  return { hub, timers, asked, states };
}

describe('Hub protocol', () => {
  it('authenticates with the first frame and sends nothing before the welcome', async () => {
    const { hub, states } = setup();
    hub.start();
    await tick();
    const ws = FakeSocket.all[0];
    expect(ws.url).toBe('ws://example.test/ws');
    expect(hub.send({ type: 'chat_history', room: 'r' })).toBe(false);
    ws.open();
    expect(ws.sent).toEqual([{ type: 'auth', token: 'tok1' }]);
    ws.receive(WELCOME);
    expect(hub.state).toBe('connected');
    expect(hub.send({ type: 'chat_history', room: 'r' })).toBe(true);
    expect(ws.sent[1]).toEqual({ type: 'chat_history', room: 'r' });
    expect(states).toEqual(['connecting', 'connected']);
  });

  it('dispatches frames by type and to catch-all listeners', async () => {
    const { hub } = setup();
    const got: string[] = [];
    hub.on('notification', (f) => got.push(`n:${f.unread_count}`));
    hub.on('*', (f) => got.push(`*:${f.type}`));
    hub.start();
    await tick();
    const ws = FakeSocket.all[0];
    ws.open();
    ws.receive(WELCOME);
    ws.receive({
      type: 'notification',
      notification: { id: 'n1', kind: 'appointment_confirmed', title: 'Confirmed', body: 'See you', created_at: '2026-12-07T10:00:00Z' },
      unread_count: 3,
    });
    ws.onmessage?.({ data: 'not json' });
    expect(got).toEqual(['*:welcome', 'n:3', '*:notification']);
  });

  it('renews the token in place when the hub warns of expiry', async () => {
    const { hub, asked } = setup();
    hub.start();
    await tick();
    const ws = FakeSocket.all[0];
    ws.open();
    ws.receive(WELCOME);
    ws.receive({ type: 'token_expiring', expires_at: 1 });
    await tick();
    expect(asked).toEqual([false, true]);
    expect(ws.sent.at(-1)).toEqual({ type: 'auth', token: 'tok2' });
    expect(FakeSocket.all).toHaveLength(1);
  });

  it('reconnects with back-off after a drop, announcing reconnecting, then welcome again', async () => {
    const { hub, timers, states } = setup();
    let welcomes = 0;
    hub.on('welcome', () => welcomes++);
    hub.start();
    await tick();
    FakeSocket.all[0].open();
    FakeSocket.all[0].receive(WELCOME);
    FakeSocket.all[0].drop(1001);
    expect(hub.state).toBe('reconnecting');
    expect(timers.map((t) => t.ms)).toEqual([100]);
    timers[0].fn();
    await tick();
    // The hub is still away: the next attempt waits longer.
    FakeSocket.all[1].drop(1006);
    expect(timers.map((t) => t.ms)).toEqual([100, 200]);
    timers[1].fn();
    await tick();
    FakeSocket.all[2].open();
    FakeSocket.all[2].receive(WELCOME);
    expect(hub.state).toBe('connected');
    expect(welcomes).toBe(2);
    expect(states).toEqual(['connecting', 'connected', 'reconnecting', 'connected']);
  });

  it('asks for a fresh token after a revocation or expiry close, and stops when there is none', async () => {
    const { hub, timers, asked } = setup(['tok1', null]);
    hub.start();
    await tick();
    FakeSocket.all[0].open();
    FakeSocket.all[0].receive(WELCOME);
    FakeSocket.all[0].drop(4003);
    timers[0].fn();
    await tick();
    expect(asked).toEqual([false, true]);
    expect(hub.state).toBe('closed');
    expect(FakeSocket.all).toHaveLength(1);
  });

  it('stop closes the socket normally and does not reconnect', async () => {
    const { hub, timers } = setup();
    hub.start();
    await tick();
    FakeSocket.all[0].open();
    hub.stop();
    expect(FakeSocket.all[0].closed).toEqual({ code: 1000 });
    expect(timers).toHaveLength(0);
  });

  it('builds the URL on the page origin', () => {
    expect(hubUrl({ protocol: 'https:', host: 'clinic.example' })).toBe('wss://clinic.example/ws');
    expect(hubUrl({ protocol: 'http:', host: '127.0.0.1:8080' })).toBe('ws://127.0.0.1:8080/ws');
  });
});

describe('chat state', () => {
  const m = (seq: number, client_id = `c${seq}`, sender_id = 'u1'): ChatMessage => ({ room: 'r', seq, sender_id, client_id, body: `m${seq}`, sent_at: seq });

  it('merges history, backlog and live messages by seq', () => {
    const merged = mergeMessages([m(1), m(2), m(4)], [m(4), m(3), m(5)]);
    expect(merged.map((x) => x.seq)).toEqual([1, 2, 3, 4, 5]);
    expect(lastSeq(merged)).toBe(5);
    expect(lastSeq([])).toBe(0);
  });

  it('settles pending sends once their message is stored', () => {
    const pending = [
      { client_id: 'a', body: 'x' },
      { client_id: 'b', body: 'y' },
    ];
    expect(settlePending(pending, [m(7, 'a')], 'u1')).toEqual([{ client_id: 'b', body: 'y' }]);
    // Someone else's message with the same client id settles nothing of ours.
    expect(settlePending(pending, [m(8, 'b', 'u2')], 'u1')).toHaveLength(2);
  });
});
