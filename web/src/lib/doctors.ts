// Doctors (`/api/doctors/...`): the directory and a doctor's public page, and a doctor's own
// profile (specialties and bio, as the directory shows them), weekly hours and time off. The
// doctor's own data is versioned by `expected_version` in the body.

import { api, type Body, type Schema } from './api';
import type { Language } from './languages';

export type DoctorProfile = Schema<'DoctorProfile'>;
export type AvailabilityView = Schema<'AvailabilityView'>;
export type WeeklyHours = Schema<'WeeklyHours'>;
export type Weekday = Schema<'Weekday'>;
/** An IANA time zone the API accepts (the document lists them). */
export type TimeZone = Schema<'ReplaceAvailability'>['time_zone'];

// A record over the generated enum, so a day added to or dropped from the API fails `tsc`.
const WEEKDAY_ORDER: Record<Weekday, number> = { monday: 0, tuesday: 1, wednesday: 2, thursday: 3, friday: 4, saturday: 5, sunday: 6 };

/** The days of the week, Monday first, as the API spells them. */
export const WEEKDAYS = (Object.keys(WEEKDAY_ORDER) as Weekday[]).sort((a, b) => WEEKDAY_ORDER[a] - WEEKDAY_ORDER[b]);

/**
 * A time zone typed by a person. The API's list of zones is not in the bundle, so it is taken as
 * given: the service refuses an unknown zone with `validation_failed`, which the form words.
 */
export function asTimeZone(typed: string): TimeZone {
  return typed.trim() as TimeZone;
}

export const MAX_SPECIALTIES = 10;
export const MAX_BIO = 2000;

/**
 * A specialty as the API stores it (the same rule as the doctor service): lowercase letters and
 * digits, spaces and `_` become `-`; null when something else is in it or it is too long.
 */
export function specialtySlug(raw: string): string | null {
  let out = '';
  for (const ch of raw.trim().toLowerCase()) {
    if (/[a-z0-9]/.test(ch)) out += ch;
    else if (ch === ' ' || ch === '-' || ch === '_') {
      if (out && !out.endsWith('-')) out += '-';
    } else return null;
  }
  out = out.replace(/-+$/, '');
  return out && out.length <= 50 ? out : null;
}

/** "family-medicine" as people read it: "Family medicine". */
export function specialtyLabel(slug: string): string {
  const words = slug.replace(/-/g, ' ');
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** Specialties in words, or what to say when a doctor lists none. */
export function specialtiesText(slugs: string[]): string {
  return slugs.length ? slugs.map(specialtyLabel).join(', ') : 'No specialty listed yet';
}

export const doctors = {
  /** The directory: approved doctors by name (`q`) or specialty. */
  search: (query: { specialty?: string; q?: string; language?: Language; limit?: number } = {}) =>
    api.call((h) => h.GET('/api/doctors', { params: { query } })),
  /** A doctor's public page. */
  get: (id: string) => api.call((h) => h.GET('/api/doctors/{id}', { params: { path: { id } } })),
  availability: (): Promise<AvailabilityView> => api.call((h) => h.GET('/api/doctors/me/availability')),
  saveAvailability: (body: Schema<'ReplaceAvailability'>) => api.call((h) => h.PUT('/api/doctors/me/availability', { body })),
  addTimeOff: (body: Body<'/api/doctors/me/time-off', 'post'>) => api.call((h) => h.POST('/api/doctors/me/time-off', { body })),
  removeTimeOff: (id: string) => api.call((h) => h.DELETE('/api/doctors/me/time-off/{id}', { params: { path: { id } } })),
  myProfile: (): Promise<DoctorProfile> => api.call((h) => h.GET('/api/doctors/me/profile')),
  /** Replaces specialties, languages and bio if the doctor is still at `version` (else `conflict`). */
  saveMyProfile: (specialties: string[], languages: Language[], bio: string, version: number) =>
    api.call((h) =>
      h.PUT('/api/doctors/me/profile', { body: { specialties, languages, bio, expected_version: version } satisfies Schema<'UpdateProfile'> }),
    ),
};
