/**
 * The cluster health code: one number a dashboard maps to text and colour (the
 * talk's telegraf `exec` script). Every check runs; every problem is listed; the
 * code is the problem with the highest priority. Pure: inputs in, report out.
 */

/** The documented table (README "Cluster health codes"). Codes never change meaning. */
export const HEALTH_CODES = {
  healthy: { code: 0, text: 'healthy', priority: 0 },
  monitoring: { code: 1, text: 'monitoring problem', priority: 1 },
  network: { code: 2, text: 'network problem', priority: 5 },
  store: { code: 3, text: 'store problem', priority: 6 },
  node: { code: 4, text: 'node problem', priority: 4 },
  docker: { code: 5, text: 'Docker problem', priority: 3 },
  disk: { code: 6, text: 'disk problem', priority: 2 },
  unreachable: { code: 7, text: 'control plane unreachable', priority: 7 },
  /** The check itself could not run (bad token, bad flag): not a statement about the cluster. */
  failed: { code: 8, text: 'health check failed', priority: 8 },
} as const;
export type HealthCheck = keyof typeof HEALTH_CODES;

export interface HealthProblem {
  check: Exclude<HealthCheck, 'healthy'>;
  code: number;
  /** What is wrong, naming the part (node, member, endpoint, path). */
  message: string;
}

export interface HealthReport {
  code: number;
  text: string;
  problems: HealthProblem[];
  checkedAt: string;
}

export interface HealthInputs {
  store: { ok: boolean; error?: string; members?: { endpoint: string; ok: boolean; error?: string }[] };
  leader?: { url: string };
  nodes: {
    name: string;
    ready: boolean;
    docker?: { up: boolean; error?: string };
    logDisk?: { path: string; sizeBytes: number; freeBytes: number };
  }[];
  /** Unset when no monitoring pair is registered (`kiver monitoring up` registers it). */
  monitoring?: { kind: string; url: string; ok: boolean; error?: string }[];
  /** A log partition fuller than this fraction is a disk problem. */
  diskThreshold: number;
  now?: Date;
}

export function problem(check: HealthProblem['check'], message: string): HealthProblem {
  return { check, code: HEALTH_CODES[check].code, message };
}

/** The report for a list of problems: the highest-priority one gives the code. */
export function report(problems: HealthProblem[], now = new Date()): HealthReport {
  let top: HealthCheck = 'healthy';
  for (const p of problems) if (HEALTH_CODES[p.check].priority > HEALTH_CODES[top].priority) top = p.check;
  const sorted = [...problems].sort((a, b) => HEALTH_CODES[b.check].priority - HEALTH_CODES[a.check].priority);
  return { code: HEALTH_CODES[top].code, text: HEALTH_CODES[top].text, problems: sorted, checkedAt: now.toISOString() };
}

export function evaluateHealth(i: HealthInputs): HealthReport {
  const out: HealthProblem[] = [];
  if (!i.store.ok) out.push(problem('store', `store not answering: ${i.store.error ?? 'unknown error'}`));
  for (const m of i.store.members ?? []) if (!m.ok) out.push(problem('store', `store member ${m.endpoint} unhealthy: ${m.error ?? 'no answer'}`));
  if (i.store.ok && !i.leader) out.push(problem('store', 'no leader elected (controllers are not running)'));

  const lost = i.nodes.filter((n) => !n.ready);
  // Most nodes gone at once looks like the network (or this server's side of it), not the nodes:
  // the same judgement that makes the control plane suspect itself before moving replicas.
  if (lost.length >= 2 && lost.length * 2 >= i.nodes.length) {
    out.push(problem('network', `${lost.length} of ${i.nodes.length} nodes unreachable at once: ${lost.map((n) => n.name).join(', ')}`));
  } else {
    for (const n of lost) out.push(problem('node', `node ${n.name} is not ready (no heartbeat)`));
  }
  for (const n of i.nodes) {
    if (!n.ready) continue; // a lost node's last report is stale
    if (n.docker && !n.docker.up) out.push(problem('docker', `Docker on node ${n.name} not answering: ${n.docker.error ?? 'no answer'}`));
    const d = n.logDisk;
    if (d && d.sizeBytes > 0) {
      const used = (d.sizeBytes - d.freeBytes) / d.sizeBytes;
      if (used > i.diskThreshold) {
        out.push(problem('disk', `log partition ${d.path} on node ${n.name} is ${Math.round(used * 100)} % full (threshold ${Math.round(i.diskThreshold * 100)} %)`));
      }
    }
  }
  for (const m of i.monitoring ?? []) if (!m.ok) out.push(problem('monitoring', `${m.kind} ${m.url} not healthy: ${m.error ?? 'no answer'}`));
  return report(out, i.now);
}

/** -o influx: one line for telegraf's `exec` input (data_format = "influx"). */
export function toInflux(r: HealthReport): string {
  const text = r.text.replace(/["\\]/g, '\\$&');
  return `kiver_health code=${r.code}i,problems=${r.problems.length}i,text="${text}"\n`;
}

/** -o prometheus: the text exposition format (also what /metrics carries as kiver_health_code). */
export function toPrometheus(r: HealthReport): string {
  const lines = [
    '# HELP kiver_health_code Cluster health code (0 healthy; see the README table)',
    '# TYPE kiver_health_code gauge',
    `kiver_health_code ${r.code}`,
    '# HELP kiver_health_problems Problems found by the health checks, by check',
    '# TYPE kiver_health_problems gauge',
  ];
  for (const check of Object.keys(HEALTH_CODES) as HealthCheck[]) {
    if (check === 'healthy') continue;
    lines.push(`kiver_health_problems{check="${check}"} ${r.problems.filter((p) => p.check === check).length}`);
  }
  return `${lines.join('\n')}\n`;
}

export function toText(r: HealthReport): string {
  return [`${r.code} ${r.text}`, ...r.problems.map((p) => `  [${p.code}] ${p.message}`)].join('\n') + '\n';
}
