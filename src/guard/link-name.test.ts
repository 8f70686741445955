import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeLinkName, display, isHashedName, linkNameFor, plainChildName, plainDirPrefix, toBuf, utf8Bytes } from './link-name.js';

/** Name for a UTF-8 path, shown as UTF-8 (both sides are byte strings inside). */
const nameOf = (rel: string, maxNameBytes?: number) => display(linkNameFor(utf8Bytes(rel), { maxNameBytes }));

describe('link names: Kiver layout', () => {
  it('reads as <service>.<ordinal>.<rest> with "~" for the deeper separators', () => {
    assert.equal(nameOf('mysql/0/slow.log'), 'mysql.0.slow.log');
    assert.equal(nameOf('nginx/2/a/b/c/access.log'), 'nginx.2.a~b~c~access.log');
    assert.equal(nameOf('redis-cache/13/redis.log.1'), 'redis-cache.13.redis.log.1');
  });

  it('is deterministic', () => {
    const rel = utf8Bytes('svc/0/deep/er/app.log');
    assert.equal(linkNameFor(rel), linkNameFor(rel));
  });

  it('keeps paths apart that naive "/"→"." replacement would merge', () => {
    const pairs: Array<[string, string]> = [
      ['svc/0/a.b.log', 'svc/0/a/b.log'],
      ['svc/0/a~b.log', 'svc/0/a/b.log'],
      ['svc/0/a%7Eb.log', 'svc/0/a~b.log'],
      ['svc.0.a/x.log', 'svc/0/a/x.log'],
      ['svc/0.a/x.log', 'svc/0/a/x.log'],
      ['svc.0.x.log', 'svc/0/x.log'],
    ];
    for (const [a, b] of pairs) assert.notEqual(nameOf(a), nameOf(b), `${a} vs ${b}`);
  });
});

describe('link names: other paths', () => {
  it('joins components with "~" and never looks like the Kiver form', () => {
    assert.equal(nameOf('agent.log'), 'agent.log');
    assert.equal(nameOf('misc/x.log'), 'misc~x.log');
    assert.equal(nameOf('svc/x.log'), 'svc~x.log'); // two components: not the Kiver shape
    assert.equal(nameOf('svc/abc/x.log'), 'svc~abc~x.log'); // ordinal not numeric
    assert.equal(nameOf('kiver.1.log'), 'kiver%2E1.log');
  });

  it('escapes leading dashes, dots and spaces and trailing spaces', () => {
    assert.equal(nameOf('-rf'), '%2Drf');
    assert.equal(nameOf('--help/x'), '%2D-help~x');
    assert.equal(nameOf('.hidden.log'), '%2Ehidden.log');
    assert.equal(nameOf(' x'), '%20x');
    assert.equal(nameOf('x '), 'x%20');
    assert.equal(nameOf('svc/0/-rf'), 'svc.0.-rf'); // not leading: left readable
  });

  it('escapes newlines, control bytes, "%" and invalid UTF-8, keeps spaces and printable Unicode', () => {
    assert.equal(nameOf('svc/0/my app.log'), 'svc.0.my app.log');
    assert.equal(nameOf('svc/0/a\nb.log'), 'svc.0.a%0Ab.log');
    assert.equal(nameOf('svc/0/tab\there'), 'svc.0.tab%09here');
    assert.equal(nameOf('svc/0/100%.log'), 'svc.0.100%25.log');
    assert.equal(nameOf('svc/0/日志.log'), 'svc.0.日志.log');
    assert.equal(nameOf('svc/0/\u202Egol.exe'), 'svc.0.%E2%80%AEgol.exe'); // bidi override is invisible
    const bad = 'svc/0/'.concat(String.fromCharCode(0xff, 0xfe), 'x');
    assert.equal(linkNameFor(bad), 'svc.0.%FF%FEx');
    const truncatedUtf8 = 'svc/0/'.concat(String.fromCharCode(0xe6, 0x97), '.log');
    assert.equal(linkNameFor(truncatedUtf8), 'svc.0.%E6%97.log');
  });

  it('rejects paths that are not relative and normal', () => {
    for (const rel of ['', '/abs', 'a//b', 'a/./b', '../x', 'a/..', 'svc/0//x', 'svc/0/x/', 'svc/0/./x', 'svc/0/x/..', 'svc/0/..']) {
      assert.throws(() => linkNameFor(rel), RangeError, rel);
    }
  });
});

