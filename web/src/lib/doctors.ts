// The doctor's own profile (`/api/doctors/me/profile`): specialties and bio, as the directory
// shows them. Versioned by `expected_version` in the body.

import { api } from './api';

export interface DoctorProfile {
  id: string;
  display_name: string;
  specialties: string[];
  bio: string;
  approved: boolean;
  version: number;
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
  myProfile: () => api.get<DoctorProfile>('/api/doctors/me/profile'),
  /** Replaces specialties and bio if the doctor is still at `version` (else `conflict`). */
  saveMyProfile: (specialties: string[], bio: string, version: number) =>
    api.put<DoctorProfile>('/api/doctors/me/profile', { specialties, bio, expected_version: version }),
};
