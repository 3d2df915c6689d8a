// What a person reads when something goes wrong. The API's `message` is written for developers
// (it may name a header or quote a deserializer), so it is never shown: every documented error
// `code` (the ErrorCode enum in nats/src/error.rs) maps to a sentence here, in one table.

import { ApiError } from './api';

export const SENTENCES: Record<string, string> = {
  bad_request: 'The app sent something the server could not read. Reload the page and try again.',
  validation_failed: 'Some of what you entered is not accepted. Check the fields and try again.',
  unauthorized: 'Your session has ended. Please sign in again.',
  token_expired: 'Your session has ended. Please sign in again.',
  invalid_credentials: 'That email and password do not match an account.',
  account_disabled: 'This account is disabled. Contact the clinic if you think this is a mistake.',
  forbidden: 'Your account is not allowed to do this.',
  not_found: 'We could not find that. It may have been removed.',
  conflict: 'Someone changed this at the same time. Reload to see the latest and try again.',
  slot_taken: 'That time has just been taken. Please choose another time.',
  patient_busy: 'You already have an appointment at that time. Please choose another time.',
  appointments_affected: 'This would cancel confirmed appointments. Repeat it to cancel them (each patient is told), or choose otherwise.',
  off_slot_grid: 'That is not one of the doctor’s free times. Please choose a time from the list.',
  idempotency_key_reused: 'This request was already sent in a different form. Reload the page and try again.',
  precondition_required: 'The app could not tell which version you edited. Reload the page and try again.',
  precondition_failed: 'Changed elsewhere: reload to see the latest.',
  rate_limited: 'Too many attempts. Please wait a moment and try again.',
  payload_too_large: 'That is too long to send. Please shorten it and try again.',
  unsupported_media_type: 'The app sent something the server could not read. Reload the page and try again.',
  method_not_allowed: 'The app sent something the server could not read. Reload the page and try again.',
  service_unavailable: 'Part of the clinic system is not available right now. Please try again in a minute.',
  timeout: 'The clinic system took too long to answer. Please try again in a minute.',
  internal: 'Something went wrong on our side. Please try again.',
  network: 'The server cannot be reached. Check your connection and try again.',
};

/** The sentence for an unknown code: generic, with the reference support needs. */
export function genericSentence(requestId?: string): string {
  return requestId
    ? `Something went wrong. Please try again; if it keeps happening, give support this reference: ${requestId}.`
    : 'Something went wrong. Please try again.';
}

/**
 * The sentence a person reads for `e`. `overrides` give a screen its own wording for a code
 * (e.g. a sign-in form's `unauthorized`). Errors the client raises itself carry a sentence already.
 */
export function errorSentence(e: unknown, overrides: Record<string, string> = {}): string {
  if (e instanceof ApiError) {
    const s = overrides[e.code] ?? SENTENCES[e.code];
    if (s) {
      // A server-side failure keeps its reference so support can find it in the logs.
      return e.status >= 500 && e.requestId ? `${s} Reference: ${e.requestId}.` : s;
    }
    return genericSentence(e.requestId);
  }
  if (e instanceof ClientError) return e.message;
  return genericSentence();
}

/** An error the client makes up itself, whose message is already a sentence for people. */
export class ClientError extends Error {}

/** Codes only the live connection (`/ws` error frames) uses; the rest are shared with HTTP. */
const FRAME_SENTENCES: Record<string, string> = {
  bad_frame: 'The app sent something the server could not read. Reload the page and try again.',
  bad_sdp: 'The video connection could not be set up. Hang up and try again.',
  too_many_watches: 'Too many pages are open at once. Close some and reload this one.',
};

/** The sentence for an error frame of the live connection (never its `message`). */
export function frameErrorSentence(code: string, overrides: Record<string, string> = {}): string {
  return overrides[code] ?? FRAME_SENTENCES[code] ?? SENTENCES[code] ?? genericSentence();
}
