// The patient's own profile and medical record (`/api/patients/me/...`). Both are versioned:
// a read gives an ETag, an update sends it back as `If-Match`.

import { api, type Schema, type Versioned } from './api';

export type Address = Schema<'Address'>;
export type EmergencyContact = Schema<'EmergencyContact'>;
export type ProfileFields = Schema<'ProfileFields'>;
export type PatientProfile = Schema<'PatientProfile'>;
export type BloodType = Schema<'BloodType'>;
export type Allergy = Schema<'Allergy'>;
export type Condition = Schema<'Condition'>;
export type Medication = Schema<'Medication'>;
export type RecordFields = Schema<'RecordFields'>;
export type MedicalRecord = Schema<'MedicalRecord'>;
export type InsurancePolicy = Schema<'InsurancePolicy'>;
export type HolderRelationship = Schema<'HolderRelationship'>;

// A record over the generated enum: a relationship added to or dropped from the API fails `tsc`.
const RELATIONSHIP_LABELS: Record<HolderRelationship, string> = {
  self: 'Self (my own policy)',
  spouse: 'Spouse or partner',
  parent: 'Parent',
  child: 'Child',
  other: 'Other',
};

/** How the patient is related to a policy's holder, in the order a form offers them. */
export const HOLDER_RELATIONSHIPS = Object.keys(RELATIONSHIP_LABELS) as HolderRelationship[];

/** One policy in a line, as staff read it: "Northwind Health, member NWH-0042 7781, group G-17; holder Ines (self); 1 Jan 2026 to 31 Dec 2026". */
export function policyLine(p: InsurancePolicy): string {
  const group = p.group_number ? `, group ${p.group_number}` : '';
  const cover = p.valid_from || p.valid_to ? `; covered ${p.valid_from ? `from ${p.valid_from}` : ''}${p.valid_from && p.valid_to ? ' ' : ''}${p.valid_to ? `until ${p.valid_to}` : ''}` : '';
  return `${p.payer}, member ${p.member_id}${group}; holder ${p.holder} (${p.relationship})${cover}`;
}

/** A relationship as a form shows it. */
export function relationshipLabel(r: HolderRelationship): string {
  return RELATIONSHIP_LABELS[r];
}

/** An address as a form edits it; all blank means none. */
export interface AddressDraft {
  line1: string;
  line2: string;
  city: string;
  postal_code: string;
  country: string;
}

/** An emergency contact as a form edits it; all blank means none. */
export interface ContactDraft {
  name: string;
  phone: string;
  relationship: string;
}

export function addressDraft(a?: Address | null): AddressDraft {
  return { line1: a?.line1 ?? '', line2: a?.line2 ?? '', city: a?.city ?? '', postal_code: a?.postal_code ?? '', country: a?.country ?? '' };
}

export function contactDraft(c?: EmergencyContact | null): ContactDraft {
  return { name: c?.name ?? '', phone: c?.phone ?? '', relationship: c?.relationship ?? '' };
}

const blank = (o: object) => Object.values(o).every((v) => typeof v === 'string' && !v.trim());

/** The address the API takes: none when every field is blank. */
export function fromAddressDraft(d: AddressDraft): Address | undefined {
  if (blank(d)) return undefined;
  return { line1: d.line1.trim(), line2: d.line2.trim() || undefined, city: d.city.trim(), postal_code: d.postal_code.trim(), country: d.country.trim() };
}

/** The emergency contact the API takes: none when every field is blank. */
export function fromContactDraft(d: ContactDraft): EmergencyContact | undefined {
  if (blank(d)) return undefined;
  return { name: d.name.trim(), phone: d.phone.trim(), relationship: d.relationship.trim() || undefined };
}

/** Whether `p` is a phone number the API takes: 6 to 15 digits, with an optional leading +, spaces, dots, dashes and brackets. */
export function isPhone(p: string): boolean {
  const t = p.trim();
  const digits = t.replace(/\D/g, '').length;
  return /^\+?[0-9 ().-]+$/.test(t) && digits >= 6 && digits <= 15 && p.length <= 32;
}

/** A sentence for the first problem with the address and emergency contact (the API's rules), or null. */
export function checkContactDetails(a: AddressDraft, c: ContactDraft): string | null {
  if (!blank(a)) {
    const need: [keyof AddressDraft, string, number][] = [
      ['line1', 'the first address line', 200],
      ['city', 'the city', 100],
      ['postal_code', 'the postal code', 20],
      ['country', 'the country', 100],
    ];
    for (const [k, what, max] of need) {
      if (!a[k].trim()) return `Address: enter ${what}, or clear every address field.`;
      if (a[k].length > max) return `Address: ${what} is at most ${max} characters.`;
    }
    if (a.line2.length > 200) return 'Address: the second address line is at most 200 characters.';
  }
  if (!blank(c)) {
    if (!c.name.trim()) return "Emergency contact: enter the contact's name, or clear every contact field.";
    if (c.name.length > 100) return "Emergency contact: the name is at most 100 characters.";
    if (!isPhone(c.phone)) return 'Emergency contact: a phone number has 6 to 15 digits, and may use +, spaces, dots, dashes and brackets.';
    if (c.relationship.length > 50) return 'Emergency contact: the relationship is at most 50 characters.';
  }
  return null;
}

