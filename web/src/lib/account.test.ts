import { describe, expect, it } from 'vitest';
import { zoneChoices } from './account';

describe('zoneChoices', () => {
  it('adds UTC and the stored zone the browser does not list, each once, sorted', () => {
    expect(zoneChoices(['Asia/Calcutta', 'Europe/Berlin'], ['Europe/Berlin', 'Asia/Tokyo'])).toEqual([
      'Asia/Calcutta',
      'Asia/Tokyo',
      'Europe/Berlin',
      'UTC',
    ]);
  });

  it('offers at least UTC where the browser cannot list zones', () => {
    expect(zoneChoices(['', 'UTC'], [])).toEqual(['UTC']);
  });
});
