/**
 * Sinks that record what notifications reach them: a minimal SMTP server (enough of
 * RFC 5321 for nodemailer: EHLO, MAIL, RCPT, DATA, QUIT; no TLS offered) and an HTTP
 * server for an SMS gateway. Both on loopback, on a free port.
 */
import { createServer as createTcp, type Server as TcpServer } from 'node:net';
import { createServer as createHttp, type Server as HttpServer } from 'node:http';

export interface Mail {
  from: string;
  to: string[];
  data: string;
  subject: string;
}

export class SmtpSink {
  readonly mails: Mail[] = [];
  port = 0;
  private server?: TcpServer;

  async start(): Promise<void> {
    this.server = createTcp((sock) => {
      sock.setEncoding('utf8');
      let buf = '';
      let inData = false;
      let cur: Mail = { from: '', to: [], data: '', subject: '' };
      const reply = (s: string) => sock.write(`${s}\r\n`);
      reply('220 kiver-test-smtp ready');
      sock.on('data', (chunk: string) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\r\n')) >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 2);
          if (inData) {
            if (line === '.') {
              inData = false;
              // Headers may be folded over lines (RFC 5322): unfold before reading the subject.
              const headers = cur.data.split('\n\n')[0].replace(/\n[ \t]+/g, ' ');
              cur.subject = /^Subject: (.*)$/im.exec(headers)?.[1] ?? '';
              this.mails.push(cur);
              cur = { from: '', to: [], data: '', subject: '' };
              reply('250 queued');
            } else cur.data += `${line.startsWith('..') ? line.slice(1) : line}\n`;
            continue;
          }
          const cmd = line.slice(0, 4).toUpperCase();
          if (cmd === 'EHLO' || cmd === 'HELO') reply('250 kiver-test-smtp');
          else if (cmd === 'MAIL') { cur.from = line; reply('250 ok'); }
          else if (cmd === 'RCPT') { cur.to.push(/<([^>]*)>/.exec(line)?.[1] ?? line); reply('250 ok'); }
          else if (cmd === 'DATA') { inData = true; reply('354 go ahead'); }
          else if (cmd === 'QUIT') { reply('221 bye'); sock.end(); }
          else if (cmd === 'RSET' || cmd === 'NOOP') reply('250 ok');
          else reply('502 not implemented');
        }
      });
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}

export class HttpSink {
  readonly requests: { method: string; url: string; headers: Record<string, string | string[] | undefined>; body: string }[] = [];
  port = 0;
  /** Answer this many requests with 503 first (to see retries). */
  failFirst = 0;
  private server?: HttpServer;

  async start(): Promise<void> {
    this.server = createHttp((req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => (body += d));
      req.on('end', () => {
        if (this.failFirst > 0) {
          this.failFirst--;
          return void res.writeHead(503).end();
        }
        this.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
        res.writeHead(200).end('{"ok":true}');
      });
    });
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
  }

  async stop(): Promise<void> {
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
  }
}
