/**
 * The web portal is served without a token (it holds no data), with a strict
 * content security policy, and its script is valid JavaScript that only talks to /v1.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import vm from 'node:vm';
import { KiverServer } from '../src/server/server.js';
import { createLogger } from '../src/log.js';

describe('web portal', () => {
  let dir: string;
  let server: KiverServer;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kiver-portal-'));
    server = await KiverServer.start({ dataDir: dir, listen: '127.0.0.1:0', log: createLogger('test', 'silent') });
  });
  after(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the page and script without a token, and no data without one', async () => {
    const root = await fetch(`${server.url}/`, { redirect: 'manual' });
    assert.equal(root.status, 302);
    assert.equal(root.headers.get('location'), '/ui/');
    const page = await fetch(`${server.url}/ui/`);
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-type')!, /text\/html/);
    assert.match(page.headers.get('content-security-policy')!, /default-src 'self'/);
    const html = await page.text();
    assert.match(html, /<script src="\/ui\/app.js"><\/script>/);
    assert.doesNotMatch(html, /<script>/, 'no inline script (CSP)');
    const js = await (await fetch(`${server.url}/ui/app.js`)).text();
    assert.doesNotThrow(() => new vm.Script(js), 'the script parses');
    assert.doesNotMatch(js, /innerHTML/, 'values are inserted as text');
    assert.equal((await fetch(`${server.url}/v1/services`)).status, 401);
  });
});
