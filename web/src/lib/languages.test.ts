import { describe, expect, it } from 'vitest';
import openapi from '../../openapi.json?raw';
import { LANGUAGES, MAX_LANGUAGES, languageCode, languagesText, parseLanguages } from './languages';

/** The enum of the language-code schema in the OpenAPI document. */
function documentedCodes(): string[] {
  let found: string[] | null = null;
  const walk = (o: unknown) => {
    if (found || !o || typeof o !== 'object') return;
    const rec = o as Record<string, unknown>;
    if (typeof rec.description === 'string' && rec.description.startsWith('An ISO 639-1') && Array.isArray(rec.enum)) {
      found = rec.enum as string[];
      return;
    }
    Object.values(rec).forEach(walk);
  };
  walk(JSON.parse(openapi));
  if (!found) throw new Error('no language-code schema in openapi.json');
  return found;
}

describe('languages', () => {
  it('are exactly the codes the API documents', () => {
    expect([...LANGUAGES]).toEqual(documentedCodes());
  });

  it('are read from codes and English names, once each, in order', () => {
    expect(parseLanguages('German, en, de,  ')).toEqual({ codes: ['de', 'en'] });
    expect(languageCode('FRENCH')).toBe('fr');
    expect(languageCode('xx')).toBeNull();
    expect(languageCode('')).toBeNull();
  });

  it('say what is wrong in a sentence', () => {
    const bad = parseLanguages('German, Klingon');
    expect('error' in bad && bad.error).toMatch(/“Klingon” is not a language/);
    const many = parseLanguages(LANGUAGES.slice(0, MAX_LANGUAGES + 1).join(','));
    expect('error' in many && many.error).toMatch(/at most 10/);
  });

  it('are named for people', () => {
    expect(languagesText(['de', 'en'])).toBe('German, English');
    expect(languagesText([])).toBe('No language listed yet');
  });
});
