/**
 * Integration tests of the log guard on the real filesystem (temp dirs, real inotify,
 * real symlinks, a real follower). Every wait is a poll with a deadline.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { readInotifyLimits } from '../src/guard/inotify-limits.js';
import { linkNameFor, utf8Bytes } from '../src/guard/link-name.js';
import {
  expectedTarget,
  makeTree,
  metricValue,
  spawnChild,
  startGuard,
  waitFor,
  waitLinked,
  waitUnlinked,
} from './harness/guard-fixture.js';

const CLI = path.join(path.dirname(fileURLToPath(import.meta.url)), 'harness', 'guard-cli.js');

/** Every link in the flat directory resolves to a file inside the root. */
function assertAllInsideRoot(tree: ReturnType<typeof makeTree>): void {
  for (const name of tree.outNames()) {
    const real = fs.realpathSync(path.join(tree.out, name));
    assert.ok(real.startsWith(tree.root + '/'), `${name} resolves to ${real}`);
  }
}

describe('kiver-guard: nested trees', () => {
  it('links files created five and more directories deep, also in directories made a moment before', async (t) => {
    const tree = makeTree(t);
    const { guard } = await startGuard(t, tree);
    tree.write('mysql/0/a/b/c/d/e/app.log'); // depth 7
    await waitLinked(tree, 'mysql/0/a/b/c/d/e/app.log');
    assert.equal(fs.readFileSync(tree.linkFor('mysql/0/a/b/c/d/e/app.log'), 'utf8'), 'line\n', 'readable through the link');
    assert.ok(fs.lstatSync(tree.linkFor('mysql/0/a/b/c/d/e/app.log')).isSymbolicLink());

    // mkdir -p and the file in one go: the files exist before any watch on their directories
    const rels: string[] = [];
    for (let i = 0; i < 40; i++) {
      const rel = `svc${i % 4}/${i}/x/y/z/w/f${i}.log`;
      tree.write(rel);
      rels.push(rel);
    }
    for (const rel of rels) await waitLinked(tree, rel);
    assert.equal(guard.status().links, 41);
    assert.equal(guard.status().watches, guard.status().directories, 'one watch per directory');
    assert.equal(await metricValue(guard.registry, 'kiver_guard_links_created_total'), 41);
    assert.ok((await metricValue(guard.registry, 'kiver_guard_rescans_total', { reason: 'new_directory' })) > 0);
    const latency = (await guard.registry.getSingleMetric('kiver_guard_link_latency_seconds')!.get()).values;
    const count = latency
      .filter((v) => (v as { metricName?: string }).metricName?.endsWith('_count'))
      .reduce((s, v) => s + v.value, 0);
    assert.equal(count, 41, 'every link observed in the latency histogram');
  });

  it('removes the link when the file is deleted or renamed out of the tree', async (t) => {
    const tree = makeTree(t);
    await startGuard(t, tree);
    tree.write('svc/0/a/b/c/gone.log');
    tree.write('svc/0/a/b/c/moved.log');
    await waitLinked(tree, 'svc/0/a/b/c/gone.log');
    await waitLinked(tree, 'svc/0/a/b/c/moved.log');
    fs.unlinkSync(tree.at('svc/0/a/b/c/gone.log'));
    fs.renameSync(tree.at('svc/0/a/b/c/moved.log'), path.join(tree.base, 'moved-out.log'));
    await waitUnlinked(tree, 'svc/0/a/b/c/gone.log');
    await waitUnlinked(tree, 'svc/0/a/b/c/moved.log');
    assert.deepEqual(tree.outNames(), []);
  });

  it('follows rotation: app.log → app.log.1 and a new app.log both have links', async (t) => {
    const tree = makeTree(t);
    await startGuard(t, tree);
    tree.write('nginx/1/logs/a/b/app.log', 'old\n');
    await waitLinked(tree, 'nginx/1/logs/a/b/app.log');
    fs.renameSync(tree.at('nginx/1/logs/a/b/app.log'), tree.at('nginx/1/logs/a/b/app.log.1'));
    await waitLinked(tree, 'nginx/1/logs/a/b/app.log.1');
    await waitUnlinked(tree, 'nginx/1/logs/a/b/app.log');
    fs.writeFileSync(tree.at('nginx/1/logs/a/b/app.log'), 'new\n');
    await waitLinked(tree, 'nginx/1/logs/a/b/app.log');
    assert.equal(fs.readFileSync(tree.linkFor('nginx/1/logs/a/b/app.log.1'), 'utf8'), 'old\n');
    assert.equal(fs.readFileSync(tree.linkFor('nginx/1/logs/a/b/app.log'), 'utf8'), 'new\n');
    assert.deepEqual(tree.outNames(), ['nginx.1.logs~a~b~app.log', 'nginx.1.logs~a~b~app.log.1']);
  });

  it('drops every link and watch of a removed directory, and re-links a renamed one under its new path', async (t) => {
    const tree = makeTree(t);
    const { guard } = await startGuard(t, tree);
    for (const rel of ['redis/0/a/b/c/1.log', 'redis/0/a/b/2.log', 'redis/0/a/3.log', 'redis/1/a/b/c/keep.log', 'redis/1/x/y/z/m.log']) tree.write(rel);
    await waitLinked(tree, 'redis/1/x/y/z/m.log');
    await waitFor(() => guard.status().links === 5, '5 links');
    const watchesBefore = guard.status().watches;

    fs.rmSync(tree.at('redis/0'), { recursive: true }); // a removed container's directory
    for (const rel of ['redis/0/a/b/c/1.log', 'redis/0/a/b/2.log', 'redis/0/a/3.log']) await waitUnlinked(tree, rel);
    await waitFor(() => guard.status().watches === watchesBefore - 4, 'the 4 watches of redis/0 released');

    fs.renameSync(tree.at('redis/1/x'), tree.at('redis/1/renamed'));
    await waitLinked(tree, 'redis/1/renamed/y/z/m.log');
    await waitUnlinked(tree, 'redis/1/x/y/z/m.log');
    assert.deepEqual(tree.outNames(), ['redis.1.a~b~c~keep.log', 'redis.1.renamed~y~z~m.log']);
    assert.equal(guard.status().watches, guard.status().directories);
  });

  it('rescans everything after an inotify queue overflow', async (t) => {
    const tree = makeTree(t);
    tree.write('batch/0/out/a.log');
    tree.write('batch/0/out/b.log');
    const { guard, logs } = await startGuard(t, tree); // periodic reconcile off: only the overflow rescan can catch up
    // With this (the guard's) event loop blocked: first fill the kernel queue (16384 events) with
    // attribute changes (alternating files, so the kernel cannot merge them), then create files:
    // their IN_CREATE events are certainly dropped.
    const now = new Date();
    const queue = readInotifyLimits().maxQueuedEvents ?? 16_384;
    for (let i = 0; i < Math.ceil(queue / 2) + 1_000; i++) {
      fs.utimesSync(tree.at('batch/0/out/a.log'), now, now);
      fs.utimesSync(tree.at('batch/0/out/b.log'), now, now);
    }
    const n = 2_000;
    for (let i = 0; i < n; i++) fs.writeFileSync(tree.at(`batch/0/out/f${i}.log`), '');
    await waitFor(() => guard.status().links === n + 2, `${n + 2} links`, 15_000);
    assert.ok((await metricValue(guard.registry, 'kiver_guard_rescans_total', { reason: 'overflow' })) >= 1);
    assert.ok(logs.records.some((r) => r.level === 'warn' && /overflow/i.test(r.msg)));
    for (const i of [0, 1_000, n - 1]) assert.equal(tree.target(`batch/0/out/f${i}.log`), expectedTarget(tree, `batch/0/out/f${i}.log`));
  });
});

