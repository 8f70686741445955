/** GET over HTTPS with explicit TLS material (a member's CA, maybe a client certificate): the body, or a rejection. */
import { request } from 'node:https';

export function httpsGet(url: string, tls: { ca: Buffer; cert?: Buffer; key?: Buffer }): Promise<string> {
  return new Promise((res, rej) => {
    // servername localhost: members are dialled by IP and their certificates name localhost too (no IP as SNI).
    const req = request(url, { ...tls, servername: 'localhost', timeout: 5000 }, (r) => {
      let b = '';
      r.on('data', (d) => (b += d));
      r.on('end', () => res(b));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', rej);
    req.end();
  });
}