/** Most policies on a profile: a primary and a secondary. */
export const MAX_POLICIES = 2;

/** A policy as a form edits it: every field a string, its rank given by its place. */
export interface PolicyDraft {
  payer: string;
  member_id: string;
  group_number: string;
  holder: string;
  relationship: HolderRelationship;
  valid_from: string;
  valid_to: string;
}

/** A stored policy as a form edits it. */
export function toDraft(p: InsurancePolicy): PolicyDraft {
  return {
    payer: p.payer,
    member_id: p.member_id,
    group_number: p.group_number ?? '',
    holder: p.holder,
    relationship: p.relationship,
    valid_from: p.valid_from ?? '',
    valid_to: p.valid_to ?? '',
  };
}

/** Drafts as the API takes them: the first is the primary policy, the second the secondary. */
export function fromDrafts(drafts: PolicyDraft[]): InsurancePolicy[] {
  return drafts.map((d, i) => ({
    rank: i === 0 ? 'primary' : 'secondary',
    payer: d.payer.trim(),
    member_id: d.member_id.trim(),
    group_number: d.group_number.trim() || undefined,
    holder: d.holder.trim(),
    relationship: d.relationship,
    valid_from: d.valid_from || undefined,
    valid_to: d.valid_to || undefined,
  }));
}

/** "Primary insurance" or "Secondary insurance", by place. */
export function policyTitle(i: number): string {
  return i === 0 ? 'Primary insurance' : 'Secondary insurance';
}

/** A sentence for the first problem with the drafts (the rules the API enforces), or null. */
export function checkPolicies(drafts: PolicyDraft[]): string | null {
  for (const [i, d] of drafts.entries()) {
    const which = policyTitle(i);
    if (!d.payer.trim()) return `${which}: enter the insurer or plan.`;
    if (d.payer.length > 200) return `${which}: the insurer is at most 200 characters.`;
    const id = d.member_id.trim();
    if (!id) return `${which}: enter the member ID from the card.`;
    if (d.member_id.length > 64 || !/^[A-Za-z0-9 -]+$/.test(id)) return `${which}: a member ID has up to 64 letters, digits, dashes and spaces.`;
    if (d.group_number.length > 64) return `${which}: the group number is at most 64 characters.`;
    if (!d.holder.trim()) return `${which}: enter the policy holder's name.`;
    if (d.holder.length > 100) return `${which}: the holder's name is at most 100 characters.`;
    if (d.valid_from && d.valid_to && d.valid_to < d.valid_from) return `${which}: cover cannot end before it starts.`;
  }
  return null;
}

// A record over the generated enum: a blood type added to or dropped from the API fails `tsc`.
const BLOOD_TYPE_LABELS: Record<BloodType, string> = {
  unknown: 'Unknown',
  'A+': 'A+',
  'A-': 'A-',
  'B+': 'B+',
  'B-': 'B-',
  'AB+': 'AB+',
  'AB-': 'AB-',
  'O+': 'O+',
  'O-': 'O-',
};

/** The blood types the API accepts, as it spells them, "unknown" first. */
export const BLOOD_TYPES = Object.keys(BLOOD_TYPE_LABELS) as BloodType[];

/** A blood type as people write it ("O+", "Unknown"). */
export function bloodTypeLabel(b: BloodType): string {
  return BLOOD_TYPE_LABELS[b];
}

export const patients = {
  profile: (): Promise<Versioned<PatientProfile>> => api.callVersioned((h) => h.GET('/api/patients/me/profile')),
  /** Replaces every field (absent ones are cleared) if the profile is still at `etag`. */
  saveProfile: (fields: ProfileFields, etag: string): Promise<Versioned<PatientProfile>> =>
    api.callVersioned((h) => h.PUT('/api/patients/me/profile', { body: fields, params: { header: { 'If-Match': etag } } })),
  record: (): Promise<Versioned<MedicalRecord>> => api.callVersioned((h) => h.GET('/api/patients/me/record')),
  /** Replaces the whole record if it is still at `etag`. */
  saveRecord: (fields: RecordFields, etag: string): Promise<Versioned<MedicalRecord>> =>
    api.callVersioned((h) => h.PUT('/api/patients/me/record', { body: fields, params: { header: { 'If-Match': etag } } })),
  /**
   * A patient's record, read-only, for their doctor (with an open offer or an appointment with
   * them) or an admin; `not_found` for anyone else. The read is audited.
   */
  recordOf: (patientId: string): Promise<MedicalRecord> => api.call((h) => h.GET('/api/patients/{id}/record', { params: { path: { id: patientId } } })),
  /** A patient's profile (date of birth, phone, insurance) under the same rule as `recordOf`, audited too. */
  profileOf: (patientId: string): Promise<PatientProfile> => api.call((h) => h.GET('/api/patients/{id}/profile', { params: { path: { id: patientId } } })),
};