describe('kiver-guard: start-up reconcile', () => {
  it('links existing files, removes dangling and unsafe links of its own, leaves foreign entries alone', async (t) => {
    const tree = makeTree(t);
    tree.write('svc/0/app.log');
    tree.write('svc/1/deep/x/y/z.log');
    tree.write('svc/0/taken.log');
    fs.symlinkSync('/etc/passwd', tree.at('svc/0/evil'));
    fs.mkdirSync(tree.out);
    const o = (n: string) => path.join(tree.out, n);
    fs.symlinkSync(tree.at('svc/0/app.log'), o(linkNameFor('svc/0/app.log'))); // correct: adopted
    fs.symlinkSync(tree.at('svc/0/gone.log'), o(linkNameFor('svc/0/gone.log'))); // dangling, ours
    fs.symlinkSync(tree.at('svc/0/evil'), o(linkNameFor('svc/0/evil'))); // ours, now points at a symlink
    fs.symlinkSync(tree.at('svc/9'), o(linkNameFor('svc/9'))); // ours, to a directory that is gone
    fs.writeFileSync(o('notes.txt'), 'operator notes'); // foreign file
    fs.symlinkSync('/var/log/syslog', o('foreign-link')); // foreign link outside the root
    fs.symlinkSync(tree.at('svc/0/app.log'), o('hand-made')); // into the root, but not a name the guard makes
    fs.symlinkSync('/elsewhere/taken.log', o(linkNameFor('svc/0/taken.log'))); // our name, foreign target
    fs.mkdirSync(o('subdir'));

    const { guard, logs } = await startGuard(t, tree);
    assert.equal(tree.target('svc/0/app.log'), expectedTarget(tree, 'svc/0/app.log'));
    assert.equal(tree.target('svc/1/deep/x/y/z.log'), expectedTarget(tree, 'svc/1/deep/x/y/z.log'));
    assert.deepEqual(tree.outNames(), ['foreign-link', 'hand-made', 'notes.txt', 'subdir', 'svc.0.app.log', 'svc.0.taken.log', 'svc.1.deep~x~y~z.log']);
    assert.equal(fs.readFileSync(o('notes.txt'), 'utf8'), 'operator notes');
    assert.equal(fs.readlinkSync(o('svc.0.taken.log')), '/elsewhere/taken.log', 'an entry the guard did not make is never replaced');
    assert.equal(await metricValue(guard.registry, 'kiver_guard_links_created_total'), 1, 'only z.log is new');
    assert.equal(await metricValue(guard.registry, 'kiver_guard_links_removed_total', { reason: 'stale' }), 3);
    assert.ok((await metricValue(guard.registry, 'kiver_guard_errors_total', { kind: 'name_taken' })) >= 1);
    assert.equal(guard.status().lastReconcile?.foreignEntries, 5);
    assert.ok(logs.records.some((r) => /did not create/.test(r.msg)));

    // a restart computes the same names and changes nothing
    await guard.stop();
    const before = tree.outNames();
    const again = await startGuard(t, tree);
    assert.deepEqual(tree.outNames(), before);
    assert.equal(await metricValue(again.guard.registry, 'kiver_guard_links_created_total'), 0);
  });

  it('the same instance can stop and start again', async (t) => {
    const tree = makeTree(t);
    tree.write('svc/0/a/first.log');
    const { guard } = await startGuard(t, tree);
    await guard.stop();
    assert.equal(guard.status().watches, 0);
    assert.ok(tree.target('svc/0/a/first.log'), 'links stay while stopped');
    tree.write('svc/0/a/while-stopped.log');
    await guard.start();
    assert.equal(tree.target('svc/0/a/while-stopped.log'), expectedTarget(tree, 'svc/0/a/while-stopped.log'));
    tree.write('svc/0/a/after.log');
    await waitLinked(tree, 'svc/0/a/after.log'); // watches work again
    assert.equal(guard.status().links, 3);
  });

  it('a new guard on the same metrics registry takes the metrics over (an agent restarted in one process)', async (t) => {
    const tree = makeTree(t);
    tree.write('svc/0/a.log');
    const registry = new Registry();
    const first = await startGuard(t, tree, { registry });
    await first.guard.stop();
    const second = await startGuard(t, tree, { registry });
    assert.equal(await metricValue(registry, 'kiver_guard_links'), 1);
    assert.equal(second.guard.registry, registry);
  });

  it('the periodic reconcile repairs a link someone deleted', async (t) => {
    const tree = makeTree(t);
    tree.write('svc/0/app.log');
    const { guard } = await startGuard(t, tree);
    fs.unlinkSync(tree.linkFor('svc/0/app.log'));
    await guard.reconcile('periodic');
    assert.equal(tree.target('svc/0/app.log'), expectedTarget(tree, 'svc/0/app.log'));
  });

  it('warns when the root shares the filesystem of /', async (t) => {
    const tree = makeTree(t);
    const { guard, logs } = await startGuard(t, tree);
    const same = fs.statSync('/').dev === fs.statSync(tree.root).dev;
    const warned = logs.records.some((r) => r.level === 'warn' && /same filesystem as \//.test(r.msg));
    assert.equal(warned, same);
    assert.equal(await metricValue(guard.registry, 'kiver_guard_root_on_system_filesystem'), same ? 1 : 0);
  });

  it('may keep the flat directory directly under the root: skips it, writes short relative targets', async (t) => {
    const tree = makeTree(t, true);
    tree.write('svc/0/a.log', 'a\n');
    tree.write('svc/0/b.log', 'b\n');
    fs.mkdirSync(tree.out);
    fs.symlinkSync(tree.at('svc/0/b.log'), tree.linkFor('svc/0/b.log')); // absolute, from an earlier setup
    const { guard } = await startGuard(t, tree);
    assert.deepEqual(tree.outNames(), ['svc.0.a.log', 'svc.0.b.log']);
    assert.equal(fs.readlinkSync(tree.linkFor('svc/0/a.log'), 'utf8'), '../svc/0/a.log');
    assert.equal(fs.readlinkSync(tree.linkFor('svc/0/b.log'), 'utf8'), '../svc/0/b.log', 'rewritten in the relative form');
    assert.equal(fs.readFileSync(tree.linkFor('svc/0/a.log'), 'utf8'), 'a\n');
    assert.equal(guard.status().directories, 3, 'root, svc, svc/0: not the flat directory');
    fs.unlinkSync(tree.at('svc/0/a.log'));
    await waitFor(() => !fs.existsSync(tree.linkFor('svc/0/a.log')) && tree.outNames().length === 1, 'relative link removed');
  });
});

describe('kiver-guard: safety', () => {
  it('never links or follows container-made symlinks, FIFOs or sockets', async (t) => {
    const tree = makeTree(t);
    const outside = path.join(tree.base, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'secret.log'), 'host secret');
    tree.write('other/0/private.log');
    const { guard } = await startGuard(t, tree);
    await waitLinked(tree, 'other/0/private.log');

    const d = tree.mkdir('svc/0');
    fs.symlinkSync('/etc/passwd', path.join(d, 'shadow.log'));
    fs.symlinkSync('/etc', path.join(d, 'etc'));
    fs.symlinkSync('/', path.join(d, 'root'));
    fs.symlinkSync('..', path.join(d, 'up'));
    fs.symlinkSync('../../other/0', path.join(d, 'neighbour'));
    fs.symlinkSync(outside, path.join(d, 'outside'));
    assert.equal(spawnSync('mkfifo', [path.join(d, 'pipe.log')]).status, 0);
    const sock = net.createServer();
    await new Promise<void>((resolve) => sock.listen(path.join(d, 'sock.log'), resolve));
    t.after(() => new Promise<void>((resolve) => sock.close(() => resolve())));
    tree.write('svc/0/ok.log'); // sentinel: created after all the hostile entries
    await waitLinked(tree, 'svc/0/ok.log');
    await guard.reconcile('periodic'); // and a full rescan sees them all again

    assert.deepEqual(tree.outNames(), ['other.0.private.log', 'svc.0.ok.log']);
    assert.equal(guard.status().directories, 5, 'root, other, other/0, svc, svc/0: nothing reached through a link');
    assert.equal(guard.status().watches, 5);
    assert.ok((await metricValue(guard.registry, 'kiver_guard_refused_entries_total', { kind: 'symlink' })) >= 6);
    assert.ok((await metricValue(guard.registry, 'kiver_guard_refused_entries_total', { kind: 'fifo' })) >= 1);
    assert.ok((await metricValue(guard.registry, 'kiver_guard_refused_entries_total', { kind: 'socket' })) >= 1);
  });

  it('drops the links under a directory that a container swaps for a symlink', async (t) => {
    const tree = makeTree(t);
    const outside = path.join(tree.base, 'outside');
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(outside, 'x.log'), 'host data');
    tree.write('svc/0/a/x.log', 'container data');
    const { guard } = await startGuard(t, tree);
    await waitLinked(tree, 'svc/0/a/x.log');
    fs.renameSync(tree.at('svc/0/a'), tree.at('svc/0/a.old'));
    fs.symlinkSync(outside, tree.at('svc/0/a'));
    await waitUnlinked(tree, 'svc/0/a/x.log');
    await waitLinked(tree, 'svc/0/a.old/x.log');
    await guard.reconcile('periodic');
    assertAllInsideRoot(tree);
    assert.deepEqual(tree.outNames(), ['svc.0.a.old~x.log']);
  });

  it('never links a file that appears under a directory whose parent was swapped for a symlink', async (t) => {
    const tree = makeTree(t);
    const outside = path.join(tree.base, 'outside');
    fs.mkdirSync(path.join(outside, 'b'), { recursive: true });
    fs.writeFileSync(path.join(outside, 'b', 'secret.log'), 'host data');
    tree.write('svc/0/a/b/seen.log');
    const { guard } = await startGuard(t, tree);
    await waitLinked(tree, 'svc/0/a/b/seen.log');
    // The path under test is the event path of a watched directory whose ancestor is now a
    // symlink. The swap's own events (on svc/0) would drop the directory first, so the test
    // drives that path directly: nothing the guard runs can interleave with these sync calls.
    type Node = { dirs: Map<string, Node> };
    const internals = guard as unknown as { root: Node; reconcileEntry(dir: Node, name: string, via: 'event'): unknown };
    const b = internals.root.dirs.get('svc')!.dirs.get('0')!.dirs.get('a')!.dirs.get('b')!;
    fs.renameSync(tree.at('svc/0/a'), tree.at('svc/0/a.old'));
    fs.symlinkSync(outside, tree.at('svc/0/a'));
    fs.writeFileSync(tree.at('svc/0/a.old/b/secret.log'), 'container data');
    // b's inotify watch reports secret.log; by its logical path that is now the host's file
    internals.reconcileEntry(b, 'secret.log', 'event');
    assert.equal(tree.target('svc/0/a/b/secret.log'), null, 'a file reached through the swapped parent was linked');
    // Once the guard has seen the swap: only the container's real files, nothing outside the root.
    await waitLinked(tree, 'svc/0/a.old/b/secret.log');
    await waitUnlinked(tree, 'svc/0/a/b/seen.log');
    await guard.reconcile('periodic');
    assertAllInsideRoot(tree);
    assert.deepEqual(tree.outNames(), [linkNameFor('svc/0/a.old/b/secret.log'), linkNameFor('svc/0/a.old/b/seen.log')].sort());
  });

  it('handles spaces, newlines, non-UTF-8 bytes, leading dashes and very long paths', async (t) => {
    const tree = makeTree(t);
    const { guard } = await startGuard(t, tree);
    const raw = (rel: string, ...tail: Buffer[]) => Buffer.concat([Buffer.from(rel), ...tail]);
    const long = Array.from({ length: 5 }, (_, i) => String(i).repeat(200)).join('/');
    const rels: Buffer[] = [
      raw('svc/0/my app.log'),
      raw('svc/0/line\nbreak.log'),
      raw('svc/0/', Buffer.from([0xff, 0xfe, 0x2e, 0x6c, 0x6f, 0x67])),
      raw('svc/0/-rf'),
      raw('-n'),
      raw('--help/x.log'),
      raw('svc/0/日志.log'),
      raw(`svc/0/${long}/app.log`),
      raw(`svc/0/${long.replace('2'.repeat(200), '7'.repeat(200))}/app.log`),
    ];
    for (const rel of rels) {
      const p = Buffer.concat([Buffer.from(tree.root + '/'), rel]);
      fs.mkdirSync(p.subarray(0, p.lastIndexOf(0x2f)), { recursive: true });
      fs.writeFileSync(p, 'odd\n');
    }
    for (const rel of rels) await waitLinked(tree, rel);
    const names = fs.readdirSync(tree.out, { encoding: 'buffer' }).map((b) => b.toString('latin1'));
    assert.equal(names.length, rels.length, 'one link per file, no collisions');
    for (const name of names) {
      assert.ok(name.length <= 255);
      assert.ok(!name.startsWith('-') && !name.startsWith('.'), name);
      assert.ok(!name.includes('\n'));
    }
    assert.ok(fs.existsSync(tree.linkFor(raw('svc/0/my app.log'))));
    assert.ok(names.includes(utf8Bytes('svc.0.line%0Abreak.log')));
    assert.ok(names.includes('svc.0.%FF%FE.log'));
    assert.ok(names.includes('%2Dn'));
    assert.equal(names.filter((n) => n.includes('%%')).length, 2, 'two hashed long names');
    for (const rel of rels) fs.unlinkSync(Buffer.concat([Buffer.from(tree.root + '/'), rel]));
    for (const rel of rels) await waitUnlinked(tree, rel);
    assert.equal(guard.status().links, 0);
  });
});

