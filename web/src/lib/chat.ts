// Chat state kept by seq: history, backlog and live messages may overlap.

import type { ChatMessage } from './frames.gen';

export type { ChatMessage };

/** `a` and `b` merged, one message per seq, oldest first. */
export function mergeMessages(a: ChatMessage[], b: ChatMessage[]): ChatMessage[] {
  const bySeq = new Map<number, ChatMessage>();
  for (const m of a) bySeq.set(m.seq, m);
  for (const m of b) bySeq.set(m.seq, m);
  return [...bySeq.values()].sort((x, y) => x.seq - y.seq);
}

/** The highest seq held, 0 when none: where `resume` starts. */
export function lastSeq(ms: ChatMessage[]): number {
  return ms.length ? ms[ms.length - 1].seq : 0;
}

/** Messages sent but not yet acknowledged, by client id. */
export interface Pending {
  client_id: string;
  body: string;
}

/** Drops the pending sends that a stored message now stands for. */
export function settlePending(pending: Pending[], messages: ChatMessage[], me: string): Pending[] {
  const done = new Set(messages.filter((m) => m.sender_id === me).map((m) => m.client_id));
  return pending.filter((p) => !done.has(p.client_id));
}

/**
 * Paces the frames of one socket under the hub's frame rate (docs/PROTOCOL.md: 20 frames per
 * second, bursts of 40, per socket, every frame counted): at most `perSec` per second after a
 * burst of `burst`, three quarters of the hub's, so that frames bunched up on the way (or a
 * token renewal in between) still stay under it and re-sending many unacknowledged messages
 * after a reconnect is never refused for the rate.
 */
export class SendPacer {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSec = 15,
    private readonly burst = 30,
    private readonly now: () => number = () => Date.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  private refill() {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.perSec);
    this.last = t;
  }

  /** Takes one send if one is allowed now. */
  take(): boolean {
    this.refill();
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Spends what is left: the hub said its budget is used up. */
  drain() {
    this.refill();
    this.tokens = Math.min(this.tokens, 0);
  }

  /** Milliseconds until the next send is allowed. */
  wait(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.perSec) * 1000);
  }
}

/**
 * The client ids a `rate_limited` error shows as dropped: every one still unanswered (`sent`,
 * oldest first) up to and including `last`, the last dropped one it names. The hub answers in
 * order, so an earlier one that got through was answered before the error came. None when
 * `last` is not among them (it was answered meanwhile, or the error named no `chat_send`).
 */
export function droppedBefore(sent: string[], last?: string): string[] {
  if (!last) return [];
  const to = sent.indexOf(last);
  return to < 0 ? [] : sent.slice(0, to + 1);
}
