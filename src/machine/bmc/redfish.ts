/**
 * Redfish (DMTF DSP0266) BMC driver: `ComputerSystem.Reset`, a one-time
 * `BootSourceOverrideTarget: Pxe`, and NIC MACs from `EthernetInterfaces`.
 *
 * Uses node:http/https rather than fetch so that a BMC's self-signed certificate can
 * be accepted per driver (`insecure` or a pinned `ca`) without touching the process's
 * global TLS settings. HTTP Basic authentication on every request (no session to leak).
 */
import http from 'node:http';
import https from 'node:https';
import { normalizeMac } from '../inventory-validate.js';
import { BmcAuthError, BmcCommandError, BmcUnreachableError, BmcUnsupportedError } from '../errors.js';
import type { BmcDriver, BmcDriverOptions, PowerState } from './driver.js';

export interface RedfishOptions extends BmcDriverOptions {
  address: string;
  port?: number;
  user: string;
  password: string;
  /** `https` (default) or `http` (lab simulators). */
  scheme?: 'http' | 'https';
  /** Accept any TLS certificate (typical factory-default BMC certificates). */
  insecure?: boolean;
  /** A PEM CA/certificate to trust instead. */
  ca?: string;
  /** `@odata.id` of the ComputerSystem; default: the first member of /redfish/v1/Systems. */
  systemPath?: string;
}

interface Resp {
  status: number;
  body: unknown;
}

type Json = Record<string, unknown>;

export class RedfishDriver implements BmcDriver {
  private systemPath?: string;
  private readonly target: string;

  constructor(private readonly opts: RedfishOptions) {
    this.systemPath = opts.systemPath;
    this.target = `${opts.address}${opts.port ? `:${opts.port}` : ''}`;
  }

