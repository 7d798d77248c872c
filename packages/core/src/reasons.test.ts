import { describe, expect, it } from 'vitest';
import { CORE_REASONS, SHARED_CORRUPT_REASONS } from './reasons.js';
import { describeErrorVocabulary, vocabularyInSources } from './test.js';

describeErrorVocabulary('core', {
  dir: new URL('.', import.meta.url),
  reasons: CORE_REASONS,
  warnings: Object.freeze([]),
});

describe('reason lists', () => {
  it('core lists the shared corrupt reasons', () => {
    for (const reason of SHARED_CORRUPT_REASONS) expect(CORE_REASONS).toContain(reason);
    expect(Object.isFrozen(SHARED_CORRUPT_REASONS)).toBe(true);
  });

  it('the scan finds reason and warning literals and skips test files and display text', () => {
    const found = vocabularyInSources({
      'a.ts': `throw new CorruptError('x', { structure, reason: 'bad-magic' });
        throw f.corrupt(\`bad \${x}\`, 0x38, 'checksum');
        throw f.corrupt(
          'long message',
          at,
          'bad-count',
        );
        warnings.push({ code: 'tail-after-filesystem', message });
        throw new CorruptError(m, { reason: m === 'BAAD' ? 'fixup' : 'bad-signature' });
        const KINDS = { sparse: 'sparse-file', compressed: 'compressed-file' } as const satisfies Record<
          string,
          NtfsReason
        >;
        const tail = { offset, length, used: true, reason: 'backup boot sector' };`,
      'a.test.ts': `reason: 'only-in-tests'`,
      'test-support.ts': `reason: 'only-in-support'`,
    });
    expect([...found.reasons].sort()).toEqual([
      'bad-count',
      'bad-magic',
      'bad-signature',
      'checksum',
      'compressed-file',
      'fixup',
      'sparse-file',
    ]);
    expect([...found.warnings]).toEqual(['tail-after-filesystem']);
  });
});
