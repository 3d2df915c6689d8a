import { describe, expect, it } from 'vitest';
import { specialtiesText, specialtySlug } from './doctors';
import { BLOOD_TYPES, bloodTypeLabel } from './patients';

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
});
