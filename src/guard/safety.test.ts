import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { InputError } from '../errors.js';
import { linkNameFor } from './link-name.js';
import { checkOutDir, entryKind, isGuardLink, isLinkable, relInsideRoot, targetRel } from './safety.js';

describe('entry kinds: only regular files are linkable', () => {
  let dir = '';
  let server: net.Server | null = null;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kiver-guard-safety-'));
    fs.writeFileSync(path.join(dir, 'file'), 'x');
    fs.mkdirSync(path.join(dir, 'dir'));
    fs.symlinkSync('/etc/passwd', path.join(dir, 'link-to-file'));
    fs.symlinkSync('/', path.join(dir, 'link-to-root'));
    fs.symlinkSync('missing', path.join(dir, 'dangling'));
    assert.equal(spawnSync('mkfifo', [path.join(dir, 'fifo')]).status, 0, 'mkfifo');
    server = net.createServer();
    await new Promise<void>((resolve) => server!.listen(path.join(dir, 'sock'), resolve));
  });
  after(async () => {
    await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('classifies with lstat, never following links', () => {
    const kind = (n: string) => entryKind(fs.lstatSync(path.join(dir, n)));
    assert.equal(kind('file'), 'file');
    assert.equal(kind('dir'), 'directory');
    assert.equal(kind('link-to-file'), 'symlink');
    assert.equal(kind('link-to-root'), 'symlink');
    assert.equal(kind('dangling'), 'symlink');
    assert.equal(kind('fifo'), 'fifo');
    assert.equal(kind('sock'), 'socket');
    assert.equal(entryKind(fs.lstatSync('/dev/null')), 'device');
  });

  it('classifies readdir entries the same way', () => {
    const kinds = Object.fromEntries(fs.readdirSync(dir, { withFileTypes: true }).map((d) => [d.name, entryKind(d)]));
    assert.deepEqual(kinds, {
      file: 'file',
      dir: 'directory',
      'link-to-file': 'symlink',
      'link-to-root': 'symlink',
      dangling: 'symlink',
      fifo: 'fifo',
      sock: 'socket',
    });
  });

  it('links nothing but regular files', () => {
    for (const k of ['directory', 'symlink', 'fifo', 'socket', 'device', 'unknown'] as const) assert.equal(isLinkable(k), false, k);
    assert.equal(isLinkable('file'), true);
  });
});

describe('relInsideRoot', () => {
  it('accepts only normal paths strictly inside the root', () => {
    assert.equal(relInsideRoot('/app/log/svc/0/a.log', '/app/log'), 'svc/0/a.log');
    assert.equal(relInsideRoot('/app/logs/x', '/app/log'), null, 'sibling with a common prefix');
    assert.equal(relInsideRoot('/app/log', '/app/log'), null, 'the root itself');
    assert.equal(relInsideRoot('/app/log/', '/app/log'), null);
    assert.equal(relInsideRoot('/app/log/../../etc/shadow', '/app/log'), null);
    assert.equal(relInsideRoot('/app/log/svc//x', '/app/log'), null);
    assert.equal(relInsideRoot('/app/log/./x', '/app/log'), null);
    assert.equal(relInsideRoot('svc/0/x', '/app/log'), null, 'relative target');
    assert.equal(relInsideRoot('/etc/x', '/'), 'etc/x');
  });
});

describe('isGuardLink: what the guard may delete', () => {
  const root = '/app/log';
  it('is true only for the name the guard computes for a target inside the root', () => {
    assert.equal(isGuardLink(linkNameFor('svc/0/a.log'), '/app/log/svc/0/a.log', root), true);
    assert.equal(isGuardLink('svc.0.a.log', '/app/log/svc/0/b.log', root), false, 'name of another file');
    assert.equal(isGuardLink('svc.0.a.log', '/elsewhere/svc/0/a.log', root), false, 'target outside the root');
    assert.equal(isGuardLink('svc.0.a.log', '../log/svc/0/a.log', root), false, 'relative target');
    assert.equal(isGuardLink('my-notes', '/app/log/my-notes/x', root), false);
    assert.equal(isGuardLink('x', '/app/log/../x', root), false);
  });
});

describe('targetRel: relative targets only from a flat directory directly under the root', () => {
  it('reads ../<rel> when the flat directory is a child of the root, absolute targets always', () => {
    assert.equal(targetRel('../svc/0/a.log', '/app/log', true), 'svc/0/a.log');
    assert.equal(targetRel('../svc/0/a.log', '/app/log', false), null);
    assert.equal(targetRel('../../etc/shadow', '/app/log', true), null);
    assert.equal(targetRel('svc/0/a.log', '/app/log', true), null);
    assert.equal(targetRel('/app/log/svc/0/a.log', '/app/log', true), 'svc/0/a.log');
    assert.equal(isGuardLink('svc.0.a.log', '../svc/0/a.log', '/app/log', { outUnderRoot: true }), true);
    assert.equal(isGuardLink('svc.0.a.log', '../svc/0/a.log', '/app/log'), false);
  });
});

describe('checkOutDir', () => {
  it('allows the flat directory outside the root or directly under it', () => {
    assert.equal(checkOutDir('/app/log', '/var/lib/shipper/flat'), null);
    assert.equal(checkOutDir('/app/log', '/app/logs-flat'), null);
    assert.equal(checkOutDir('/app/log', '/app/log/.shipper'), '.shipper');
  });
  it('refuses the root itself, a parent of the root, or a place inside a container directory', () => {
    assert.throws(() => checkOutDir('/app/log', '/app/log'), InputError);
    assert.throws(() => checkOutDir('/app/log', '/app'), InputError);
    assert.throws(() => checkOutDir('/app/log', '/'), InputError);
    assert.throws(() => checkOutDir('/app/log', '/app/log/svc/0/flat'), /put it outside the root or directly under it/);
  });
});
