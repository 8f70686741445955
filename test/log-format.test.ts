/**
 * Logs for people: a process command (here `kiver guard --once`, which needs no Docker)
 * prints coloured, one-line records when its log goes to a terminal — a real pseudo-terminal
 * from util-linux `script` — and JSON lines when piped or with --log-format json. A log root
 * whose name holds an escape sequence and a newline (container-chosen directory names) shows
 * as visible escapes: it neither clears the terminal nor starts a forged line.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KIVER_BIN, runCommand as run } from './harness/kiver.js';

const EVIL = 'evil\u001b[2J\nFORGED';
const RECORD = /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}\] (TRACE|DEBUG|INFO|WARN|ERROR|FATAL) \(kiver-guard\): /;

describe('kiver process logs: pretty on a terminal, JSON otherwise', () => {
  let base: string;
  let root: string;
  let env: NodeJS.ProcessEnv;
  const guard = ['guard', '--root', '"$LT_ROOT"', '--out', '"$LT_OUT"', '--once'];
  /** The guard in a pseudo-terminal: stdout and stderr are the terminal, as for a person. */
  const inTerminal = (...extra: string[]) =>
    run(['script', '-qec', [`"${process.execPath}"`, `"${KIVER_BIN}"`, ...guard, ...extra].join(' '), '/dev/null'], env);

  before(async () => {
    // The guard warns (with the root in its message) when the root shares a filesystem with /.
    const rootDev = statSync('/').dev;
    const parent = [tmpdir(), '/var/tmp', '/root'].find((d) => statSync(d, { throwIfNoEntry: false })?.dev === rootDev);
    assert.ok(parent, 'a writable directory on the root filesystem (tmpdir, /var/tmp or /root)');
    base = await mkdtemp(join(parent, 'kiver-logfmt-'));
    root = join(base, EVIL);
    await mkdir(join(root, 'svc', '0'), { recursive: true });
    await writeFile(join(root, 'svc', '0', 'app.log'), 'hello\n');
    env = { ...process.env, LT_ROOT: root, LT_OUT: join(base, 'out') };
    delete env.NO_COLOR;
    delete env.KIVER_LOG_LEVEL;
  });
  after(async () => {
    if (base) await rm(base, { recursive: true, force: true });
  });

  it('terminal: coloured lines for people; the root\'s escape sequence and newline print as visible escapes', async () => {
    const r = await inTerminal();
    assert.equal(r.code, 0, r.stdout);
    const lines = r.stdout.split(/\r?\n/);
    assert.match(r.stdout, /\u001b\[3\dm(WARN|INFO)\u001b\[39m/, 'levels are coloured');
    const bare = r.stdout.replace(/\u001b\[[0-9;]*m/g, '');
    assert.doesNotMatch(bare, /[\u0000-\u0009\u000b\u000c\u000e-\u001f]/, 'no control characters but the colours and line ends');
    const records = bare.split(/\r?\n/).filter((l) => RECORD.test(l));
    const warning = records.find((l) => l.includes('WARN (kiver-guard): log root '));
    assert.equal(warning?.slice(warning.indexOf(' WARN')), ` WARN (kiver-guard): log root ${base}/evil\\x1b[2J\\nFORGED is on the same filesystem as /: container logs can fill the system disk; mount a dedicated log partition there`, bare);
    assert.ok(records.some((l) => l.endsWith('INFO (kiver-guard): log guard started')), bare);
    assert.ok(bare.includes(`root: "${base}/evil\\u001b[2J\\nFORGED"`), 'fields print as JSON');
    assert.ok(!lines.some((l) => l.startsWith('FORGED')), 'no forged line');
    assert.ok(lines.some((l) => l === '{"links":1,"directories":3,"foreignEntries":0}'), 'the --once result on stdout');
  });

  it('piped: JSON lines, the root intact in them', async () => {
    const r = await run([process.execPath, KIVER_BIN, ...guard.map((a) => a.replace(/^"\$(\w+)"$/, (_, v) => env[v]!))], env);
    assert.equal(r.code, 0, r.stderr);
    const records = r.stderr.trim().split('\n').map((l) => JSON.parse(l) as { level: number; msg: string; root?: string });
    const warning = records.find((x) => x.msg.startsWith('log root '));
    assert.equal(warning?.level, 40);
    assert.equal(warning?.root, root);
    assert.ok(records.some((x) => x.level === 30 && x.msg === 'log guard started'));
    assert.deepEqual(JSON.parse(r.stdout), { links: 1, directories: 3, foreignEntries: 0 });
  });

  it('--log-format json and --log-level warn hold on a terminal too', async () => {
    const r = await inTerminal('--log-format', 'json', '--log-level', 'warn');
    assert.equal(r.code, 0, r.stdout);
    const logs = r.stdout.split(/\r?\n/).filter((l) => l.startsWith('{"level"')).map((l) => JSON.parse(l) as { level: number; root: string });
    assert.ok(logs.length > 0 && logs.every((x) => x.level >= 40), r.stdout);
    assert.ok(logs.some((x) => x.root === root));
    assert.doesNotMatch(r.stdout, /\u001b/);
  });

  it('a bad --log-format or --log-level is a one-line error naming the flag', async () => {
    const f = await run([process.execPath, KIVER_BIN, 'guard', '--root', root, '--once', '--log-format', 'fancy'], env);
    assert.notEqual(f.code, 0);
    assert.equal(f.stderr, 'kiver: --log-format must be one of auto, pretty, json, got "fancy"\n');
    const l = await run([process.execPath, KIVER_BIN, 'guard', '--root', root, '--once', '--log-level', 'loud'], env);
    assert.notEqual(l.code, 0);
    assert.match(l.stderr, /^kiver: --log-level must be one of trace, debug, info, warn, error, fatal, silent, got "loud"\n$/);
  });
});
