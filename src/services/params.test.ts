import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolveParams, type ParamDefs } from './params.js';
import { InputError } from '../errors.js';

const defs: ParamDefs = {
  max_connections: { kind: 'integer', min: 10, max: 10000, default: 151, description: 'x' },
  policy: { kind: 'enum', values: ['a', 'b'], default: 'a', description: 'y' },
  flag: { kind: 'boolean', default: false, description: 'z' },
};

describe('service parameters', () => {
  it('fills defaults and coerces CLI text', () => {
    assert.deepEqual(resolveParams('t', defs, { max_connections: '500', flag: 'on' }), { max_connections: 500, policy: 'a', flag: true });
  });
  it('an unknown parameter is an input error naming it', () => {
    assert.throws(() => resolveParams('t', defs, { max_conections: 5 }), (e: unknown) => e instanceof InputError && e.field === 'params/max_conections');
  });
  it('out of range and wrong kinds name the field', () => {
    for (const bad of <Record<string, string | number>[]>[{ max_connections: 9 }, { max_connections: 10001 }, { max_connections: '5.5' }, { policy: 'c' }, { flag: 'maybe' }]) {
      const name = Object.keys(bad)[0];
      assert.throws(() => resolveParams('t', defs, bad), (e: unknown) => e instanceof InputError && e.field === `params/${name}`, JSON.stringify(bad));
    }
  });
});
