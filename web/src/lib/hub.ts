// The websocket client of the hub (docs/PROTOCOL.md): authenticates with the access token
// in the first frame, renews it before expiry, and reconnects with back-off when the socket drops.
// `chat_send` frames are paced under the hub's frame rate, and those a `rate_limited` error
// names as dropped are sent again (same client_id, so nothing is stored twice) after its
// `retry_after_ms`.

import { SendPacer, droppedIds } from './chat';
import type { ClientFrame, ServerFrame } from './frames.gen';

export type HubState = 'idle' | 'connecting' | 'connected' | 'reconnecting' | 'closed';

// The frames' types are generated from the JSON Schema of `ClientFrame` and `ServerFrame` in
// nats/src/hub.rs (`npm run gen` writes frames.gen.ts; docs/PROTOCOL.md describes them).
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
  private pacer = new SendPacer();
  /** `chat_send` frames waiting for their turn, and those sent but not acknowledged. */
  private outbox: ChatSendFrame[] = [];
  private unacked = new Map<string, ChatSendFrame>();
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
   * Sends a frame when the socket is authenticated; returns whether it went out (a `chat_send`
   * may wait for its turn under the rate limit; one already waiting is not queued twice).
   */
  send(frame: ClientFrame): boolean {
    if (!this.ws || !this.authed || this.ws.readyState !== OPEN) return false;
    if (frame.type === 'chat_send') {
      const id = frame.client_id;
      if (!this.outbox.some((f) => f.client_id === id)) this.outbox.push(frame);
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
      const f = this.outbox.shift() as ChatSendFrame;
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
  private settle(f: ServerFrame) {
    if (f.type === 'chat_ack') {
      this.unacked.delete(f.client_id);
      return;
    }
    if (f.type !== 'error' || f.request !== 'chat_send') return;
    if (f.code !== 'rate_limited') {
      if (f.client_id) this.unacked.delete(f.client_id);
      return;
    }
    const ids = droppedIds([...this.unacked.keys()], f.client_id ?? undefined, f.last_client_id ?? undefined);
    const again = ids.map((id) => this.unacked.get(id)).filter((x): x is ChatSendFrame => !!x);
    for (const id of ids) this.unacked.delete(id);
    this.opts.setTimer(() => {
      for (const g of again) this.send(g);
    }, Math.max(0, Number(f.retry_after_ms) || 0));
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
    ws.onopen = () => ws.send(JSON.stringify({ type: 'auth', token } satisfies ClientFrame));
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
      // The page sends its unacknowledged messages again once signed in anew.
      this.outbox = [];
      this.unacked.clear();
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
        if (t && this.ws === ws && ws.readyState === OPEN) ws.send(JSON.stringify({ type: 'auth', token: t } satisfies ClientFrame));
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
