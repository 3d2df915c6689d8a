import { afterEach, describe, expect, it, vi } from 'vitest';
import { Hub, hubUrl, type ClientFrame, type HubState, type ServerFrame } from './hub';
import { droppedBefore, lastSeq, mergeMessages, settlePending, type ChatMessage } from './chat';

/** A scripted socket standing in for the browser's WebSocket. */
class FakeSocket {
  static all: FakeSocket[] = [];
  readyState = 0;
  sent: Sent[] = [];
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

const tick = () => new Promise((r) => setTimeout(r, 0));

/** A frame as the hub client sent it, with the fields the tests read on any kind. */
type Sent = ClientFrame & { client_id?: string; seq?: number };

const WELCOME: ServerFrame = { type: 'welcome', user_id: 'u1', role: 'patient', expires_at: 0, node: 'n' };
const ack = (client_id: string, seq: number): ServerFrame => ({ type: 'chat_ack', room: 'r', client_id, seq, sent_at: 0 });

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
    ws.receive({ type: 'welcome', user_id: 'u1', role: 'patient', expires_at: 0, node: 'n' });
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
    ws.receive({ type: 'notification', notification: { id: 'n1', kind: 'appointment_confirmed', title: 't', body: 'b', created_at: '2026-12-01T09:00:00Z' }, unread_count: 3 });
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

/** The hub's rate limit as docs/PROTOCOL.md documents it: 20 frames per second, bursts of 40. */
function hubBucket(perSec = 20, burst = 40) {
  let tokens = burst;
  let last = 0;
  return (at: number) => {
    tokens = Math.min(burst, tokens + ((at - last) / 1000) * perSec);
    last = at;
    if (tokens < 1) return false;
    tokens -= 1;
    return true;
  };
}

describe('re-sending chat messages', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  /** A signed-in hub on fake timers, with every frame it sends recorded with its time. */
  async function connected() {
    vi.useFakeTimers();
    FakeSocket.all = [];
    const hub = new Hub({ url: 'ws://example.test/ws', token: async () => 'tok', socket: (u) => new FakeSocket(u) });
    hub.start();
    await vi.advanceTimersByTimeAsync(0);
    const ws = FakeSocket.all[0];
    ws.open();
    ws.receive(WELCOME);
    const t0 = Date.now();
    const at: { f: Sent; ms: number }[] = [];
    const send = ws.send.bind(ws);
    ws.send = (data: string) => {
      send(data);
      at.push({ f: JSON.parse(data), ms: Date.now() - t0 });
    };
    return { hub, ws, at };
  }

  const msg = (i: number): ClientFrame & { client_id: string } => ({ type: 'chat_send', room: 'r', client_id: `c${String(i).padStart(3, '0')}`, body: `m${i}` });

  it('sends 300 queued messages once each, in order, never faster than the hub admits', async () => {
    const { hub, at } = await connected();
    for (let i = 0; i < 300; i++) expect(hub.send(msg(i))).toBe(true);
    // A page sending them again (e.g. a second render) queues nothing twice.
    for (let i = 0; i < 300; i++) hub.send(msg(i));
    // Read positions and typing go along without breaking the pace.
    for (let i = 0; i < 50; i++) hub.send({ type: 'chat_read', room: 'r', seq: i });
    hub.send({ type: 'typing', room: 'r', active: true });
    await vi.advanceTimersByTimeAsync(60_000);
    const chats = at.filter((x) => x.f.type === 'chat_send').map((x) => x.f.client_id);
    expect(chats).toEqual(Array.from({ length: 300 }, (_, i) => msg(i).client_id));
    const admit = hubBucket();
    const refused = at.filter((x) => !admit(x.ms));
    expect(refused).toEqual([]);
    // Queued read positions were merged into one, with the newest seq.
    expect(at.filter((x) => x.f.type === 'chat_read').map((x) => x.f.seq)).toEqual([49]);
    expect(at.filter((x) => x.f.type === 'typing')).toHaveLength(1);
    // No slower than needed either: the last goes out within 300/15 s.
    expect(at.at(-1)!.ms).toBeLessThanOrEqual(20_000);
  });

  it('sends the dropped ones again after retry_after_ms, first and in order, and only those', async () => {
    const { hub, ws, at } = await connected();
    for (let i = 0; i < 6; i++) hub.send(msg(i));
    await vi.advanceTimersByTimeAsync(0);
    expect(at.map((x) => x.f.client_id)).toEqual(['c000', 'c001', 'c002', 'c003', 'c004', 'c005']);
    ws.receive(ack('c000', 1));
    ws.receive(ack('c001', 2));
    // A coalesced refusal whose first dropped frame was a read position; c002..c004 went too.
    ws.receive({ type: 'error', code: 'rate_limited', message: '', request: 'chat_read', last_client_id: 'c004', count: 4, retry_after_ms: 500 });
    hub.send(msg(6));
    await vi.advanceTimersByTimeAsync(499);
    expect(at).toHaveLength(6);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(at.slice(6).map((x) => x.f.client_id)).toEqual(['c002', 'c003', 'c004', 'c006']);
    // c005 was not dropped (its answer is on its way): it is not sent twice.
    ws.receive(ack('c005', 3));
    await vi.advanceTimersByTimeAsync(5_000);
    expect(at).toHaveLength(10);
  });

  it('forgets what a dropped socket left unanswered, for the page to send again on the next one', async () => {
    const { hub, ws } = await connected();
    for (let i = 0; i < 40; i++) hub.send(msg(i));
    await vi.advanceTimersByTimeAsync(200);
    ws.drop(1001);
    await vi.advanceTimersByTimeAsync(300);
    const next = FakeSocket.all[1];
    next.open();
    next.receive(WELCOME);
    for (let i = 0; i < 40; i++) hub.send(msg(i));
    await vi.advanceTimersByTimeAsync(10_000);
    const chats = next.sent.filter((f) => f.type === 'chat_send').map((f) => f.client_id);
    expect(chats).toEqual(Array.from({ length: 40 }, (_, i) => msg(i).client_id));
  });

  it('takes the dropped ones as every unanswered one up to the last the error names', () => {
    expect(droppedBefore(['a', 'b', 'c', 'd'], 'c')).toEqual(['a', 'b', 'c']);
    expect(droppedBefore(['a', 'b'], 'x')).toEqual([]);
    expect(droppedBefore(['a', 'b'], undefined)).toEqual([]);
  });
});
