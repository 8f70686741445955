import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseLabels } from './flags.js';
import { InputError } from '../errors.js';

describe('parseLabels (--label, --constraint)', () => {
  it('turns repeated key=value flags into one record', () => {
    assert.deepEqual(parseLabels(['zone=eu-1', 'disk=ssd', 'kiver.io/rack=r7', 'empty='], 'constraint'),
      { zone: 'eu-1', disk: 'ssd', 'kiver.io/rack': 'r7', empty: '' });
    assert.deepEqual(parseLabels(['zone=eu', 'zone=eu'], 'label'), { zone: 'eu' });
  });

  it('refuses malformed pairs and conflicting repeats, naming the flag', () => {
    for (const bad of ['zone', '=eu', 'Zone=eu', 'zone=e u', 'zone=eu\u001b[31m', `${'k'.repeat(64)}=v`, `k=${'v'.repeat(64)}`]) {
      assert.throws(() => parseLabels([bad], 'constraint'), (e: unknown) => e instanceof InputError && e.field === 'constraint' && /--constraint/.test(e.message), bad);
    }
    assert.throws(() => parseLabels(['zone=eu', 'zone=us'], 'label'), /--label: zone given twice \(eu, us\)/);
  });
});
