import { describe, expect, it } from 'vitest';
import { mediaErrorMessage } from './call';

describe('camera errors', () => {
  it('tells a denied camera from a missing one', () => {
    expect(mediaErrorMessage({ name: 'NotAllowedError' })).toMatch(/denied/);
    expect(mediaErrorMessage({ name: 'NotFoundError' })).toMatch(/No camera or microphone was found/);
    expect(mediaErrorMessage({ name: 'NotReadableError' })).toMatch(/in use/);
    expect(mediaErrorMessage(new Error('x'))).toBe('The camera could not be started.');
  });
});