describe('link names: length limit', () => {
  const longDir = 'd'.repeat(200);
  const deep = `svc/3/${longDir}/${longDir}/${longDir}/${longDir}/${longDir}/app.log`;

  it('shortens names over 255 bytes with a hash, keeping head and tail readable', () => {
    const name = nameOf(deep);
    assert.ok(Buffer.byteLength(name) <= 255, `${Buffer.byteLength(name)} bytes`);
    assert.ok(isHashedName(linkNameFor(utf8Bytes(deep))));
    assert.ok(name.startsWith('svc.3.ddd'), name);
    assert.ok(name.endsWith('ddd~app.log'), name);
    assert.match(name, /%%[0-9a-f]{32}%%/);
  });

  it('gives different names to long paths that differ only where the name is cut', () => {
    const a = `svc/3/${longDir}/${'x'.repeat(150)}/${longDir}/app.log`;
    const b = `svc/3/${longDir}/${'y'.repeat(150)}/${longDir}/app.log`;
    assert.notEqual(nameOf(a), nameOf(b));
  });

  it('never cuts an escape or a UTF-8 sequence in half', () => {
    const rel = utf8Bytes(`svc/0/${'日'.repeat(120)}\n${'志'.repeat(120)}.log`);
    const name = linkNameFor(rel);
    assert.ok(name.length <= 255);
    assert.equal(Buffer.from(toBuf(name).toString('utf8'), 'utf8').equals(toBuf(name)), true, 'valid UTF-8');
    assert.doesNotMatch(name, /%[0-9A-F]?$/);
  });

  it('honours a smaller limit', () => {
    const name = linkNameFor(utf8Bytes(`svc/0/${'a'.repeat(100)}.log`), { maxNameBytes: 80 });
    assert.ok(name.length <= 80 && isHashedName(name));
  });

  it('a hashed name never equals an unhashed one ("%%" cannot appear unhashed)', () => {
    assert.equal(nameOf('svc/0/%%.log'), 'svc.0.%25%25.log');
    assert.ok(!isHashedName(linkNameFor(utf8Bytes('svc/0/%%.log'))));
  });
});

describe('link names: the per-directory fast path', () => {
  it('gives exactly what linkNameFor gives, or declines', () => {
    const dirs = ['svc/0', 'svc/0/a/b', 'svc/12/x y', 'a-b_c/3/logs', 'svc/x', 'svc', '-x/0', 'svc/0/a~b', 'svc/0/%', 'svc/0/' + 'd'.repeat(240)];
    const names = ['app.log', 'x', '.hidden', '-rf', 'trailing ', 'a~b', '100%', 'a\nb', 'é', 'f'.repeat(60)];
    let fast = 0;
    for (const d of dirs) {
      const prefix = plainDirPrefix(d);
      for (const n of names) {
        const got = prefix === null ? null : plainChildName(prefix, utf8Bytes(n));
        if (got !== null) {
          fast++;
          assert.equal(got, linkNameFor(utf8Bytes(`${d}/${n}`)), `${d} + ${n}`);
        }
      }
    }
    assert.ok(fast > 20, `fast path used ${fast} times`);
    assert.equal(plainDirPrefix('svc/0/a/b'), 'svc.0.a~b~');
    assert.equal(plainDirPrefix('svc/0'), 'svc.0.');
    assert.equal(plainDirPrefix('svc'), null);
    assert.equal(plainDirPrefix('svc/0/a~b'), null);
  });
});

describe('link names: injectivity', () => {
  it('decodeLinkName inverts every unhashed name', () => {
    for (const rel of ['svc/0/a/b.log', 'agent.log', 'kiver.1.log', '-rf/x', 'svc/0/a\nb', 'x ', 'a~b/c%d']) {
      const b = utf8Bytes(rel);
      assert.equal(decodeLinkName(linkNameFor(b)), b, rel);
    }
    assert.equal(decodeLinkName('svc.0.a.log.not-canonical%'), null);
    assert.equal(decodeLinkName('-rf'), null, 'a name the guard never makes');
  });

  it('maps 100,000 random paths over a hostile alphabet to 100,000 distinct names', () => {
    // Deterministic PRNG so a failure reproduces.
    let seed = 0x9e3779b9;
    const rnd = (n: number) => {
      seed ^= seed << 13;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      return (seed >>> 0) % n;
    };
    const alphabet = ['a', 'b', '0', '1', '.', '~', '%', '-', '_', ' ', '\n', String.fromCharCode(0xff), String.fromCharCode(0xc3, 0xa9), '2', 'E', 'F'];
    const seen = new Map<string, string>();
    let made = 0;
    while (made < 100_000) {
      const depth = 1 + rnd(5);
      const comps: string[] = [];
      for (let d = 0; d < depth; d++) {
        let c = '';
        const len = 1 + rnd(4);
        for (let k = 0; k < len; k++) c += alphabet[rnd(alphabet.length)]!;
        if (c === '.' || c === '..') c = 'x' + c;
        comps.push(c);
      }
      if (rnd(3) === 0 && depth >= 3) comps[1] = String(rnd(3)); // plenty of Kiver-shaped paths
      const rel = comps.join('/');
      if (seen.has(`p:${rel}`)) continue;
      seen.set(`p:${rel}`, '');
      const name = linkNameFor(rel);
      const slash = rel.lastIndexOf('/');
      const prefix = slash < 0 ? null : plainDirPrefix(rel.slice(0, slash));
      const viaPrefix = prefix === null ? null : plainChildName(prefix, rel.slice(slash + 1));
      if (viaPrefix !== null) assert.equal(viaPrefix, name, `fast path for ${JSON.stringify(rel)}`);
      const prior = seen.get(`n:${name}`);
      assert.equal(prior, undefined, `collision: ${JSON.stringify(rel)} and ${JSON.stringify(prior)} → ${JSON.stringify(name)}`);
      seen.set(`n:${name}`, rel);
      assert.equal(decodeLinkName(name), rel);
      assert.ok(!name.startsWith('-') && !name.startsWith('.'), name);
      made++;
    }
  });
});
