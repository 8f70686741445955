/**
 * Everything in deploy/monitoring/ checked by the real tools (promtool check config /
 * check rules / test rules, amtool check-config), the Grafana dashboards' structure and
 * datasources, and every PromQL expression in rules and dashboards naming a metric a
 * live `kiver up` really exports.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { kiverUpForSuite } from './harness/kiver.js';

const DIR = 'deploy/monitoring';
const run = (cmd: string, ...args: string[]) => execFileSync(cmd, args, { cwd: DIR, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** Metric names an expression selects: identifiers that are not functions, keywords, labels, or strings. */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const keywords = new Set(['and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan']);
  const out = new Set<string>();
  for (const m of stripped.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?/g)) {
    if (m[2] || keywords.has(m[1].toLowerCase())) continue;
    if (/^\d/.test(m[1])) continue;
    out.add(m[1]);
  }
  return [...out];
}

interface Dashboard {
  uid: string;
  title: string;
  panels: { id: number; title: string; type: string; datasource: { uid: string }; gridPos: object; targets: { expr: string; datasource: { uid: string } }[] }[];
  templating: { list: { query: { query: string }; datasource: { uid: string } }[] };
}
const dashboards = (): [string, Dashboard][] =>
  readdirSync(join(DIR, 'grafana/dashboards')).map((f) => [f, JSON.parse(readFileSync(join(DIR, 'grafana/dashboards', f), 'utf8')) as Dashboard]);

describe('deploy/monitoring', () => {
  it('promtool check config, check rules, test rules (every alert has a unit test)', () => {
    assert.match(run('promtool', 'check', 'config', 'prometheus.yml'), /SUCCESS/);
    assert.match(run('promtool', 'check', 'rules', 'kiver-rules.yml', 'kiver-rules-future.yml'), /SUCCESS: 9 rules found[\s\S]*SUCCESS: 5 rules found/);
    assert.match(run('promtool', 'test', 'rules', 'kiver-rules.test.yml'), /SUCCESS/);
    const alerts = ['kiver-rules.yml', 'kiver-rules-future.yml'].flatMap((f) =>
      (parse(readFileSync(join(DIR, f), 'utf8')) as { groups: { rules: { alert: string }[] }[] }).groups.flatMap((g) => g.rules.map((r) => r.alert)));
    const tests = readFileSync(join(DIR, 'kiver-rules.test.yml'), 'utf8');
    for (const a of alerts) assert.match(tests, new RegExp(`alertname: ${a}\\b`), `a unit test for ${a}`);
    assert.ok(alerts.length >= 14);
  });

  it('the replica label is dropped on the alert path; amtool check-config', () => {
    const p = parse(readFileSync(join(DIR, 'prometheus.yml'), 'utf8')) as { global: { external_labels: Record<string, string> }; alerting: { alert_relabel_configs: { action: string; regex: string }[] } };
    assert.ok(p.global.external_labels.replica);
    assert.deepEqual(p.alerting.alert_relabel_configs[0], { action: 'labeldrop', regex: 'replica' });
    assert.match(run('amtool', 'check-config', 'alertmanager.yml'), /SUCCESS/);
  });

  it('dashboards: valid structure, datasource uids that provisioning defines', () => {
    const ds = parse(readFileSync(join(DIR, 'grafana/provisioning/datasources/kiver.yml'), 'utf8')) as { datasources: { uid: string; type: string }[] };
    const uids = new Set(ds.datasources.map((d) => d.uid));
    const prov = parse(readFileSync(join(DIR, 'grafana/provisioning/dashboards/kiver.yml'), 'utf8')) as { providers: { type: string; options: { path: string } }[] };
    assert.equal(prov.providers[0].type, 'file');
    const seen = new Set<string>();
    for (const [f, d] of dashboards()) {
      assert.ok(d.uid && d.title && Array.isArray(d.panels) && d.panels.length > 0, f);
      assert.ok(!seen.has(d.uid), `${f}: uid ${d.uid} is unique`);
      seen.add(d.uid);
      for (const p of d.panels) {
        assert.ok(p.gridPos && p.type && p.title, `${f}: panel ${p.id}`);
        assert.ok(uids.has(p.datasource.uid), `${f}: panel ${p.title} datasource ${p.datasource.uid}`);
        assert.ok(p.targets.length > 0, `${f}: panel ${p.title} has queries`);
        for (const t of p.targets) assert.ok(uids.has(t.datasource.uid), `${f}: ${p.title} target datasource`);
      }
    }
    // The health panel maps every code of the table to a text.
    const [, health] = dashboards().find(([f]) => f === 'kiver-cluster-health.json')!;
    const mapping = JSON.stringify(health.panels[0]);
    for (const t of ['healthy', 'monitoring problem', 'network problem', 'store problem', 'node problem', 'Docker problem', 'disk problem']) assert.ok(mapping.includes(t), t);
  });

  describe('every PromQL expression names a metric a live Kiver exports', () => {
    const up = kiverUpForSuite();

    it('rules (kiver-rules.yml) and every dashboard query', async () => {
      const text = await (await fetch(`${up.k.url}/metrics`)).text();
      const exported = new Set<string>(['up']); // `up` is Prometheus's own, per target
      for (const line of text.split('\n')) {
        const t = /^# TYPE (\S+) (\S+)/.exec(line);
        if (t) {
          exported.add(t[1]);
          if (t[2] === 'histogram') for (const s of ['_bucket', '_sum', '_count']) exported.add(t[1] + s);
        } else if (line && !line.startsWith('#')) exported.add(line.split(/[{ ]/)[0]);
      }
      const exprs: [string, string][] = [];
      for (const g of (parse(readFileSync(join(DIR, 'kiver-rules.yml'), 'utf8')) as { groups: { rules: { alert: string; expr: string }[] }[] }).groups) {
        for (const r of g.rules) exprs.push([`rule ${r.alert}`, r.expr]);
      }
      for (const [f, d] of dashboards()) {
        for (const p of d.panels) for (const t of p.targets) exprs.push([`${f} ${p.title}`, t.expr]);
        for (const v of d.templating.list) exprs.push([`${f} variable`, v.query.query.replace(/^label_values\(([^,]+),.*$/, '$1')]);
      }
      assert.ok(exprs.length > 40);
      const missing: string[] = [];
      for (const [where, e] of exprs) {
        const names = metricNames(e);
        assert.ok(names.length > 0, `${where}: no metric in ${e}`);
        for (const n of names) if (!exported.has(n)) missing.push(`${where}: ${n}`);
      }
      assert.deepEqual(missing, []);
    });

    it('the extractor finds what it must', () => {
      assert.deepEqual(metricNames('1 - max by (node, path) (a_free) / max by (node) (b_size{x="y z"}) > 0.85'), ['a_free', 'b_size']);
      assert.deepEqual(metricNames('sum(rate(c_total{service=~"$service"}[5m])) or up{job="kiver"} == 0'), ['c_total', 'up']);
      assert.deepEqual(metricNames('time() - max by (service) (d_seconds) > 26 * 3600'), ['d_seconds']);
    });
  });
});
