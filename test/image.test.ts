/**
 * `kiver image build busybox` against the real dockerd: a cold build from the apt
 * mirror into a fresh cache dir, a container from it, a cache hit, and a rebuild
 * that gives the identical image (reproducible). Debian-based images are too slow
 * for the suite; they share every step after "unpack".
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type Docker from 'dockerode';
import { buildImage, listImages, type BuildProgress } from '../src/image/build.js';
import { getRecipe, recipeNames } from '../src/image/catalog.js';
import { InputError, UnavailableError } from '../src/errors.js';
import { ensureDocker, removeContainersByLabel, runContainer } from './harness/docker.js';

const LABEL = 'kiver.test=image';

describe('kiver image build busybox', () => {
  let docker: Docker;
  const dirs: string[] = [];
  const tmp = () => {
    const d = mkdtempSync(join(tmpdir(), 'kiver-image-test-'));
    dirs.push(d);
    return d;
  };

  before(async () => {
    docker = await ensureDocker();
  });
  after(async () => {
    if (docker) await removeContainersByLabel(docker, LABEL);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  let first: Awaited<ReturnType<typeof buildImage>>;
  let cacheDir: string;

  it('builds from the apt mirror with one progress line per phase', async () => {
    const events: BuildProgress[] = [];
    // force: Docker may already have it (CI builds it before the tests).
    cacheDir = tmp();
    first = await buildImage('busybox', { docker, cacheDir, force: true, onProgress: (p) => events.push(p) });
    assert.equal(first.cached, false);
    assert.match(first.ref, /^kiver\/busybox:1\.\d+\.\d+-[0-9a-f]{12}$/);
    assert.equal(first.latestRef, 'kiver/busybox:latest');
    assert.match(first.packages['busybox-static'], /^1:1\./);
    const ended = events.filter((e) => e.state === 'end').map((e) => e.phase);
    assert.deepEqual(ended, ['resolve', 'download', 'unpack', 'tar', 'import']);
    for (const e of events.filter((x) => x.state === 'end')) assert.equal(typeof e.phaseMs, 'number');
    assert.ok(first.durationMs < 30_000, `busybox should build in seconds, took ${first.durationMs} ms`);

    const img = await docker.getImage(first.ref).inspect();
    assert.equal(img.Id, first.imageId);
    assert.equal(img.Config.Labels['kiver.image'], 'busybox');
    assert.equal(img.Config.Labels['kiver.image.recipe'], first.key);
    assert.deepEqual(img.Config.Cmd, ['sh']);
    const latest = await docker.getImage(first.latestRef).inspect();
    assert.equal(latest.Id, first.imageId);
  });

  it('runs sh -c "echo ok" in a container from it', async () => {
    const r = await runContainer(docker, first.ref, ['sh', '-c', 'echo ok; test -d /data && test -d /log && test -w /tmp && echo dirs'], {
      labels: { 'kiver.test': 'image' },
    });
    assert.equal(r.exitCode, 0, r.stderr);
    assert.equal(r.stdout, 'ok\ndirs\n');
  });

  it('is a cache hit the second time, without building anything', async () => {
    const events: BuildProgress[] = [];
    const again = await buildImage('busybox', { docker, cacheDir, onProgress: (p) => events.push(p) });
    assert.equal(again.cached, true);
    assert.equal(again.ref, first.ref);
    assert.equal(again.imageId, first.imageId);
    assert.ok(events.some((e) => e.phase === 'cached'));
    assert.ok(!events.some((e) => ['download', 'unpack', 'tar', 'import'].includes(e.phase)), 'nothing rebuilt');
  });

  it('rebuilds reproducibly: same layer and image ID from a fresh cache', async () => {
    const again = await buildImage('busybox', { docker, cacheDir: tmp(), force: true });
    assert.equal(again.cached, false);
    assert.equal(again.imageId, first.imageId);
    assert.equal(again.key, first.key);
  });

  it('lists it in kiver image ls', async () => {
    const imgs = await listImages(docker);
    const bb = imgs.find((i) => i.id === first.imageId);
    assert.ok(bb, 'busybox listed');
    assert.equal(bb.repo, 'kiver/busybox');
    assert.ok(bb.latest);
    assert.ok(bb.tags.includes(first.tag));
    assert.match(bb.packages, /^busybox-static=1:1\./);
  });

  it('rejects unknown names listing the known ones', async () => {
    await assert.rejects(buildImage('nginx', { docker }), (err: Error) => {
      assert.ok(err instanceof InputError);
      for (const n of recipeNames()) assert.ok(err.message.includes(n), err.message);
      return true;
    });
    assert.equal(getRecipe('kiver/redis').name, 'redis');
  });

  it('says how to start dockerd when Docker is unreachable', async () => {
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${join(tmp(), 'no-docker.sock')}`;
    try {
      await assert.rejects(buildImage('busybox'), (err: Error) => {
        assert.ok(err instanceof UnavailableError);
        assert.match(err.message, /not reachable/);
        assert.match(err.message, /dockerd/);
        return true;
      });
    } finally {
      if (saved === undefined) delete process.env.DOCKER_HOST;
      else process.env.DOCKER_HOST = saved;
    }
  });
});
