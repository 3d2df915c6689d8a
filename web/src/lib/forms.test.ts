import { describe, expect, it } from 'vitest';
import { specialtiesText, specialtySlug } from './doctors';
import { BLOOD_TYPES, HOLDER_RELATIONSHIPS, bloodTypeLabel, checkPolicies, fromDrafts, toDraft, type PolicyDraft } from './patients';

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
});
