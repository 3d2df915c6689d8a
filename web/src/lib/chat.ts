// Chat state kept by seq: history, backlog and live messages may overlap.

export interface ChatMessage {
  room: string;
  seq: number;
  sender_id: string;
  client_id: string;
  body: string;
  sent_at: number;
}

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
