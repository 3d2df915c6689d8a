// Languages a doctor consults in: ISO 639-1 codes, as the API accepts them (the OpenAPI document
// lists the same codes; languages.test.ts checks the two agree), named in the viewer's language.

import type { Schema } from './api';

/** A language code the API accepts. */
export type Language = NonNullable<Schema<'UpdateProfile'>['languages']>[number];

export const MAX_LANGUAGES = 10;

/** Every ISO 639-1 code, sorted. */
export const LANGUAGES: readonly Language[] = [
  'aa', 'ab', 'ae', 'af', 'ak', 'am', 'an', 'ar', 'as', 'av', 'ay', 'az', 'ba', 'be', 'bg', 'bi',
  'bm', 'bn', 'bo', 'br', 'bs', 'ca', 'ce', 'ch', 'co', 'cr', 'cs', 'cu', 'cv', 'cy', 'da', 'de',
  'dv', 'dz', 'ee', 'el', 'en', 'eo', 'es', 'et', 'eu', 'fa', 'ff', 'fi', 'fj', 'fo', 'fr', 'fy',
  'ga', 'gd', 'gl', 'gn', 'gu', 'gv', 'ha', 'he', 'hi', 'ho', 'hr', 'ht', 'hu', 'hy', 'hz', 'ia',
  'id', 'ie', 'ig', 'ii', 'ik', 'io', 'is', 'it', 'iu', 'ja', 'jv', 'ka', 'kg', 'ki', 'kj', 'kk',
  'kl', 'km', 'kn', 'ko', 'kr', 'ks', 'ku', 'kv', 'kw', 'ky', 'la', 'lb', 'lg', 'li', 'ln', 'lo',
  'lt', 'lu', 'lv', 'mg', 'mh', 'mi', 'mk', 'ml', 'mn', 'mr', 'ms', 'mt', 'my', 'na', 'nb', 'nd',
  'ne', 'ng', 'nl', 'nn', 'no', 'nr', 'nv', 'ny', 'oc', 'oj', 'om', 'or', 'os', 'pa', 'pi', 'pl',
  'ps', 'pt', 'qu', 'rm', 'rn', 'ro', 'ru', 'rw', 'sa', 'sc', 'sd', 'se', 'sg', 'sh', 'si', 'sk',
  'sl', 'sm', 'sn', 'so', 'sq', 'sr', 'ss', 'st', 'su', 'sv', 'sw', 'ta', 'te', 'tg', 'th', 'ti',
  'tk', 'tl', 'tn', 'to', 'tr', 'ts', 'tt', 'tw', 'ty', 'ug', 'uk', 'ur', 'uz', 've', 'vi', 'vo',
  'wa', 'wo', 'xh', 'yi', 'yo', 'za', 'zh', 'zu',
];

const known = new Set<string>(LANGUAGES);

function displayNames(locale?: string): Intl.DisplayNames | null {
  try {
    return new Intl.DisplayNames(locale ? [locale] : undefined, { type: 'language' });
  } catch {
    return null;
  }
}

/** "de" as the viewer reads it ("German" in English); the code when the browser has no name. */
export function languageName(code: string): string {
  return displayNames()?.of(code) ?? code;
}

/** Languages in words, or what to say when a doctor lists none. */
export function languagesText(codes: readonly string[]): string {
  return codes.length ? codes.map(languageName).join(', ') : 'No language listed yet';
}

/**
 * The code of a language typed by a person: a code ("de") or its name in the viewer's language
 * or in English ("German", "Deutsch" for a German browser); null when none matches.
 */
export function languageCode(typed: string): Language | null {
  const t = typed.trim().toLowerCase();
  if (!t) return null;
  if (known.has(t)) return t as Language;
  for (const names of [displayNames(), displayNames('en')]) {
    if (!names) continue;
    const hit = LANGUAGES.find((c) => names.of(c)?.toLowerCase() === t);
    if (hit) return hit;
  }
  return null;
}

/**
 * Languages typed as a comma-separated list, each once, in the order given; or the sentence
 * saying what is wrong.
 */
export function parseLanguages(typed: string): { codes: Language[] } | { error: string } {
  const codes: Language[] = [];
  for (const part of typed.split(',').map((s) => s.trim()).filter(Boolean)) {
    const code = languageCode(part);
    if (!code) return { error: `“${part}” is not a language we know: use its name (e.g. German) or its two-letter code (e.g. de).` };
    if (!codes.includes(code)) codes.push(code);
  }
  if (codes.length > MAX_LANGUAGES) return { error: `List at most ${MAX_LANGUAGES} languages.` };
  return { codes };
}
