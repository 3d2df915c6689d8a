// The websocket client of the hub (docs/PROTOCOL.md): authenticates with the access token
// in the first frame, renews it before expiry, and reconnects with back-off when the socket drops.
// `chat_send` frames are paced under the hub's frame rate, and those a `rate_limited` error
// names as dropped are sent again (same client_id, so nothing is stored twice) after its
// `retry_after_ms`.

import { SendPacer, droppedIds } from './chat';

export type HubState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Frame = { type: string; [k: string]: any };

// Frames with their exact shape, as `ClientFrame` and `ServerFrame` in nats/src/hub.rs define
// them (docs/PROTOCOL.md). Times are RFC 3339.

/** Client: watch a doctor's free slots in `[from, to)` (at most 62 days, at most 5 doctors per socket). */
export interface SlotsWatchFrame {
  type: 'slots_watch';
  doctor_id: string;
  from: string;
  to: string;
}

/** Client: stop watching a doctor's free slots. */
export interface SlotsUnwatchFrame {
  type: 'slots_unwatch';
  doctor_id: string;
}

/** Server: the socket now watches the doctor's slots in this range. */
export interface SlotsWatchingFrame {
  type: 'slots_watching';
  doctor_id: string;
  from: string;
  to: string;
}

/** Server: the answer to `slots_unwatch`. */
export interface SlotsUnwatchedFrame {
  type: 'slots_unwatched';
  doctor_id: string;
}

/** Server: the doctor's free slots in `[from, to)` may have changed; ask for them again. */
export interface SlotsChangedFrame {
  type: 'slots_changed';
  doctor_id: string;
  from: string;
  to: string;
}

/** Server: a frame could not be handled; the connection stays usable. */
export interface ErrorFrame {
  type: 'error';
  code: string;
  message: string;
  /** The `type` of the client frame this answers, when known. */
  request?: string;
  /** Of a refused `chat_send`; of a coalesced refusal, the first one it covers. */
  client_id?: string;
  /** Of a coalesced refusal (`rate_limited`, `payload_too_large`, `bad_frame`): the last one. */
  last_client_id?: string;
  /** Of a coalesced refusal: how many frames it covers. */
  count?: number;
  /** Of a coalesced refusal: when the socket may send again. */
  retry_after_ms?: number;
}

/** Server: the other participant of an appointment is online or not (answer or push). */
export interface PresenceFrame {
  type: 'presence';
  appointment_id: string;
  user_id: string;
  online: boolean;
}

/** Server frames whose handlers get the exact type. */
export interface TypedServerFrames {
  slots_watching: SlotsWatchingFrame;
  slots_unwatched: SlotsUnwatchedFrame;
  slots_changed: SlotsChangedFrame;
  error: ErrorFrame;
  presence: PresenceFrame;
}

/** Client frames sent with their exact type. */
export type TypedClientFrame = SlotsWatchFrame | SlotsUnwatchFrame;

interface SocketLike {
  readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export interface HubOptions {
  url: string;
  /** The current access token, renewed when needed; null ends the session. */
  token: (fresh: boolean) => Promise<string | null>;
  socket?: (url: string) => SocketLike;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (t: unknown) => void;
  /** Back-off delays in ms for reconnect attempts, the last one repeating. */
  backoff?: number[];
}

const OPEN = 1;

/** Close codes after which reconnecting needs a fresh token. */
const AUTH_CLOSES = new Set([4001, 4003, 4004]);

export class Hub {
  private ws: SocketLike | null = null;
  private stateValue: HubState = 'idle';
  private handlers = new Map<string, Set<(f: Frame) => void>>();
  private stateListeners = new Set<(s: HubState) => void>();
  private attempt = 0;
  private timer: unknown = null;
  private stopped = true;
  private authed = false;
  private needFresh = false;
  userId: string | null = null;
  private pacer = new SendPacer();
  /** `chat_send` frames waiting for their turn, and those sent but not acknowledged. */
  private outbox: Frame[] = [];
  private unacked = new Map<string, Frame>();
  private drainTimer: unknown = null;
  private readonly opts: Required<Omit<HubOptions, 'socket'>> & { socket: (url: string) => SocketLike };

