// Live free slots (docs/PROTOCOL.md, "Live free slots"): the pickers on screen say which doctor
// and range they show; this keeps the hub's watches of the socket in line with them and tells a
// picker when to ask for its slots again. The push is only a hint, the slot query is the truth:
// after a reconnect every picker asks again, since changes may have passed while it was away.

import type { ClientFrameOf, HubState, ServerFrameOf } from './hub';
import type { Slot } from './types';

/** What this needs of the hub client (`Hub` in hub.ts). */
export interface SlotHub {
  readonly state: HubState;
  send(frame: ClientFrameOf<'slots_watch' | 'slots_unwatch'>): boolean;
  on<K extends 'welcome' | 'slots_changed'>(type: K, fn: (f: ServerFrameOf<K>) => void): () => void;
}

/** Doctors one socket may watch at once (the hub refuses a sixth with `too_many_watches`). */
export const MAX_WATCHED_DOCTORS = 5;
/** The longest range the hub watches. */
export const MAX_WATCH_MS = 62 * 86_400_000;

interface Watcher {
  doctorId: string;
  from: number;
  to: number;
  onChange: () => void;
}

/**
 * The socket's slot watches. Several pickers may show the same doctor (a doctor's offers, each
 * in its own window): the socket watches the union of their ranges, since watching a doctor
 * again replaces the range. Beyond five doctors the first five are watched and the others wait
 * until one leaves. A watch goes again on every new connection (the hub forgets a closed socket's).
 */
export class SlotWatches {
  private watchers = new Set<Watcher>();
  /** What the current connection watches, by doctor: `from|to` as sent. */
  private sent = new Map<string, string>();

  constructor(private readonly hub: SlotHub) {
    hub.on('welcome', () => {
      this.sent.clear();
      this.sync();
      for (const w of [...this.watchers]) w.onChange();
    });
    hub.on('slots_changed', (f) => this.changed(f));
  }

  /**
   * Watches `doctorId`'s free slots in `[from, to)`; `onChange` runs when they may have changed
   * and after a reconnect. Returns the function that stops watching.
   */
  watch(doctorId: string, from: string, to: string, onChange: () => void): () => void {
    const w: Watcher = { doctorId, from: Date.parse(from), to: Date.parse(to), onChange };
    if (!(w.from < w.to)) return () => {};
    this.watchers.add(w);
    this.sync();
    return () => {
      if (this.watchers.delete(w)) this.sync();
    };
  }

  private changed(f: ServerFrameOf<'slots_changed'>) {
    const from = Date.parse(f.from);
    const to = Date.parse(f.to);
    for (const w of [...this.watchers]) {
      // A range the client cannot read concerns every watcher of the doctor.
      const overlaps = !(from < to) || (w.from < to && from < w.to);
      if (w.doctorId === f.doctor_id && overlaps) w.onChange();
    }
  }

  /** Brings the socket's watches in line with the watchers. */
  private sync() {
    const wanted = new Map<string, { from: number; to: number }>();
    for (const w of this.watchers) {
      const r = wanted.get(w.doctorId);
      if (r) wanted.set(w.doctorId, { from: Math.min(r.from, w.from), to: Math.max(r.to, w.to) });
      else if (wanted.size < MAX_WATCHED_DOCTORS) wanted.set(w.doctorId, { from: w.from, to: w.to });
    }
    for (const doctorId of [...this.sent.keys()]) {
      if (wanted.has(doctorId)) continue;
      this.sent.delete(doctorId);
      this.hub.send({ type: 'slots_unwatch', doctor_id: doctorId });
    }
    if (this.hub.state !== 'connected') return;
    for (const [doctorId, r] of wanted) {
      const from = new Date(r.from).toISOString();
      const to = new Date(Math.min(r.to, r.from + MAX_WATCH_MS)).toISOString();
      const key = `${from}|${to}`;
      if (this.sent.get(doctorId) === key) continue;
      if (this.hub.send({ type: 'slots_watch', doctor_id: doctorId, from, to })) this.sent.set(doctorId, key);
    }
  }
}

/** Whether `slots` still holds the time starting at `start`. */
export function hasSlot(slots: Slot[], start: string): boolean {
  const t = Date.parse(start);
  return slots.some((s) => Date.parse(s.start) === t);
}

/** What a picker says when the time it had selected is no longer free. */
export const TAKEN_NOTICE = 'That time was just taken; please pick another.';
