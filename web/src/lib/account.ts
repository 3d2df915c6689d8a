// The signed-in person's own account (`/api/me`): what they may change of it, today the time
// zone that their mails and reminders are written in. (Screens show times in the browser's zone
// whatever the account says; the account's zone is for what leaves the browser.)

import { api, type Schema, type User } from './api';

/** An IANA time zone the API accepts (the document lists them). */
export type AccountTimeZone = NonNullable<Schema<'UpdateMeBody'>['time_zone']>;

/**
 * A zone name from the browser or a person. The API's list of zones is not in the bundle, so it is
 * taken as given: the service refuses an unknown zone with `validation_failed`, which the form words.
 */
export function asAccountTimeZone(name: string): AccountTimeZone {
  return name.trim() as AccountTimeZone;
}

/** The zones this browser knows (ICU's canonical names), or none where it cannot list them. */
export function browserZones(): string[] {
  const intl = Intl as { supportedValuesOf?: (key: 'timeZone') => string[] };
  try {
    return intl.supportedValuesOf?.('timeZone') ?? [];
  } catch {
    return [];
  }
}

/**
 * The zones to choose from: the browser's, with UTC and the zones given (the stored one, the
 * browser's own) added when the browser does not list them, sorted, each once.
 */
export function zoneChoices(include: string[], known: string[] = browserZones()): string[] {
  return [...new Set([...known, 'UTC', ...include.filter((z) => z.trim() !== '')])].sort((a, b) => a.localeCompare(b));
}

export const account = {
  /** The caller's account as stored now. */
  me(): Promise<User> {
    return api.call((h) => h.GET('/api/me'));
  },

  /** Sets the zone mails and reminders are written in; the answer is the account as changed. */
  setTimeZone(zone: string): Promise<User> {
    return api.call((h) => h.PATCH('/api/me', { body: { time_zone: asAccountTimeZone(zone) } }));
  },
};
