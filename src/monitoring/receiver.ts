/**
 * Kiver's receiver for Alertmanager's webhook: each alert group notification becomes
 * an e-mail (SMTP, nodemailer) and an SMS (an HTTP gateway, request from a template),
 * retried with exponential backoff, de-duplicated across receivers and Alertmanager
 * peers, and recorded in Kiver (`kiver alerts ls`).
 *
 * De-duplication: a notification's id is a hash of channel, group key, status and the
 * alerts (fingerprint + start); before sending, the receiver claims that id in Kiver's
 * store (create-only), so whichever peer or receiver claims first sends and the others
 * drop it. Alertmanager's own cluster already suppresses most duplicates; this covers
 * the race between peers and a second receiver.
 */
import { createHash } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { readFileSync } from 'node:fs';
import { Type, type Static } from '@sinclair/typebox';
import { Ajv } from 'ajv';
import { ExponentialBackoff, handleAll, retry } from 'cockatiel';
import nodemailer from 'nodemailer';
import type { ApiClient } from '../client/api-client.js';
import { ConflictError, InputError } from '../errors.js';
import type { Logger } from '../log.js';
import type { AlertRecordCreate } from '../model/monitoring.js';

const Recipients = Type.Array(Type.String({ minLength: 1, maxLength: 200 }), { minItems: 1, maxItems: 100 });

export const NotifyConfig = Type.Object(
  {
    email: Type.Optional(Type.Object(
      {
        smtp: Type.Object(
          {
            host: Type.String({ minLength: 1, maxLength: 255 }),
            port: Type.Integer({ minimum: 1, maximum: 65535 }),
            secure: Type.Optional(Type.Boolean({ description: 'TLS from the start (port 465); otherwise STARTTLS when offered' })),
            user: Type.Optional(Type.String({ maxLength: 255 })),
            passwordFile: Type.Optional(Type.String({ maxLength: 4096, description: 'file holding the SMTP password (never in this file)' })),
          },
          { additionalProperties: false },
        ),
        from: Type.String({ minLength: 3, maxLength: 255 }),
        to: Recipients,
      },
      { additionalProperties: false },
    )),
    sms: Type.Optional(Type.Object(
      {
        url: Type.String({ pattern: '^https?://', maxLength: 2000 }),
        method: Type.Optional(Type.Union([Type.Literal('POST'), Type.Literal('PUT'), Type.Literal('GET')])),
        headers: Type.Optional(Type.Record(Type.String({ pattern: '^[A-Za-z0-9-]{1,64}$' }), Type.String({ maxLength: 1000 }))),
        /** Request body with {{to}} and {{message}}; values are escaped per `encoding`. */
        body: Type.Optional(Type.String({ maxLength: 10_000 })),
        encoding: Type.Optional(Type.Union([Type.Literal('json'), Type.Literal('form')], { description: 'how {{to}}/{{message}} are escaped in body (json: JSON string content; form: URL-encoded)' })),
        to: Recipients,
        /** SMS are short: the message is cut to this many characters. */
        maxLength: Type.Optional(Type.Integer({ minimum: 10, maximum: 2000 })),
      },
      { additionalProperties: false },
    )),
    retry: Type.Optional(Type.Object(
      {
        attempts: Type.Integer({ minimum: 1, maximum: 20 }),
        initialDelayMs: Type.Integer({ minimum: 1, maximum: 600_000 }),
        maxDelayMs: Type.Integer({ minimum: 1, maximum: 3_600_000 }),
      },
      { additionalProperties: false },
    )),
  },
  { additionalProperties: false },
);
export type NotifyConfig = Static<typeof NotifyConfig>;

const validate = new Ajv({ allErrors: false, strict: false }).compile(NotifyConfig);

