import { describe, expect, it } from 'vitest';
import type { ClientFrame, HubState, ServerFrame } from './hub';
import { hasSlot, SlotWatches, type SlotHub } from './slots';

/** A hub standing in for `Hub`: records what is sent, and delivers frames as the server would. */
class FakeHub implements SlotHub {
  state: HubState = 'connected';
  sent: ClientFrame[] = [];
  private handlers = new Map<string, Set<(f: never) => void>>();
  send(frame: ClientFrame): boolean {
    if (this.state !== 'connected') return false;
    this.sent.push(frame);
    return true;
  }
  on(type: string, fn: (f: never) => void): () => void {
    const set = this.handlers.get(type) ?? new Set();
    this.handlers.set(type, set);
    set.add(fn);
    return () => set.delete(fn);
  }
  deliver(f: ServerFrame) {
    for (const h of this.handlers.get(f.type) ?? []) (h as (f: ServerFrame) => void)(f);
  }
}

/** The hub's answer to `auth`. */
const WELCOME: ServerFrame = { type: 'welcome', user_id: 'u1', role: 'patient', expires_at: 0, node: 'n1' };

const D1 = '2026-12-07T00:00:00.000Z';
const D8 = '2026-12-14T00:00:00.000Z';
const D10 = '2026-12-16T00:00:00.000Z';

function setup() {
  const hub = new FakeHub();
  return { hub, watches: new SlotWatches(hub) };
}

describe('live slot watches', () => {
  it('watches on mount and unwatches when the last picker of a doctor goes', () => {
    const { hub, watches } = setup();
    const stop = watches.watch('doc-1', D1, D8, () => {});
    expect(hub.sent).toEqual([{ type: 'slots_watch', doctor_id: 'doc-1', from: D1, to: D8 }]);
    stop();
    expect(hub.sent[1]).toEqual({ type: 'slots_unwatch', doctor_id: 'doc-1' });
    stop();
    expect(hub.sent).toHaveLength(2);
  });

  it('watches the union of the ranges of pickers of the same doctor, and narrows it again', () => {
    const { hub, watches } = setup();
    const a = watches.watch('doc-1', D1, D8, () => {});
    const b = watches.watch('doc-1', D8, D10, () => {});
    expect(hub.sent.at(-1)).toEqual({ type: 'slots_watch', doctor_id: 'doc-1', from: D1, to: D10 });
    a();
    expect(hub.sent.at(-1)).toEqual({ type: 'slots_watch', doctor_id: 'doc-1', from: D8, to: D10 });
    b();
    expect(hub.sent.at(-1)).toEqual({ type: 'slots_unwatch', doctor_id: 'doc-1' });
  });

  it('tells only the pickers of that doctor whose range the change touches', () => {
    const { hub, watches } = setup();
    const calls: string[] = [];
    watches.watch('doc-1', D1, D8, () => calls.push('first week'));
    watches.watch('doc-1', D8, D10, () => calls.push('later'));
    watches.watch('doc-2', D1, D10, () => calls.push('other doctor'));
    hub.deliver({ type: 'slots_changed', doctor_id: 'doc-1', from: '2026-12-08T09:00:00Z', to: '2026-12-08T09:30:00Z' });
    expect(calls).toEqual(['first week']);
    hub.deliver({ type: 'slots_changed', doctor_id: 'doc-1', from: D1, to: D10 });
    expect(calls).toEqual(['first week', 'first week', 'later']);
  });

  it('watches again on a new connection and has every picker ask again', () => {
    const { hub, watches } = setup();
    let asked = 0;
    watches.watch('doc-1', D1, D8, () => asked++);
    hub.state = 'reconnecting';
    hub.state = 'connected';
    hub.sent = [];
    hub.deliver(WELCOME);
    expect(hub.sent).toEqual([{ type: 'slots_watch', doctor_id: 'doc-1', from: D1, to: D8 }]);
    expect(asked).toBe(1);
  });

  it('a picker mounted while disconnected is watched once the socket is welcomed', () => {
    const { hub, watches } = setup();
    hub.state = 'connecting';
    watches.watch('doc-1', D1, D8, () => {});
    expect(hub.sent).toEqual([]);
    hub.state = 'connected';
    hub.deliver(WELCOME);
    expect(hub.sent).toEqual([{ type: 'slots_watch', doctor_id: 'doc-1', from: D1, to: D8 }]);
  });

  it('watches at most five doctors; a sixth waits until one leaves', () => {
    const { hub, watches } = setup();
    const stops = [1, 2, 3, 4, 5].map((i) => watches.watch(`doc-${i}`, D1, D8, () => {}));
    watches.watch('doc-6', D1, D8, () => {});
    expect(hub.sent.filter((f) => f.type === 'slots_watch').map((f) => f.doctor_id)).toEqual(['doc-1', 'doc-2', 'doc-3', 'doc-4', 'doc-5']);
    stops[0]();
    expect(hub.sent.slice(-2)).toEqual([
      { type: 'slots_unwatch', doctor_id: 'doc-1' },
      { type: 'slots_watch', doctor_id: 'doc-6', from: D1, to: D8 },
    ]);
  });

  it('never asks the hub for more than 62 days', () => {
    const { hub, watches } = setup();
    watches.watch('doc-1', D1, '2027-06-01T00:00:00.000Z', () => {});
    expect(hub.sent[0]).toEqual({ type: 'slots_watch', doctor_id: 'doc-1', from: D1, to: '2027-02-07T00:00:00.000Z' });
  });

  it('finds a chosen time in fresh slots whatever the spelling of the instant', () => {
    const slots = [{ start: '2026-12-08T09:00:00Z', end: '2026-12-08T09:30:00Z' }];
    expect(hasSlot(slots, '2026-12-08T09:00:00.000Z')).toBe(true);
    expect(hasSlot(slots, '2026-12-08T09:30:00Z')).toBe(false);
  });
});