  private requestOnce(method: string, path: string, body?: unknown): Promise<Resp> {
    const o = this.opts;
    const scheme = o.scheme ?? 'https';
    const lib = scheme === 'https' ? https : http;
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const auth = Buffer.from(`${o.user}:${o.password}`).toString('base64');
    const timeoutMs = o.timeoutMs ?? 15_000;
    return new Promise<Resp>((resolve, reject) => {
      const req = lib.request(
        {
          method,
          host: o.address.replace(/^\[|\]$/g, ''),
          port: o.port ?? (scheme === 'https' ? 443 : 80),
          path,
          headers: {
            Authorization: `Basic ${auth}`,
            Accept: 'application/json',
            'OData-Version': '4.0',
            ...(payload ? { 'Content-Type': 'application/json', 'Content-Length': payload.length } : {}),
          },
          ...(scheme === 'https' ? { rejectUnauthorized: !o.insecure, ...(o.ca ? { ca: o.ca } : {}) } : {}),
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(timer);
            const text = Buffer.concat(chunks).toString('utf8');
            let parsed: unknown = undefined;
            try { parsed = text ? JSON.parse(text) : undefined; } catch { parsed = text; }
            resolve({ status: res.statusCode ?? 0, body: parsed });
          });
          res.on('error', (e) => { clearTimeout(timer); reject(e); });
        },
      );
      const timer = setTimeout(() => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })), timeoutMs);
      req.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(err);
      });
      if (payload) req.write(payload);
      req.end();
    });
  }

  private async request(method: string, path: string, what: string, body?: unknown): Promise<Resp> {
    const attempts = 1 + (this.opts.retries ?? 1);
    let last: Error | undefined;
    for (let i = 0; i < attempts; i++) {
      try {
        const r = await this.requestOnce(method, path, body);
        if (r.status === 401 || r.status === 403) throw new BmcAuthError(`BMC ${this.target} refused the user name or password (${what}, HTTP ${r.status})`);
        if (r.status === 404 || r.status === 405 || r.status === 501) throw new BmcUnsupportedError(`BMC ${this.target} does not support ${what} (HTTP ${r.status} for ${method} ${path})`);
        if (r.status >= 400) throw new BmcCommandError(`BMC ${this.target}: ${what} failed: HTTP ${r.status}${redfishMessage(r.body)}`);
        return r;
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        if (e instanceof BmcAuthError || e instanceof BmcUnsupportedError || e instanceof BmcCommandError) throw e;
        last = new BmcUnreachableError(`BMC ${this.target} is unreachable (${what}): ${e.code === 'ETIMEDOUT' ? 'timed out' : e.code ?? e.message}`);
        // A write that timed out may have been applied: only retry reads and connection refusals.
        if (method !== 'GET' && e.code !== 'ECONNREFUSED') break;
      }
    }
    throw last!;
  }

  private async system(): Promise<{ path: string; body: Json }> {
    if (!this.systemPath) {
      const r = await this.request('GET', '/redfish/v1/Systems', 'list systems');
      const members = ((r.body as Json)?.Members ?? []) as Json[];
      const first = members[0]?.['@odata.id'];
      if (typeof first !== 'string') throw new BmcUnsupportedError(`BMC ${this.target} lists no ComputerSystem`);
      this.systemPath = first;
    }
    const r = await this.request('GET', this.systemPath, 'read system');
    return { path: this.systemPath, body: r.body as Json };
  }

  async powerStatus(): Promise<PowerState> {
    const { body } = await this.system();
    const s = String(body.PowerState ?? '');
    if (s === 'On' || s === 'PoweringOff') return 'on';
    if (s === 'Off' || s === 'PoweringOn') return 'off';
    throw new BmcCommandError(`BMC ${this.target}: unknown PowerState "${s}"`);
  }

  private async reset(preferred: string[], what: string): Promise<void> {
    const { path, body } = await this.system();
    const action = ((body.Actions ?? {}) as Json)['#ComputerSystem.Reset'] as Json | undefined;
    const target = typeof action?.target === 'string' ? action.target : `${path.replace(/\/$/, '')}/Actions/ComputerSystem.Reset`;
    const allowed = action?.['ResetType@Redfish.AllowableValues'] as string[] | undefined;
    const type = allowed ? preferred.find((t) => allowed.includes(t)) : preferred[0];
    if (!type) throw new BmcUnsupportedError(`BMC ${this.target} does not allow ${preferred.join('/')} (${what}); allowed: ${allowed!.join(', ')}`);
    await this.request('POST', target, what, { ResetType: type });
  }

  powerOn(): Promise<void> {
    return this.reset(['On'], 'power on');
  }

  powerOff(): Promise<void> {
    return this.reset(['ForceOff'], 'power off');
  }

  powerReset(): Promise<void> {
    return this.reset(['ForceRestart', 'PowerCycle'], 'power reset');
  }

  async bootPxeOnce(): Promise<void> {
    const { path, body } = await this.system();
    const boot = (body.Boot ?? {}) as Json;
    const targets = boot['BootSourceOverrideTarget@Redfish.AllowableValues'] as string[] | undefined;
    if (targets && !targets.includes('Pxe')) throw new BmcUnsupportedError(`BMC ${this.target} cannot override the boot source to Pxe`);
    await this.request('PATCH', path, 'one-time PXE boot', { Boot: { BootSourceOverrideEnabled: 'Once', BootSourceOverrideTarget: 'Pxe' } });
  }

  async readMacs(): Promise<string[]> {
    const { body } = await this.system();
    const link = ((body.EthernetInterfaces ?? {}) as Json)['@odata.id'];
    if (typeof link !== 'string') throw new BmcUnsupportedError(`BMC ${this.target} lists no EthernetInterfaces for the system`);
    const coll = (await this.request('GET', link, 'list NICs')).body as Json;
    const macs: string[] = [];
    for (const m of (coll.Members ?? []) as Json[]) {
      const id = m['@odata.id'];
      if (typeof id !== 'string') continue;
      const nic = (await this.request('GET', id, 'read NIC')).body as Json;
      const raw = (nic.PermanentMACAddress ?? nic.MACAddress) as string | undefined;
      const mac = raw ? normalizeMac(raw) : undefined;
      if (mac && !macs.includes(mac)) macs.push(mac);
    }
    if (macs.length === 0) throw new BmcUnsupportedError(`BMC ${this.target} reports no NIC MAC address`);
    return macs;
  }
}

function redfishMessage(body: unknown): string {
  const ext = ((body as Json)?.error as Json | undefined)?.['@Message.ExtendedInfo'] as Json[] | undefined;
  const msg = ext?.[0]?.Message ?? ((body as Json)?.error as Json | undefined)?.message;
  return typeof msg === 'string' ? `: ${msg}` : '';
}
