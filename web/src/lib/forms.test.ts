import { describe, expect, it } from 'vitest';
import { specialtiesText, specialtySlug } from './doctors';
import { BLOOD_TYPES, HOLDER_RELATIONSHIPS, addressDraft, bloodTypeLabel, checkContactDetails, checkPolicies, contactDraft, fromAddressDraft, fromContactDraft, fromDrafts, toDraft, type PolicyDraft } from './patients';

describe('form values the API accepts', () => {
  it('offers exactly the blood types of the API, labelled for people', () => {
    expect([...BLOOD_TYPES].sort()).toEqual(['A+', 'A-', 'AB+', 'AB-', 'B+', 'B-', 'O+', 'O-', 'unknown']);
    expect(bloodTypeLabel('unknown')).toBe('Unknown');
    expect(bloodTypeLabel('O+')).toBe('O+');
  });

  it('normalizes specialties as the doctor service does', () => {
    expect(specialtySlug(' Family  Medicine ')).toBe('family-medicine');
    expect(specialtySlug('sports_medicine')).toBe('sports-medicine');
    expect(specialtySlug('café')).toBeNull();
    expect(specialtySlug('x'.repeat(51))).toBeNull();
    expect(specialtiesText(['family-medicine', 'cardiology'])).toBe('Family medicine, Cardiology');
    expect(specialtiesText([])).toBe('No specialty listed yet');
  });

  it('offers every holder relationship of the API', () => {
    expect([...HOLDER_RELATIONSHIPS].sort()).toEqual(['child', 'other', 'parent', 'self', 'spouse']);
  });

  const draft = (change: Partial<PolicyDraft> = {}): PolicyDraft => ({
    payer: ' Northwind Health ',
    member_id: 'NWH-0042 7781',
    group_number: ' ',
    holder: 'Ines',
    relationship: 'self',
    valid_from: '2026-01-01',
    valid_to: '',
    ...change,
  });

  it('ranks policies by place, trims them and leaves blanks out, as the API stores them', () => {
    const sent = fromDrafts([draft(), draft({ relationship: 'spouse' })]);
    expect(sent.map((p) => p.rank)).toEqual(['primary', 'secondary']);
    expect(sent[0]).toEqual({ rank: 'primary', payer: 'Northwind Health', member_id: 'NWH-0042 7781', holder: 'Ines', relationship: 'self', valid_from: '2026-01-01', group_number: undefined, valid_to: undefined });
    expect(toDraft(sent[0]).group_number).toBe('');
  });

  it('checks policies by the rules of the API, naming the policy', () => {
    expect(checkPolicies([draft(), draft()])).toBeNull();
    expect(checkPolicies([draft({ payer: ' ' })])).toMatch(/^Primary insurance: enter the insurer/);
    expect(checkPolicies([draft(), draft({ member_id: 'CM/1' })])).toMatch(/^Secondary insurance: a member ID/);
    expect(checkPolicies([draft({ member_id: '7'.repeat(65) })])).toMatch(/member ID/);
    expect(checkPolicies([draft({ holder: '' })])).toMatch(/holder/);
    expect(checkPolicies([draft({ valid_from: '2026-06-01', valid_to: '2026-05-31' })])).toMatch(/cannot end before it starts/);
    expect(checkPolicies([draft({ valid_from: '2026-06-01', valid_to: '2026-06-01' })])).toBeNull();
  });

  it('sends no address or contact when every field is blank, and checks a partial one', () => {
    const a = addressDraft(null);
    const c = contactDraft(undefined);
    expect(fromAddressDraft(a)).toBeUndefined();
    expect(fromContactDraft({ ...c, name: '  ' })).toBeUndefined();
    expect(checkContactDetails(a, c)).toBeNull();
    expect(checkContactDetails({ ...a, line1: '1 Main St' }, c)).toMatch(/^Address: enter the city/);
    const full = { line1: ' 1 Main St ', line2: ' ', city: 'Leeds', postal_code: 'LS1 1AA', country: 'UK' };
    expect(checkContactDetails(full, c)).toBeNull();
    expect(fromAddressDraft(full)).toEqual({ line1: '1 Main St', line2: undefined, city: 'Leeds', postal_code: 'LS1 1AA', country: 'UK' });
    expect(checkContactDetails(a, { name: 'Sam', phone: 'call me', relationship: '' })).toMatch(/^Emergency contact: a phone number/);
    expect(checkContactDetails(a, { name: '', phone: '0113 496 0000', relationship: '' })).toMatch(/name/);
    expect(fromContactDraft({ name: 'Sam', phone: ' 0113 496 0000 ', relationship: '' })).toEqual({ name: 'Sam', phone: '0113 496 0000', relationship: undefined });
  });
});
