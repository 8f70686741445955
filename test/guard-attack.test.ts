/**
 * The log guard against a hostile container (issue 9, item 6), on the real
 * filesystem with real inotify: another process swaps a directory for a symlink
 * to a host directory as fast as it can while the guard scans, and a sampler
 * reads through the flat directory; and a container grows a 10,000-deep tree
 * beside another container whose files must keep being linked promptly.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { DEFAULT_MAX_DEPTH } from '../src/guard/index.js';
import { makeTree, metricValue, spawnChild, startGuard, waitFor, waitLinked } from './harness/guard-fixture.js';

const SWAPPER = `
const fs = require('fs');
const [d, real, link, until] = [process.argv[1], process.argv[2], process.argv[3], Date.now() + Number(process.argv[4])];
const chain = Array.from({ length: 40 }, (_, i) => 'l' + i);
let i = 0;
while (Date.now() < until) {
  // Files come and go in the real directories: events the guard handles while d may be the symlink.
  const k = i % 41;
  const f = [d, ...chain.slice(0, k), 'bait-' + k + '.log'].join('/');
  try { fs.writeFileSync(f, 'inside'); fs.unlinkSync(f); } catch {}
  // d: a real directory (now and then a new file and subdirectory keep events coming), then a symlink to the host dir
  if (i % 64 === 0) try { fs.writeFileSync(d + '/inside-' + (i % 50) + '.log', 'inside'); fs.mkdirSync(d + '/sub' + (i % 20), { recursive: true }); } catch {}
  try { fs.renameSync(d, real); fs.renameSync(link, d); } catch {}
  try { fs.renameSync(d, link); fs.renameSync(real, d); } catch {}
  i++;
}
console.log('swaps', i);
`;

const SAMPLER = `
const fs = require('fs');
const [flat, marker, until] = [process.argv[1], process.argv[2], Date.now() + Number(process.argv[3])];
let reads = 0;
while (Date.now() < until) {
  let names = [];
  try { names = fs.readdirSync(flat); } catch {}
  for (const n of names) {
    let data = '';
    try { data = fs.readFileSync(flat + '/' + n, 'utf8'); reads++; } catch { continue; }
    if (data.includes(marker)) { console.log('LEAK ' + n); process.exit(3); }
  }
}
console.log('reads', reads);
`;

describe('kiver-guard: attacks', () => {
  it('a directory swapped for a symlink during scans is never followed: 10 s race, a sampler never reads a host file', async (t) => {
    const tree = makeTree(t);
    const host = path.join(tree.base, 'host');
    fs.mkdirSync(host);
    const marker = `HOST-SECRET-${process.pid}`;
    // d is an ancestor of a 40-level chain; the host dir has the same chain with its own files at every level
    // (names never used inside), so a swap of d between checking a deep directory and opening it would list the host's.
    const chain = Array.from({ length: 40 }, (_, i) => `l${i}`);
    const d = tree.mkdir('evil/0/a/d');
    for (let i = 0; i <= chain.length; i++) {
      const sub = chain.slice(0, i).join('/');
      fs.mkdirSync(path.join(host, sub), { recursive: true });
      fs.writeFileSync(path.join(host, sub, `host-only-${i}.txt`), marker);
      tree.write(path.join('evil/0/a/d', sub, `inside-${i}.log`), 'inside');
    }
    fs.symlinkSync(host, tree.at('evil/0/a/d.link'));
    const { guard } = await startGuard(t, tree, { rescanIntervalMs: 0 });
    const leaks: string[] = [];
    guard.on('link', (e: { rel: string }) => { if (e.rel.includes('host-only-')) leaks.push(e.rel); });

    const ms = 10_000;
    const swapper = spawnChild(t, process.execPath, ['-e', SWAPPER, d, `${d}.real`, tree.at('evil/0/a/d.link'), String(ms)]);
    const sampler = spawnChild(t, process.execPath, ['-e', SAMPLER, tree.out, marker, String(ms)]);
    // Full reconciles back to back: every one opens and lists the directory under attack.
    let scans = 0;
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      await guard.reconcile('periodic');
      scans++;
    }
    assert.equal(await sampler.exited, 0, `sampler: ${sampler.stdout()}${sampler.stderr()}`);
    assert.equal(await swapper.exited, 0, swapper.stderr());
    assert.deepEqual(leaks, [], 'no link was ever made to a file of the host directory');
    assert.match(sampler.stdout(), /reads \d+/);
    const swaps = Number(/swaps (\d+)/.exec(swapper.stdout())?.[1]);
    assert.ok(swaps > 1000 && scans > 5, `a real race: ${swaps} swaps, ${scans} full scans`);
    // Afterwards every link resolves inside the root.
    await guard.reconcile('periodic');
    for (const name of tree.outNames()) {
      let real: string;
      try { real = fs.realpathSync(path.join(tree.out, name)); } catch { continue; }
      assert.ok(real.startsWith(tree.root + '/'), `${name} resolves to ${real}`);
    }
  });

  it('a directory swapped for a symlink right before the guard opens it is not followed (the swap injected at the open)', async (t) => {
    const tree = makeTree(t);
    const host = path.join(tree.base, 'host');
    fs.mkdirSync(path.join(host, 'x'), { recursive: true });
    fs.writeFileSync(path.join(host, 'x', 'host-only.txt'), 'HOST');
    tree.write('evil/0/d/x/inside.log', 'inside');
    const { guard } = await startGuard(t, tree);
    await waitLinked(tree, 'evil/0/d/x/inside.log');
    const links: string[] = [];
    guard.on('link', (e: { rel: string }) => links.push(e.rel));
    // Whatever the guard opens next for evil/0/d/x, the container has just swapped d for a symlink to the host.
    const target = tree.at('evil/0/d/x');
    let swapped = false;
    const swap = (arg: unknown) => {
      if (swapped || String(arg) !== target) return;
      swapped = true;
      fs.renameSync(tree.at('evil/0/d'), tree.at('evil/0/d.real'));
      fs.symlinkSync(host, tree.at('evil/0/d'));
    };
    const { openSync, opendirSync } = fs;
    t.mock.method(fs, 'openSync', (...a: Parameters<typeof fs.openSync>) => (swap(a[0]), openSync(...a)));
    t.mock.method(fs, 'opendirSync', (...a: Parameters<typeof fs.opendirSync>) => (swap(a[0]), opendirSync(...a)));
    await guard.reconcile('periodic');
    t.mock.restoreAll();
    assert.ok(swapped, 'the guard opened the directory under attack');
    assert.deepEqual(links.filter((r) => r.includes('host-only')), [], 'no link to the host file');
    for (const name of tree.outNames()) {
      let data = '';
      try { data = fs.readFileSync(path.join(tree.out, name), 'utf8'); } catch { continue; }
      assert.ok(!data.includes('HOST'), `${name} reads the host file`);
    }
    // The guard noticed: d is a symlink now, refused, and the links under it are gone.
    assert.ok((await metricValue(guard.registry, 'kiver_guard_refused_entries_total', { kind: 'symlink' })) >= 1);
    assert.equal(tree.target('evil/0/d/x/inside.log'), null);
  });

  it('a 10,000-deep tree is cut at the depth limit (counted, logged once); another container stays linked promptly', async (t) => {
    const tree = makeTree(t);
    const deepBase = tree.mkdir('deep/0');
    const { guard, logs } = await startGuard(t, tree);
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    try {
      const t0 = performance.now();
      // The container grows the tree in another process while the other container logs.
      const grower = spawnChild(t, process.execPath, ['-e', `
        const fs = require('fs'); process.chdir(process.argv[1]);
        for (let i = 0; i < 10000; i++) { fs.mkdirSync('d'); fs.writeFileSync('d/f.log', 'x'); process.chdir('d'); }
        console.log('grown');`, deepBase]);
      const latencies: number[] = [];
      const created = new Map<string, number>();
      guard.on('link', (e: { rel: string }) => {
        const at = created.get(e.rel);
        if (at !== undefined) latencies.push(performance.now() - at);
      });
      for (let i = 0; i < 200; i++) {
        const rel = `other/0/app-${i}.log`;
        created.set(rel, performance.now());
        tree.write(rel);
        await new Promise((r) => setTimeout(r, 15));
      }
      assert.equal(await grower.exited, 0, grower.stderr());
      t.diagnostic(`grown after ${(performance.now() - t0).toFixed(0)} ms`);
      await waitLinked(tree, 'other/0/app-199.log');
      t.diagnostic(`linked after ${(performance.now() - t0).toFixed(0)} ms`);
      await waitFor(async () => (await metricValue(guard.registry, 'kiver_guard_refused_entries_total', { kind: 'too_deep' })) > 0, 'too_deep counted', 10_000);
      t.diagnostic(`too deep counted after ${(performance.now() - t0).toFixed(0)} ms`);
      await guard.reconcile('periodic');
      t.diagnostic(`reconciled after ${(performance.now() - t0).toFixed(0)} ms`);
      latencies.sort((a, b) => a - b);
      const p99 = latencies[Math.floor(latencies.length * 0.99) - 1];
      const maxBlockMs = delay.max / 1e6;
      t.diagnostic(`link latency beside the deep tree: p50 ${latencies[latencies.length >> 1].toFixed(1)} ms, p99 ${p99.toFixed(1)} ms; event loop max block ${maxBlockMs.toFixed(1)} ms`);
      assert.equal(latencies.length, 200, 'every file of the other container linked');
      // 20 ms is the goal (bench:guard); a shared 2-core machine gets slack here.
      assert.ok(p99 <= 100, `p99 ${p99.toFixed(1)} ms`);
      assert.ok(guard.status().directories <= DEFAULT_MAX_DEPTH + 10, `${guard.status().directories} directories followed`);
      const deepLinks = tree.outNames().filter((n) => n.startsWith('deep.'));
      assert.equal(deepLinks.length, DEFAULT_MAX_DEPTH - 2, 'files down to the limit are linked, none below');
      assert.equal(logs.records.filter((r) => r.msg.includes('deeper than')).length, 1, 'logged once');
    } finally {
      delay.disable();
      // 10,000 levels exceed PATH_MAX (fs.rmSync fails, rm -rf takes half a minute): walk down, remove on the way up
      spawnSync(process.execPath, ['-e', `
        const fs = require('fs'); process.chdir(process.argv[1]); let n = 0;
        while (fs.existsSync('d')) { process.chdir('d'); n++; }
        for (; n > 0; n--) { for (const f of fs.readdirSync('.')) fs.unlinkSync(f); process.chdir('..'); fs.rmdirSync('d'); }`, deepBase]);
    }
  });
});