describe('kiver-guard: watch limit', () => {
  it('falls back to periodic scanning when its watch budget is used up', async (t) => {
    const tree = makeTree(t);
    tree.write('svc/0/a/b/c/app.log');
    const { guard, logs } = await startGuard(t, tree, { maxWatches: 2, pollIntervalMs: 50 });
    assert.equal(guard.status().watches, 2);
    assert.equal(guard.status().unwatchedDirectories, 4);
    assert.equal(guard.status().watchLimitReached, true);
    assert.equal(await metricValue(guard.registry, 'kiver_guard_watch_limit_reached'), 1);
    const err = logs.records.filter((r) => r.level === 'error');
    assert.equal(err.length, 1, 'logged once');
    assert.match(err[0]!.msg, /fs\.inotify\.max_user_watches/);
    assert.equal(tree.target('svc/0/a/b/c/app.log'), expectedTarget(tree, 'svc/0/a/b/c/app.log'));
    tree.write('svc/0/a/b/c/d/e/new.log');
    await waitLinked(tree, 'svc/0/a/b/c/d/e/new.log');
    fs.rmSync(tree.at('svc/0/a/b/c/d'), { recursive: true });
    await waitUnlinked(tree, 'svc/0/a/b/c/d/e/new.log');
    assert.ok((await metricValue(guard.registry, 'kiver_guard_rescans_total', { reason: 'poll' })) > 0);

    // freeing watches ends the episode: the gauge drops and new directories are watched again
    fs.rmSync(tree.at('svc'), { recursive: true });
    await waitFor(() => !guard.status().watchLimitReached && guard.status().unwatchedDirectories === 0, 'the limit episode to end');
    await waitFor(() => logs.records.some((r) => /inotify watch again/.test(r.msg)), 'the recovery to be logged');
    assert.equal(await metricValue(guard.registry, 'kiver_guard_watch_limit_reached'), 0);
    tree.write('next/0/x.log');
    await waitLinked(tree, 'next/0/x.log');
    assert.equal(guard.status().watches, 2, 'root and next/');
  });

  const canUnshare = spawnSync('unshare', ['-U', '-r', 'sh', '-c', 'echo 4 > /proc/sys/user/max_inotify_watches'], { stdio: 'ignore' }).status === 0;
  it('on the kernel limit (ENOSPC): names the sysctl, exposes it as a metric, keeps linking by scanning', async (t) => {
    assert.ok(canUnshare, 'this test needs user namespaces (unshare -U -r) to make a real ENOSPC without touching the host');
    const tree = makeTree(t);
    for (const rel of ['svc/0/a/b/c/1.log', 'svc/1/x/2.log']) tree.write(rel);
    // A user namespace with its own, tiny inotify watch limit: a real ENOSPC without touching the host's sysctl.
    const script = 'echo 4 > /proc/sys/user/max_inotify_watches && exec "$0" "$@"';
    const args = ['-U', '-r', 'sh', '-c', script, process.execPath, CLI, 'guard', '--root', tree.root, '--out', tree.out, '--poll-interval', '0.05', '--metrics-listen', '127.0.0.1:0', '--rescan-interval', '0'];
    const proc = spawnChild(t, 'unshare', args);
    const url: string = await waitFor(() => /metrics listening on (http:\/\/[^\s"]+)/.exec(proc.stderr())?.[1] ?? '', 'metrics URL', 10_000);
    await waitFor(() => /log guard started/.test(proc.stderr()), 'guard started', 10_000);
    assert.match(proc.stderr(), /fs\.inotify\.max_user_watches/);
    assert.match(proc.stderr(), /ENOSPC/);
    await waitLinked(tree, 'svc/0/a/b/c/1.log');
    await waitLinked(tree, 'svc/1/x/2.log');
    tree.write('svc/0/a/b/c/late.log');
    await waitLinked(tree, 'svc/0/a/b/c/late.log');
    const body = await (await fetch(url)).text();
    assert.match(body, /^kiver_guard_watch_limit_reached 1$/m);
    assert.match(body, /^kiver_guard_watches 4$/m);
    assert.match(body, /^kiver_guard_unwatched_directories [1-9]/m);
    assert.match(body, /^kiver_guard_links 3$/m);
    proc.child.kill('SIGTERM');
    assert.equal(await proc.exited, 0, 'clean exit on SIGTERM');
    assert.ok(tree.target('svc/0/a/b/c/late.log'), 'links stay after the guard stops');
  });
});

describe('kiver-guard: a real follower', () => {
  it('tail -F through the flat link receives lines from a file five directories deep, across rotation', async (t) => {
    const tree = makeTree(t);
    await startGuard(t, tree);
    const rel = 'app/0/var/log/nested/app.log'; // the file sits five directories below the root
    tree.write(rel, '');
    await waitLinked(tree, rel);
    // GNU tail polls symlinked names (it cannot use inotify through them); -s makes it poll every 50 ms
    const tail = spawnChild(t, 'tail', ['-F', '-s', '0.05', '-n', '+1', tree.linkFor(rel).toString()]);
    const file = tree.at(rel);
    for (let i = 1; i <= 3; i++) fs.appendFileSync(file, `before-${i}\n`);
    await waitFor(() => tail.stdout().includes('before-3\n'), 'tail to print the first lines');

    fs.renameSync(file, `${file}.1`); // logrotate's default: rename, then the app reopens its log
    fs.appendFileSync(`${file}.1`, 'late-to-rotated\n');
    fs.writeFileSync(file, '');
    for (let i = 1; i <= 3; i++) fs.appendFileSync(file, `after-${i}\n`);
    await waitFor(() => tail.stdout().includes('after-3\n'), 'tail to follow the new file after rotation');
    await waitLinked(tree, `${rel}.1`);
    assert.match(fs.readFileSync(tree.linkFor(`${rel}.1`), 'utf8'), /before-1\n[\s\S]*late-to-rotated\n/);
    const out = tail.stdout();
    assert.ok(out.indexOf('before-1') < out.indexOf('after-1'));
  });
});

describe('kiver guard (command)', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, 'guard', ...args], { encoding: 'utf8', timeout: 15_000 });

  it('documents its flags', () => {
    const r = run(['--help']);
    assert.equal(r.status, 0);
    for (const flag of ['--root', '--out', '--rescan-interval', '--poll-interval', '--max-watches', '--metrics-listen', '--once']) assert.ok(r.stdout.includes(flag), flag);
  });

  it('reconciles once and exits with --once; rejects bad input with one line and no stack', (t) => {
    const tree = makeTree(t);
    tree.write('svc/0/a/b/c/d/app.log');
    const r = run(['--root', tree.root, '--out', tree.out, '--once', '--log-level', 'warn']);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { links: 1, directories: 7, foreignEntries: 0 });
    assert.deepEqual(tree.outNames(), ['svc.0.a~b~c~d~app.log']);

    const bad = run(['--root', tree.root, '--out', tree.out, '--poll-interval', 'soon']);
    assert.equal(bad.status, 2, "exit code 2: bad input");
    assert.match(bad.stderr, /^kiver: --poll-interval must be a number/m);
    assert.doesNotMatch(bad.stderr, /\n\s+at /, 'no stack trace');
    const missing = run(['--root', path.join(tree.base, 'nope'), '--out', tree.out, '--once']);
    assert.equal(missing.status, 2, "exit code 2: bad input");
    assert.match(missing.stderr, /log root .* does not exist/);
    const inside = run(['--root', tree.root, '--out', tree.at('svc/0/flat'), '--once']);
    assert.equal(inside.status, 2, "exit code 2: bad input");
    assert.ok(!fs.existsSync(tree.at('svc/0/flat')), 'nothing created in a container directory');
  });
});
