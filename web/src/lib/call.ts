// One video call of an appointment over the hub's signaling frames. The doctor's side always
// makes the offers, so the two sides never offer at once: after a call is accepted, and again
// (an ICE restart) whenever either side rejoins after its socket dropped.

import { frameErrorSentence } from './errors';
import type { Hub, IceCandidate, IceServer, ServerFrame, ServerFrameOf } from './hub';

/** The frames of the hub that concern one appointment. */
type AppointmentFrameType = Extract<ServerFrame, { appointment_id: string }>['type'];

export type CallPhase =
  | 'idle'
  | 'calling'
  | 'ringing'
  | 'connecting'
  | 'connected'
  | 'reconnecting'
  | 'ended'
  | 'failed';

export interface CallView {
  phase: CallPhase;
  message: string;
  remote: MediaStream | null;
}

export class CallSession {
  private pc: RTCPeerConnection | null = null;
  private inCall = false;
  private iceServers: RTCIceServer[] = [];
  private queuedIce: RTCIceCandidateInit[] = [];
  private offerAgain = false;
  private remote: MediaStream | null = null;
  private phase: CallPhase = 'idle';
  private message = '';
  private offs: (() => void)[] = [];
  private hubDown = false;

  constructor(
    private readonly hub: Hub,
    private readonly appointmentId: string,
    private readonly offerer: boolean,
    private readonly local: MediaStream | null,
    private readonly onChange: (v: CallView) => void,
  ) {
    // Every frame of these types names its appointment (TypeScript cannot see that through K).
    const ours = (f: ServerFrameOf<AppointmentFrameType>) => f.appointment_id === appointmentId;
    const on = <K extends AppointmentFrameType>(t: K, fn: (f: ServerFrameOf<K>) => void) =>
      this.offs.push(hub.on(t, (f) => ours(f as ServerFrameOf<AppointmentFrameType>) && fn(f)));
    on('call_joined', (f) => this.joined(f));
    on('call_ring', (f) => this.ring(f));
    on('call_accept', () => this.accepted());
    on('call_decline', () => this.end('The call was declined.'));
    on('call_cancel', () => this.end('The caller hung up before you answered.'));
    on('call_hangup', () => this.end('The other side hung up.'));
    on('rtc_offer', (f) => void this.offer(f.sdp));
    on('rtc_answer', (f) => void this.answer(f.sdp));
    on('rtc_ice', (f) => void this.ice(f.candidate));
    this.offs.push(
      hub.on('error', (f) => {
        if (f.request?.startsWith('call_') && !this.inCall)
          this.set('failed', frameErrorSentence(f.code, { forbidden: 'This call cannot start: the appointment is not confirmed, or not yours.' }));
      }),
    );
    this.offs.push(
      hub.onState((s) => {
        if (s === 'connected') {
          if (this.hubDown && this.inCall) this.hub.send({ type: 'call_invite', appointment_id: this.appointmentId });
          this.hubDown = false;
        } else if (s === 'reconnecting') {
          this.hubDown = true;
        }
        this.update();
      }),
    );
  }

  private set(phase: CallPhase, message = '') {
    this.phase = phase;
    this.message = message;
    this.update();
  }

  private update() {
    let phase = this.phase;
    if (this.inCall && this.hub.state !== 'connected') phase = 'reconnecting';
    else if (this.inCall && this.pc) {
      const s = this.pc.connectionState;
      phase = s === 'connected' ? 'connected' : s === 'failed' ? 'reconnecting' : 'connecting';
    }
    this.onChange({ phase, message: this.message, remote: this.remote });
  }

  /** Starts a call, or answers the one ringing. */
  start(answering: boolean) {
    if (answering) {
      this.hub.send({ type: 'call_accept', appointment_id: this.appointmentId });
      this.accepted();
    } else {
      this.hub.send({ type: 'call_invite', appointment_id: this.appointmentId });
      this.set('calling');
    }
  }

  hangup() {
    if (this.inCall || this.phase === 'calling') {
      this.hub.send({ type: this.inCall ? 'call_hangup' : 'call_cancel', appointment_id: this.appointmentId });
    }
    this.end('You left the call.');
  }

  decline() {
    this.hub.send({ type: 'call_decline', appointment_id: this.appointmentId });
    this.end('You declined the call.');
  }

  dispose() {
    for (const off of this.offs) off();
    this.offs = [];
    this.closePc();
  }

  private end(message: string) {
    this.inCall = false;
    this.closePc();
    this.remote = null;
    this.set('ended', message);
  }

  private closePc() {
    if (this.pc) {
      this.pc.onicecandidate = null;
      this.pc.ontrack = null;
      this.pc.onconnectionstatechange = null;
      this.pc.close();
    }
    this.pc = null;
  }

  private joined(f: ServerFrameOf<'call_joined'>) {
    this.iceServers = f.ice_servers.map(rtcIceServer);
    if (this.inCall) {
      // Our socket came back: renegotiate with a fresh ICE round.
      if (this.offerer) void this.makeOffer(true);
    } else if (this.phase !== 'calling') {
      this.set('calling');
    }
  }