/** Checks a parsed notification config; InputError naming the field. */
export function checkNotifyConfig(v: unknown): NotifyConfig {
  if (!validate(v)) {
    const e = validate.errors![0];
    const field = e.instancePath.replace(/^\//, '').replaceAll('/', '.') || (e.params as { additionalProperty?: string }).additionalProperty || 'config';
    throw new InputError(`notification config: ${field} ${e.message}`, field);
  }
  return v;
}

/** The parts of Alertmanager's webhook payload (version 4) the receiver uses. */
export interface WebhookPayload {
  version: string;
  groupKey: string;
  status: 'firing' | 'resolved';
  groupLabels: Record<string, string>;
  commonLabels: Record<string, string>;
  commonAnnotations: Record<string, string>;
  alerts: { status: string; labels: Record<string, string>; annotations: Record<string, string>; startsAt: string; fingerprint: string }[];
}

export function notificationId(channel: string, p: WebhookPayload): string {
  const alerts = p.alerts.map((a) => `${a.fingerprint}@${a.startsAt}`).sort().join(',');
  return createHash('sha256').update(`${channel}\n${p.groupKey}\n${p.status}\n${alerts}`).digest('hex').slice(0, 32);
}

export function messageOf(p: WebhookPayload): { subject: string; text: string } {
  const name = p.commonLabels.alertname ?? p.groupLabels.alertname ?? 'alert';
  const what = p.commonAnnotations.summary ?? p.alerts.map((a) => a.annotations.summary ?? a.labels.alertname).join('; ');
  const subject = `[${p.status.toUpperCase()}${p.status === 'firing' ? `:${p.alerts.length}` : ''}] ${name}: ${what}`;
  const lines = p.alerts.map((a) => `- ${a.status} ${a.labels.alertname}: ${a.annotations.summary ?? ''} (${Object.entries(a.labels).map(([k, v]) => `${k}=${v}`).join(', ')}) since ${a.startsAt}`);
  return { subject, text: `${subject}\n\n${lines.join('\n')}\n` };
}

/** Fills {{to}} and {{message}} in the SMS request template. */
export function renderTemplate(tpl: string, vars: Record<string, string>, encoding: 'json' | 'form' | undefined): string {
  const esc = (s: string) => (encoding === 'json' ? JSON.stringify(s).slice(1, -1) : encoding === 'form' ? encodeURIComponent(s) : s);
  return tpl.replace(/\{\{\s*(to|message)\s*\}\}/g, (_, k: string) => esc(vars[k] ?? ''));
}

export interface ReceiverOptions {
  config: NotifyConfig;
  /** Kiver's API: claims (de-duplication) and records. */
  api: ApiClient;
  log: Logger;
}

export class AlertReceiver {
  private server?: Server;
  private readonly mailer?: nodemailer.Transporter;
  /** Sends in flight, so stop() can wait for them. */
  private readonly inflight = new Set<Promise<void>>();

  constructor(private readonly opts: ReceiverOptions) {
    const e = opts.config.email;
    if (e) {
      const pass = e.smtp.passwordFile ? readFileSync(e.smtp.passwordFile, 'utf8').trim() : undefined;
      this.mailer = nodemailer.createTransport({
        host: e.smtp.host, port: e.smtp.port, secure: e.smtp.secure ?? false,
        ...(e.smtp.user ? { auth: { user: e.smtp.user, pass } } : {}),
        connectionTimeout: 10_000, greetingTimeout: 10_000, socketTimeout: 20_000,
      });
    }
  }

  /** Listens for Alertmanager's webhook at POST /alerts; resolves with the port. */
  async listen(host: string, port: number): Promise<number> {
    this.server = createServer((req, res) => {
      if (req.method !== 'POST' || req.url !== '/alerts') return void res.writeHead(404).end();
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (d: string) => {
        body += d;
        if (body.length > 4 * 1024 * 1024) req.destroy();
      });
      req.on('end', () => {
        let p: WebhookPayload;
        try {
          p = JSON.parse(body) as WebhookPayload;
          if (!p.groupKey || !Array.isArray(p.alerts)) throw new Error('not an Alertmanager webhook payload');
        } catch (err) {
          return void res.writeHead(400).end((err as Error).message);
        }
        // Answer at once: Alertmanager retries on its own timeout; our retries are ours.
        res.writeHead(200).end();
        const t = this.handle(p).finally(() => this.inflight.delete(t));
        this.inflight.add(t);
      });
    });
    await new Promise<void>((ok, fail) => this.server!.once('error', fail).listen(port, host, () => ok()));
    const a = this.server.address();
    return typeof a === 'object' && a ? a.port : port;
  }

  async stop(): Promise<void> {
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await Promise.allSettled([...this.inflight]);
    this.mailer?.close();
  }

  async handle(p: WebhookPayload): Promise<void> {
    const { config } = this.opts;
    const msg = messageOf(p);
    const jobs: Promise<void>[] = [];
    if (config.email && this.mailer) {
      const e = config.email;
      jobs.push(this.deliver('email', p, e.to, msg.subject, async () => {
        await this.mailer!.sendMail({ from: e.from, to: e.to.join(', '), subject: msg.subject, text: msg.text });
      }));
    }
    if (config.sms) {
      const s = config.sms;
      const text = msg.subject.slice(0, s.maxLength ?? 160);
      jobs.push(this.deliver('sms', p, s.to, msg.subject, async () => {
        for (const to of s.to) {
          const method = s.method ?? 'POST';
          const url = renderTemplate(s.url, { to, message: text }, 'form');
          const res = await fetch(url, {
            method, headers: s.headers ?? {}, signal: AbortSignal.timeout(10_000),
            ...(method === 'GET' ? {} : { body: renderTemplate(s.body ?? '{{message}}', { to, message: text }, s.encoding) }),
          });
          if (!res.ok) throw new Error(`SMS gateway answered HTTP ${res.status} for ${to}`);
        }
      }));
    }
    await Promise.all(jobs);
  }

  /** Claim (de-duplicate), send with retries and backoff, record the outcome. */
  private async deliver(channel: 'email' | 'sms', p: WebhookPayload, recipients: string[], summary: string, send: () => Promise<void>): Promise<void> {
    const { api, log } = this.opts;
    const id = notificationId(channel, p);
    const claim: AlertRecordCreate = {
      id, channel, status: p.status, alertname: (p.commonLabels.alertname ?? p.groupLabels.alertname ?? 'alert').slice(0, 200),
      summary: summary.slice(0, 2000), recipients,
    };
    try {
      await api.post('/v1/alerts', claim);
    } catch (err) {
      if (err instanceof ConflictError) {
        log.info({ id, channel }, 'notification already sent by a peer; dropping the duplicate');
        return;
      }
      // Kiver unreachable: better a possible duplicate than a lost alert.
      log.warn({ id, channel, err: (err as Error).message }, 'could not record the notification claim; sending anyway');
    }
    const r = this.opts.config.retry ?? { attempts: 5, initialDelayMs: 1000, maxDelayMs: 30_000 };
    const policy = retry(handleAll, { maxAttempts: r.attempts - 1, backoff: new ExponentialBackoff({ initialDelay: r.initialDelayMs, maxDelay: r.maxDelayMs }) });
    let attempts = 0;
    let result: { state: 'sent' | 'failed'; attempts: number; error?: string };
    try {
      await policy.execute(async () => {
        attempts++;
        await send();
      });
      result = { state: 'sent', attempts };
      log.info({ id, channel, attempts }, 'notification sent');
    } catch (err) {
      result = { state: 'failed', attempts, error: (err as Error).message.slice(0, 2000) };
      log.warn({ id, channel, attempts, err: (err as Error).message }, 'notification failed');
    }
    await api.put(`/v1/alerts/${id}`, result).catch((err) => log.warn({ id, err: (err as Error).message }, 'could not record the notification result'));
  }
}