  constructor(opts: HubOptions) {
    this.opts = {
      socket: opts.socket ?? ((u) => new WebSocket(u) as unknown as SocketLike),
      setTimer: opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms)),
      clearTimer: opts.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>)),
      backoff: opts.backoff ?? [250, 500, 1000, 2000, 4000],
      url: opts.url,
      token: opts.token,
    };
  }

  get state(): HubState {
    return this.stateValue;
  }

  private setState(s: HubState) {
    if (s === this.stateValue) return;
    this.stateValue = s;
    for (const l of this.stateListeners) l(s);
  }

  onState(fn: (s: HubState) => void): () => void {
    this.stateListeners.add(fn);
    return () => this.stateListeners.delete(fn);
  }

  /** Subscribes to frames of one `type` (`*` for all). */
  on<K extends keyof TypedServerFrames>(type: K, fn: (f: TypedServerFrames[K]) => void): () => void;
  on(type: string, fn: (f: Frame) => void): () => void;
  on(type: string, fn: (f: Frame) => void): () => void {
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.connect();
  }

  stop() {
    this.stopped = true;
    if (this.timer !== null) this.opts.clearTimer(this.timer);
    this.timer = null;
    const ws = this.ws;
    this.ws = null;
    this.authed = false;
    if (ws) {
      ws.onclose = null;
      ws.close(1000, 'bye');
    }
    this.setState('closed');
  }

  /**
   * Sends a frame when the socket is authenticated; returns whether it went out (a `chat_send`
   * may wait for its turn under the rate limit; one already waiting is not queued twice).
   */
  send(frame: TypedClientFrame | Frame): boolean {
    if (!this.ws || !this.authed || this.ws.readyState !== OPEN) return false;
    if (frame.type === 'chat_send') {
      const id = (frame as Frame).client_id;
      if (!this.outbox.some((f) => f.client_id === id)) this.outbox.push(frame as Frame);
      this.drain();
      return true;
    }
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  /** Sends the waiting `chat_send` frames the rate allows, and schedules the rest. */
  private drain() {
    const ws = this.ws;
    if (!ws || !this.authed || ws.readyState !== OPEN) return;
    while (this.outbox.length && this.pacer.take()) {
      const f = this.outbox.shift() as Frame;
      this.unacked.set(f.client_id, f);
      ws.send(JSON.stringify(f));
    }
    if (this.outbox.length && this.drainTimer === null) {
      this.drainTimer = this.opts.setTimer(() => {
        this.drainTimer = null;
        this.drain();
      }, this.pacer.wait());
    }
  }

  /** Settles a `chat_send` on its ack or error; re-sends rate-limited ones later. */
  private settle(f: Frame) {
    if (f.type === 'chat_ack') {
      this.unacked.delete(f.client_id);
      return;
    }
    if (f.type !== 'error' || f.request !== 'chat_send') return;
    if (f.code !== 'rate_limited') {
      this.unacked.delete(f.client_id);
      return;
    }
    const ids = droppedIds([...this.unacked.keys()], f.client_id, f.last_client_id);
    const again = ids.map((id) => this.unacked.get(id)).filter((x): x is Frame => !!x);
    for (const id of ids) this.unacked.delete(id);
    this.opts.setTimer(() => {
      for (const g of again) this.send(g);
    }, Math.max(0, Number(f.retry_after_ms) || 0));
  }

  private emit(f: Frame) {
    for (const key of [f.type, '*']) {
      const set = this.handlers.get(key);
      if (set) for (const h of [...set]) h(f);
    }
  }

  private async connect() {
    if (this.stopped) return;
    this.setState(this.attempt === 0 && this.stateValue !== 'reconnecting' ? 'connecting' : 'reconnecting');
    const token = await this.opts.token(this.needFresh);
    if (this.stopped) return;
    if (!token) {
      this.stop();
      return;
    }
    this.needFresh = false;
    let ws: SocketLike;
    try {
      ws = this.opts.socket(this.opts.url);
    } catch {
      this.retry();
      return;
    }
    this.ws = ws;
    this.authed = false;
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token }));
    ws.onmessage = (ev) => {
      let f: Frame;
      try {
        f = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      if (!f || typeof f.type !== 'string') return;
      this.handle(ws, f);
    };
    ws.onerror = () => {};
    ws.onclose = (ev) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.authed = false;
      // The page sends its unacknowledged messages again once signed in anew.
      this.outbox = [];
      this.unacked.clear();
      if (AUTH_CLOSES.has(ev.code)) this.needFresh = true;
      this.retry();
    };
  }

  private handle(ws: SocketLike, f: Frame) {
    if (f.type === 'welcome') {
      const first = !this.authed;
      this.authed = true;
      this.userId = f.user_id;
      this.attempt = 0;
      this.setState('connected');
      if (first) this.emit({ ...f, type: 'welcome' });
      return;
    }
    if (f.type === 'token_expiring') {
      void this.opts.token(true).then((t) => {
        if (t && this.ws === ws && ws.readyState === OPEN) ws.send(JSON.stringify({ type: 'auth', token: t }));
      });
      return;
    }
    this.settle(f);
    this.emit(f);
  }

  private retry() {
    if (this.stopped) return;
    this.setState('reconnecting');
    const delays = this.opts.backoff;
    const ms = delays[Math.min(this.attempt, delays.length - 1)];
    this.attempt += 1;
    this.timer = this.opts.setTimer(() => {
      this.timer = null;
      void this.connect();
    }, ms);
  }
}

/** The hub URL on the page's own origin. */
export function hubUrl(loc: { protocol: string; host: string } = location): string {
  return `${loc.protocol === 'https:' ? 'wss:' : 'ws:'}//${loc.host}/ws`;
}