  private ring(f: ServerFrameOf<'call_ring'>) {
    this.iceServers = f.ice_servers.map(rtcIceServer);
    if (this.inCall) {
      // The other side rejoined after a drop: take them back and renegotiate.
      this.hub.send({ type: 'call_accept', appointment_id: this.appointmentId });
      if (this.offerer) void this.makeOffer(true);
    } else {
      this.set('ringing', 'Incoming call');
    }
  }

  private accepted() {
    const first = !this.inCall;
    this.inCall = true;
    this.ensurePc();
    this.set('connecting');
    if (this.offerer) void this.makeOffer(!first);
  }

  private ensurePc(): RTCPeerConnection {
    if (this.pc) return this.pc;
    const pc = new RTCPeerConnection({ iceServers: this.iceServers });
    this.pc = pc;
    if (this.local) for (const t of this.local.getTracks()) pc.addTrack(t, this.local);
    else {
      pc.addTransceiver('audio', { direction: 'recvonly' });
      pc.addTransceiver('video', { direction: 'recvonly' });
    }
    pc.onicecandidate = (ev) => {
      if (ev.candidate) this.hub.send({ type: 'rtc_ice', appointment_id: this.appointmentId, candidate: iceCandidate(ev.candidate) });
    };
    pc.ontrack = (ev) => {
      this.remote = ev.streams[0] ?? new MediaStream([ev.track]);
      this.update();
    };
    pc.onconnectionstatechange = () => {
      if (pc.connectionState === 'failed' && this.offerer) void this.makeOffer(true);
      this.update();
    };
    return pc;
  }

  private async makeOffer(restart: boolean) {
    const pc = this.ensurePc();
    if (pc.signalingState !== 'stable') {
      this.offerAgain = true;
      return;
    }
    try {
      const offer = await pc.createOffer({ iceRestart: restart });
      await pc.setLocalDescription(offer);
      const local = pc.localDescription?.sdp ?? offer.sdp;
      if (local) this.hub.send({ type: 'rtc_offer', appointment_id: this.appointmentId, sdp: local });
    } catch (e) {
      this.message = 'Could not start the video connection. Hang up and try again.';
      this.update();
    }
  }

  private async offer(sdp: string) {
    if (!this.inCall) {
      this.inCall = true;
    }
    const pc = this.ensurePc();
    try {
      if (pc.signalingState !== 'stable') await pc.setLocalDescription({ type: 'rollback' });
      await pc.setRemoteDescription({ type: 'offer', sdp });
      await this.flushIce();
      const answer = await pc.createAnswer();
      await pc.setLocalDescription(answer);
      const local = pc.localDescription?.sdp ?? answer.sdp;
      if (local) this.hub.send({ type: 'rtc_answer', appointment_id: this.appointmentId, sdp: local });
    } catch (e) {
      this.message = 'Could not answer the video connection. Hang up and try again.';
    }
    this.update();
  }

  private async answer(sdp: string) {
    const pc = this.pc;
    if (!pc || pc.signalingState !== 'have-local-offer') return;
    try {
      await pc.setRemoteDescription({ type: 'answer', sdp });
      await this.flushIce();
    } catch (e) {
      this.message = 'Could not complete the video connection. Hang up and try again.';
    }
    if (this.offerAgain) {
      this.offerAgain = false;
      void this.makeOffer(true);
    }
    this.update();
  }

  private async ice(c: RTCIceCandidateInit) {
    if (!this.pc || !this.pc.remoteDescription) {
      this.queuedIce.push(c);
      return;
    }
    try {
      await this.pc.addIceCandidate(c);
    } catch {
      // A candidate of an older ICE generation: harmless.
    }
  }

  private async flushIce() {
    const q = this.queuedIce;
    this.queuedIce = [];
    for (const c of q) await this.ice(c);
  }
}

/** A hub `IceServer` as the browser takes it (no nulls). */
function rtcIceServer(s: IceServer): RTCIceServer {
  return { urls: s.urls, username: s.username ?? undefined, credential: s.credential ?? undefined };
}

/** A browser ICE candidate as the `rtc_ice` frame carries it (what `toJSON()` returns). */
function iceCandidate(c: RTCIceCandidate): IceCandidate {
  const init = c.toJSON();
  return { ...init, candidate: init.candidate ?? c.candidate };
}

/** Words for a getUserMedia failure. */
export function mediaErrorMessage(e: unknown): string {
  const name = (e as { name?: string })?.name ?? '';
  if (name === 'NotAllowedError' || name === 'SecurityError')
    return 'Camera and microphone access was denied. Allow it in your browser settings to be seen and heard; you can still join and see the other side.';
  if (name === 'NotFoundError' || name === 'OverconstrainedError')
    return 'No camera or microphone was found. Connect one and reload; you can still join and see the other side.';
  if (name === 'NotReadableError') return 'The camera or microphone is in use by another application.';
  return 'The camera could not be started.';
}
