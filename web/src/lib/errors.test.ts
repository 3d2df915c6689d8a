import { describe, expect, it } from 'vitest';
import { ApiError } from './api';
import { ClientError, errorSentence, SENTENCES } from './errors';
// The wire contract's error codes, read from the Rust source so a new code without a sentence fails here.
import src from '../../../nats/src/error.rs?raw';

describe('error sentences', () => {
  it('has a sentence for every error code the API documents', () => {
    // The codes are the snake_case names in the ErrorCode enum's `as_str`.
    const block = src.slice(src.indexOf('pub fn as_str'), src.indexOf('pub fn parse'));
    const codes = [...block.matchAll(/=> "([a-z_]+)"/g)].map((m) => m[1]).filter((c) => c !== 'unknown');
    expect(codes.length).toBeGreaterThan(15);
    for (const c of codes) expect(SENTENCES[c], c).toBeTruthy();
  });

  it('never shows the API message', () => {
    const e = new ApiError(422, 'validation_failed', "unknown variant `o_pos`, expected one of `A+`", 'r1');
    expect(errorSentence(e)).toBe(SENTENCES.validation_failed);
    expect(errorSentence(e)).not.toContain('variant');
  });

  it('says an unknown code generically, with the request id', () => {
    const e = new ApiError(500, 'brand_new_code', 'internal detail', 'req-42');
    expect(errorSentence(e)).toContain('req-42');
    expect(errorSentence(e)).not.toContain('internal detail');
  });

  it('lets a screen word a code its own way', () => {
    const e = new ApiError(412, 'precondition_failed', 'If-Match: stale');
    expect(errorSentence(e, { precondition_failed: 'Changed elsewhere.' })).toBe('Changed elsewhere.');
  });

  it('shows the client’s own sentences as they are', () => {
    expect(errorSentence(new ClientError('Choose a time.'))).toBe('Choose a time.');
    expect(errorSentence(new Error('x is undefined'))).not.toContain('undefined');
  });
});
