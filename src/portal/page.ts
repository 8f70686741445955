/**
 * The web portal: one static page and one script, served by the API server at
 * /ui/. It holds no data itself: the browser calls /v1 with the admin token the
 * user pastes in (kept in sessionStorage only), and every value is inserted as
 * text, never as HTML. Kept as strings so the TypeScript build ships them as-is.
 */
import { DEFAULTS } from '../model/service.js';

export const PORTAL_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Kiver</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
  header { background: #1d2330; color: #fff; padding: 10px 20px; display: flex; gap: 20px; align-items: center; }
  header h1 { font-size: 18px; margin: 0; }
  header nav button { background: none; border: 0; color: #cfd6e4; font-size: 14px; cursor: pointer; padding: 4px 8px; }
  header nav button.on { color: #fff; border-bottom: 2px solid #5fa8ff; }
  main { padding: 16px 20px; }
  table { border-collapse: collapse; width: 100%; background: #fff; margin-bottom: 16px; }
  th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid #e3e6ec; vertical-align: top; }
  th { background: #eef1f5; font-weight: 600; }
  .ok { color: #16803c; } .warn { color: #b45309; } .bad { color: #b91c1c; }
  form { background: #fff; padding: 12px; margin-bottom: 16px; display: flex; flex-wrap: wrap; gap: 8px; align-items: end; }
  label { display: flex; flex-direction: column; font-size: 12px; color: #555; }
  input, select { font: inherit; padding: 4px 6px; }
  button.act { font: inherit; padding: 4px 10px; cursor: pointer; }
  #msg { padding: 8px 20px; } #msg.err { background: #fde8e8; color: #b91c1c; }
  .muted { color: #777; font-size: 12px; }
  #login { max-width: 560px; margin: 60px auto; background: #fff; padding: 20px; }
  #login input { width: 100%; box-sizing: border-box; }
</style>
</head>
<body>
<header><h1>Kiver</h1><nav id="tabs"></nav><span class="muted" id="who"></span></header>
<div id="msg"></div>
<main id="main"></main>
<script src="/ui/app.js"></script>
</body>
</html>
`;

export const PORTAL_JS = `'use strict';
const $ = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v); else if (v !== undefined) el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) el.append(kid instanceof Node ? kid : document.createTextNode(String(kid ?? '')));
  return el;
};
const token = () => sessionStorage.getItem('kiver-token');
const main = document.getElementById('main');
const msg = (text, err) => { const m = document.getElementById('msg'); m.textContent = text || ''; m.className = err ? 'err' : ''; };

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: 'Bearer ' + token(), ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (res.status === 401) { sessionStorage.removeItem('kiver-token'); render(); throw new Error('token refused'); }
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw new Error((json && json.error && json.error.message) || res.statusText);
  return json;
}

const bytes = (n) => n >= 2 ** 30 ? (n / 2 ** 30).toFixed(1) + 'Gi' : Math.round(n / 2 ** 20) + 'Mi';
const stateClass = (s) => s === 'running' ? 'ok' : ['pending', 'creating', 'restarting', 'unknown'].includes(s) ? 'warn' : 'bad';
let tab = 'services';
let timer;

function table(head, rows) {
  return $('table', {}, $('thead', {}, $('tr', {}, head.map((h) => $('th', {}, h)))), $('tbody', {}, rows));
}

async function services() {
  const list = await api('GET', '/v1/services');
  const form = $('form', { onsubmit: async (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    // Only the fields filled in: defaults live on the server.
    const body = { name: f.get('name'), image: f.get('image') };
    if (f.get('replicas')) body.replicas = Number(f.get('replicas'));
    if (f.get('cpu')) body.cpu = Number(f.get('cpu'));
    if (f.get('cpuPolicy')) body.cpuPolicy = f.get('cpuPolicy');
    if (f.get('memory')) body.memory = Number(f.get('memory')) * 2 ** 20;
    if (f.get('cmd')) body.command = ['/bin/sh', '-c', f.get('cmd')];
    if (f.get('port')) body.ports = [{ container: Number(f.get('port')) }];
    try { await api('POST', '/v1/services', body); msg('service ' + body.name + ' created'); refresh(); } catch (err) { msg(err.message, true); }
  } },
    $('label', {}, 'name', $('input', { name: 'name', required: '', placeholder: 'cache' })),
    $('label', {}, 'image', $('input', { name: 'image', required: '', value: 'kiver/redis' })),
    $('label', {}, 'command (optional)', $('input', { name: 'cmd' })),
    $('label', {}, 'replicas', $('input', { name: 'replicas', type: 'number', placeholder: '${DEFAULTS.replicas}', min: '0' })),
    $('label', {}, 'CPU', $('input', { name: 'cpu', type: 'number', placeholder: '${DEFAULTS.cpu}', step: '0.001', min: '0.001' })),
    $('label', {}, 'policy', $('select', { name: 'cpuPolicy' }, [$('option', { value: '' }, 'default (${DEFAULTS.cpuPolicy})'), ...['shares', 'cpuset', 'quota'].map((p) => $('option', {}, p))])),
    $('label', {}, 'memory MiB', $('input', { name: 'memory', type: 'number', placeholder: '${DEFAULTS.memory / 2 ** 20}', min: '8' })),
    $('label', {}, 'port (optional)', $('input', { name: 'port', type: 'number', min: '1', max: '65535' })),
    $('button', { class: 'act', type: 'submit' }, 'Create service'));
  const rows = [];
  for (const s of list) {
    const scale = $('input', { type: 'number', value: String(s.spec.replicas), min: '0', style: 'width:4em' });
    rows.push($('tr', {},
      $('td', {}, $('b', {}, s.name), s.deleting ? $('span', { class: 'warn' }, ' deleting') : ''),
      $('td', {}, s.spec.image),
      $('td', { class: s.status.running === s.status.desired ? 'ok' : 'warn' }, s.status.running + '/' + s.status.desired),
      $('td', {}, s.spec.cpu + ' ' + s.spec.cpuPolicy + ', ' + bytes(s.spec.memory)),
      $('td', {}, s.replicas.map((r) => $('div', {},
        $('span', { class: stateClass(r.state) }, r.id + ' ' + r.state), ' on ' + (r.node || '-'),
        r.ports.length ? ' ports ' + r.ports.map((p) => p.host + '→' + p.container).join(',') : '',
        r.restartCount ? ' restarts ' + r.restartCount : '', r.lastError ? $('div', { class: 'muted' }, r.lastError) : ''))),
      $('td', {}, scale, ' ', $('button', { class: 'act', onclick: async () => {
        try { await api('PUT', '/v1/services/' + encodeURIComponent(s.name) + '/scale', { replicas: Number(scale.value) }); refresh(); } catch (err) { msg(err.message, true); }
      } }, 'Scale'), ' ', $('button', { class: 'act', onclick: async () => {
        if (!confirm('Delete ' + s.name + '? Its data directories stay.')) return;
        try { await api('DELETE', '/v1/services/' + encodeURIComponent(s.name)); refresh(); } catch (err) { msg(err.message, true); }
      } }, 'Delete'))));
  }
  return [form, table(['service', 'image', 'running', 'resources', 'replicas', ''], rows)];
}

async function nodes() {
  const list = await api('GET', '/v1/nodes');
  return [table(['node', 'status', 'address', 'CPU', 'memory', 'replicas', 'docker'], list.map((n) => $('tr', {},
    $('td', {}, n.name), $('td', { class: n.ready ? 'ok' : 'bad' }, (n.ready ? 'Ready' : 'NotReady') + (n.cordoned ? ', cordoned' : '') + (n.drain ? ', draining' : '')),
    $('td', {}, n.address), $('td', {}, n.alloc.cpuMilli / 1000 + '/' + n.cpus), $('td', {}, bytes(n.alloc.memory) + '/' + bytes(n.memory)),
    $('td', {}, n.alloc.replicas.join(', ')), $('td', {}, n.dockerVersion || '-'))))];
}

async function events() {
  const list = await api('GET', '/v1/events?limit=200');
  return [table(['last', 'type', 'reason', 'object', 'count', 'message'], list.map((e) => $('tr', {},
    $('td', {}, new Date(e.lastAt).toLocaleTimeString()), $('td', { class: e.type === 'Warning' ? 'warn' : '' }, e.type),
    $('td', {}, e.reason), $('td', {}, e.object), $('td', {}, e.count), $('td', {}, e.message))))];
}

const views = { services, nodes, events };

async function refresh() {
  if (!token()) return;
  try {
    const content = await views[tab]();
    main.replaceChildren(...content);
    const leader = await api('GET', '/v1/cluster/leader').catch(() => undefined);
    document.getElementById('who').textContent = leader ? 'leader ' + leader.url : '';
  } catch (err) { msg(err.message, true); }
}

function render() {
  clearInterval(timer);
  const tabs = document.getElementById('tabs');
  if (!token()) {
    tabs.replaceChildren();
    const input = $('input', { type: 'password', placeholder: 'kiver_admin_…', autocomplete: 'off' });
    main.replaceChildren($('form', { id: 'login', onsubmit: (e) => { e.preventDefault(); sessionStorage.setItem('kiver-token', input.value.trim()); render(); } },
      $('p', {}, 'Paste the admin token (the file kiver up printed, e.g. ~/.kiver/admin.token).'), input,
      $('button', { class: 'act', type: 'submit' }, 'Sign in')));
    return;
  }
  tabs.replaceChildren(...Object.keys(views).map((v) => $('button', { class: v === tab ? 'on' : '', onclick: () => { tab = v; msg(''); render(); } }, v)),
    $('button', { onclick: () => { sessionStorage.removeItem('kiver-token'); render(); } }, 'sign out'));
  refresh();
  timer = setInterval(refresh, 3000);
}
render();
`;
