import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { once } from 'node:events';
import { TcpProxy } from './endpoint-proxy.js';
import type { Addr } from './types.js';

/** A server that answers every line with its own name. */
async function namedServer(name: string): Promise<{ server: net.Server; addr: Addr }> {
  const server = net.createServer((s) => s.on('data', () => s.write(`${name}\n`)).on('error', () => {}));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, addr: { host: '127.0.0.1', port: (server.address() as net.AddressInfo).port } };
}

async function ask(port: number): Promise<{ sock: net.Socket; answer: string }> {
  const sock = net.connect(port, '127.0.0.1');
  sock.write('who\n');
  const [d] = await once(sock, 'data');
  return { sock, answer: String(d).trim() };
}

describe('endpoint proxy', () => {
  const closers: (() => unknown)[] = [];
  after(async () => {
    for (const c of closers) await c();
  });

  it('follows the target; connections made to the old one are closed; without a target new clients wait', { timeout: 10_000 }, async () => {
    const a = await namedServer('a');
    const b = await namedServer('b');
    let target: Addr | undefined = a.addr;
    const proxy = new TcpProxy(() => target, { holdMs: 5_000 });
    await proxy.listen('127.0.0.1', 0);
    closers.push(() => proxy.close(), () => a.server.close(), () => b.server.close());
    proxy.retarget('1/a');
    const first = await ask(proxy.port);
    assert.equal(first.answer, 'a');

    // A failover: no primary for a moment. The old connection is cut; a new client waits.
    target = undefined;
    proxy.retarget(undefined);
    await once(first.sock, 'close');
    const waiting = ask(proxy.port);
    await new Promise((r) => setTimeout(r, 200));
    target = b.addr;
    proxy.retarget('2/b');
    const second = await waiting;
    assert.equal(second.answer, 'b');
    second.sock.destroy();
  });
});
