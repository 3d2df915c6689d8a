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
 * Paces `chat_send` frames under the hub's frame rate (docs/PROTOCOL.md: 20 frames per second,
 * bursts of 40, per socket): at most `perSec` per second after a burst of `burst`, so re-sending
 * many unacknowledged messages after a reconnect is never refused for the rate.
 */
export class SendPacer {
  private tokens: number;
  private last: number;

  constructor(
    private readonly perSec = 10,
    private readonly burst = 20,
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

  /** Milliseconds until the next send is allowed. */
  wait(): number {
    this.refill();
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) / this.perSec) * 1000);
  }
}

/**
 * The client ids a coalesced `rate_limited` error covers: from `first` to `last` in the order
 * they were sent (`sent`, oldest first); every one of them may have been dropped.
 */
export function droppedIds(sent: string[], first?: string, last?: string): string[] {
  if (!first) return [];
  const from = sent.indexOf(first);
  if (from < 0) return [first];
  const to = last ? sent.indexOf(last, from) : from;
  return sent.slice(from, (to < 0 ? from : to) + 1);
}
