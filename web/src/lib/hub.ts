// The websocket client of the hub (docs/PROTOCOL.md): authenticates with the access token
// in the first frame, renews it before expiry, and reconnects with back-off when the socket drops.
// Every frame after `auth` is paced under the hub's frame rate (one budget per socket, as the
// hub counts them): other frames first, then `chat_send` and `chat_read` in the order they were
// given, with a queued `chat_read` or `typing` of a room replaced by the newer one. The
// `chat_send` frames a `rate_limited` error shows as dropped go again first, in order (same
// client_id, so nothing is stored twice), after its `retry_after_ms`.

import { SendPacer, droppedBefore } from './chat';
import type { ClientFrame, ServerFrame } from './frames.gen';

export type HubState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

// The frames' types are generated from the JSON Schema of `ClientFrame` and `ServerFrame` in
// nats/src/hub.rs (frames.schema.json; `npm run gen:types` writes frames.gen.ts from it before
// every test and build; docs/PROTOCOL.md describes them).
export type { ChatMessage, ClientFrame, IceCandidate, IceServer, ServerFrame } from './frames.gen';

/** The `type` of a frame the hub sends. */
export type ServerFrameType = ServerFrame['type'];
/** The frame the hub sends with `type` K. */
export type ServerFrameOf<K extends ServerFrameType> = Extract<ServerFrame, { type: K }>;
/** The frame a client sends with `type` K. */
export type ClientFrameOf<K extends ClientFrame['type']> = Extract<ClientFrame, { type: K }>;

type ChatSendFrame = ClientFrameOf<'chat_send'>;
type Handler = (f: ServerFrame) => void;

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
  private handlers = new Map<string, Set<Handler>>();
  private stateListeners = new Set<(s: HubState) => void>();
  private attempt = 0;
  private timer: unknown = null;
  private stopped = true;
  private authed = false;
  private needFresh = false;
  userId: string | null = null;
  private pacer: SendPacer;
  /** Frames waiting for their turn: `urgent` goes first; `bulk` (`chat_send`, `chat_read`) after. */
  private urgent: ClientFrame[] = [];
  private bulk: ClientFrame[] = [];
  /** `chat_send` frames sent on this socket and not yet answered, in the order sent. */
  private unacked = new Map<string, ChatSendFrame>();
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
  on<K extends ServerFrameType>(type: K, fn: (f: ServerFrameOf<K>) => void): () => void;
  on(type: '*', fn: (f: ServerFrame) => void): () => void;
  on(type: ServerFrameType | '*', fn: (f: never) => void): () => void {
    // Frames are dispatched by their `type`, so a handler only ever gets the frame it asked for.
    const handler = fn as Handler;
    let set = this.handlers.get(type);
    if (!set) this.handlers.set(type, (set = new Set()));
    set.add(handler);
    return () => set.delete(handler);
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
  send(frame: ClientFrame): boolean {
    if (!this.ws || !this.authed || this.ws.readyState !== OPEN) return false;
    const f = frame;
    if (f.type === 'chat_send') {
      if (!this.unacked.has(f.client_id) && !this.bulk.some((g) => g.type === 'chat_send' && g.client_id === f.client_id)) this.bulk.push(f);
    } else if (f.type === 'chat_read') {
      const queued = this.bulk.find((g): g is ClientFrameOf<'chat_read'> => g.type === 'chat_read' && g.room === f.room);
      if (queued) queued.seq = Math.max(queued.seq, f.seq);
      else this.bulk.push({ ...f });
    } else if (f.type === 'typing') {
      const queued = this.urgent.find((g): g is ClientFrameOf<'typing'> => g.type === 'typing' && g.room === f.room);
      if (queued) queued.active = f.active;
      else this.urgent.push({ ...f });
    } else {
      this.urgent.push({ ...f });
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
      const f = (this.urgent.length ? this.urgent : this.bulk).shift() as ClientFrame;
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
  private settle(f: ServerFrame) {
    if (f.type === 'chat_ack') {
      this.unacked.delete(f.client_id);
      return;
    }
    if (f.type !== 'error') return;
    const sent = [...this.unacked.keys()];
    if (f.code === 'rate_limited') {
      this.pacer.drain();
      this.holdUntil = this.opts.now() + Math.max(0, Number(f.retry_after_ms) || 0);
      const again = droppedBefore(sent, f.last_client_id ?? f.client_id ?? undefined)
        .map((id) => this.unacked.get(id))
        .filter((x): x is ChatSendFrame => !!x);
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

  private emit(f: ServerFrame) {
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
      let f: unknown;
      try {
        f = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      // The hub sends only `ServerFrame`s (nats/src/hub.rs); one of a type this client does not
      // know yet reaches only `*` listeners.
      if (!f || typeof f !== 'object' || typeof (f as { type?: unknown }).type !== 'string') return;
      this.handle(ws, f as ServerFrame);
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

  private handle(ws: SocketLike, f: ServerFrame) {
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
