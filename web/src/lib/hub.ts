// The websocket client of the hub (docs/PROTOCOL.md): authenticates with the access token
// in the first frame, renews it before expiry, and reconnects with back-off when the socket drops.
// Every frame after `auth` is paced under the hub's frame rate (one budget per socket, as the
// hub counts them): other frames first, then `chat_send` and `chat_read` in the order they were
// given, with a queued `chat_read` or `typing` of a room replaced by the newer one. The
// `chat_send` frames a `rate_limited` error shows as dropped go again first, in order (same
// client_id, so nothing is stored twice), after its `retry_after_ms`.

import { SendPacer, droppedBefore } from './chat';

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
  /** The clock of the frame pacing, in ms. */
  now?: () => number;
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
  private pacer: SendPacer;
  /** Frames waiting for their turn: `urgent` goes first; `bulk` (`chat_send`, `chat_read`) after. */
  private urgent: Frame[] = [];
  private bulk: Frame[] = [];
  /** `chat_send` frames sent on this socket and not yet answered, in the order sent. */
  private unacked = new Map<string, Frame>();
  /** After a `rate_limited` error, nothing goes out before this time (ms). */
  private holdUntil = 0;
  private drainTimer: unknown = null;
  private readonly opts: Required<Omit<HubOptions, 'socket'>> & { socket: (url: string) => SocketLike };

  constructor(opts: HubOptions) {
    this.opts = {
      socket: opts.socket ?? ((u) => new WebSocket(u) as unknown as SocketLike),
      setTimer: opts.setTimer ?? ((fn, ms) => setTimeout(fn, ms)),
      clearTimer: opts.clearTimer ?? ((t) => clearTimeout(t as ReturnType<typeof setTimeout>)),
      backoff: opts.backoff ?? [250, 500, 1000, 2000, 4000],
      now: opts.now ?? (() => Date.now()),
      url: opts.url,
      token: opts.token,
    };
    this.pacer = new SendPacer(undefined, undefined, this.opts.now);
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
   * Sends a frame when the socket is authenticated; returns whether it was taken (it may wait
   * for its turn under the rate limit; a `chat_send` already waiting or unanswered is not taken
   * twice).
   */
  send(frame: TypedClientFrame | Frame): boolean {
    if (!this.ws || !this.authed || this.ws.readyState !== OPEN) return false;
    const f = frame as Frame;
    if (f.type === 'chat_send') {
      if (!this.unacked.has(f.client_id) && !this.bulk.some((g) => g.type === 'chat_send' && g.client_id === f.client_id)) this.bulk.push(f);
    } else if (f.type === 'chat_read') {
      const queued = this.bulk.find((g) => g.type === 'chat_read' && g.room === f.room);
      if (queued) queued.seq = Math.max(queued.seq, f.seq);
      else this.bulk.push({ ...f });
    } else {
      const queued = f.type === 'typing' ? this.urgent.find((g) => g.type === 'typing' && g.room === f.room) : undefined;
      if (queued) queued.active = f.active;
      else this.urgent.push({ ...f });
    }
    this.drain();
    return true;
  }

  /** Sends the waiting frames the rate allows, and schedules the rest. */
  private drain() {
    const ws = this.ws;
    if (!ws || !this.authed || ws.readyState !== OPEN) return;
    const held = this.holdUntil - this.opts.now();
    while (held <= 0 && (this.urgent.length || this.bulk.length) && this.pacer.take()) {
      const f = (this.urgent.length ? this.urgent : this.bulk).shift() as Frame;
      if (f.type === 'chat_send') this.unacked.set(f.client_id, f);
      ws.send(JSON.stringify(f));
    }
    if ((this.urgent.length || this.bulk.length) && this.drainTimer === null) {
      this.drainTimer = this.opts.setTimer(() => {
        this.drainTimer = null;
        this.drain();
      }, Math.max(held, this.pacer.wait(), 1));
    }
  }

  /**
   * Settles `chat_send` frames on their ack or error. The hub answers a socket's frames in the
   * order it read them, so when a `rate_limited` error arrives every `chat_send` still
   * unanswered up to the last one it names was dropped: those go again, first and in order,
   * once `retry_after_ms` has passed.
   */
  private settle(f: Frame) {
    if (f.type === 'chat_ack') {
      this.unacked.delete(f.client_id);
      return;
    }
    if (f.type !== 'error') return;
    const sent = [...this.unacked.keys()];
    if (f.code === 'rate_limited') {
      this.pacer.drain();
      this.holdUntil = this.opts.now() + Math.max(0, Number(f.retry_after_ms) || 0);
      const again = droppedBefore(sent, f.last_client_id ?? f.client_id).map((id) => this.unacked.get(id) as Frame);
      for (const g of again) this.unacked.delete(g.client_id);
      this.bulk.unshift(...again);
      this.drain();
      return;
    }
    if (f.request !== 'chat_send' && f.count === undefined) return;
    // Refused for its size or shape, or failed: sending it again unchanged would not help.
    const first = f.client_id ? sent.indexOf(f.client_id) : -1;
    const last = f.last_client_id ? sent.indexOf(f.last_client_id) : first;
    if (first >= 0) for (const id of sent.slice(first, Math.max(first, last) + 1)) this.unacked.delete(id);
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
      // The page sends its unacknowledged messages again once signed in anew, on a socket
      // whose rate budget starts afresh.
      this.urgent = [];
      this.bulk = [];
      this.unacked.clear();
      this.holdUntil = 0;
      this.pacer = new SendPacer(undefined, undefined, this.opts.now);
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
