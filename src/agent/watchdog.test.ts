import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { DockerWatchdog, checkLiveRestore, parseRestartCommand, runCommand, type CommandResult, type DockerWatchdogOptions } from './watchdog.js';

/** A watchdog on a fake clock, a scripted ping and a recorded restart command. */
function rig(opts: Partial<DockerWatchdogOptions> & { result?: CommandResult } = {}) {
  let t = 1_000_000;
  let healthy = true;
  const events: { type: string; reason: string; message: string }[] = [];
  const runs: string[][] = [];
  let recovered = 0;
  const registry = new Registry();
  const wd = new DockerWatchdog({
    ping: async () => {
      if (!healthy) throw new Error('connect ENOENT /var/run/docker.sock');
    },
    restartCommand: ['systemctl', 'restart', 'docker'],
    backoff: { initialMs: 10_000, maxMs: 40_000 },
    stableMs: 60_000,
    onEvent: (type, reason, message) => events.push({ type, reason, message }),
    onRecovered: () => {
      recovered++;
    },
    registry,
    now: () => t,
    runCommand: async (argv) => {
      runs.push(argv);
      return opts.result ?? { code: 0, output: '' };
    },
    ...opts,
  });
  const metric = async (name: string, labels: Record<string, string> = {}) => {
    const m = (await registry.getMetricsAsJSON()).find((x) => x.name === name);
    const v = (m?.values as { value: number; labels: Record<string, string> }[] | undefined)?.find((x) =>
      Object.entries(labels).every(([k, val]) => x.labels[k] === val));
    return v?.value ?? 0;
  };
  return {
    wd, events, runs, registry, metric,
    get recovered() { return recovered; },
    set healthy(v: boolean) { healthy = v; },
    advance(ms: number) { t += ms; },
    /** n probes, intervalMs apart on the fake clock */
    async ticks(n: number, everyMs = 5000) {
      for (let i = 0; i < n; i++) {
        await wd.tick();
        t += everyMs;
      }
    },
  };
}

describe('DockerWatchdog: failure counting', () => {
  it('restarts after N failed pings in a row, with an event and metrics', async () => {
    const r = rig();
    await r.ticks(2);
    assert.equal(await r.metric('kiver_agent_docker_up'), 1);
    r.healthy = false;
    await r.ticks(2);
    assert.equal(r.runs.length, 0, 'two failures: no restart yet');
    await r.ticks(1);
    assert.deepEqual(r.runs, [['systemctl', 'restart', 'docker']]);
    assert.equal(await r.metric('kiver_agent_docker_ping_failures_total'), 3);
    assert.equal(await r.metric('kiver_agent_docker_restarts_total', { result: 'ok' }), 1);
    assert.equal(await r.metric('kiver_agent_docker_up'), 0);
    const ev = r.events.find((e) => e.reason === 'DockerRestarting')!;
    assert.equal(ev.type, 'Warning');
    assert.match(ev.message, /did not answer 3 pings in a row \(last: connect ENOENT/);
    assert.match(ev.message, /`systemctl restart docker`/);
    assert.equal(r.wd.status().restarts, 1);
  });

  it('a successful ping in between starts the count over', async () => {
    const r = rig();
    for (const ok of [false, false, true, false, false, true, false, false]) {
      r.healthy = ok;
      await r.ticks(1);
    }
    assert.equal(r.runs.length, 0);
    assert.equal(await r.metric('kiver_agent_docker_ping_failures_total'), 6);
    assert.equal(r.events.filter((e) => e.reason === 'DockerRecovered').length, 2, 'each blip heals with an event');
    assert.equal(r.recovered, 2);
  });

  it('honours failuresBeforeRestart', async () => {
    const r = rig({ failuresBeforeRestart: 5 });
    r.healthy = false;
    await r.ticks(4);
    assert.equal(r.runs.length, 0);
    await r.ticks(1);
    assert.equal(r.runs.length, 1);
  });

  it('a ping that hangs counts as a failure after pingTimeoutMs', async () => {
    const r = rig({ ping: () => new Promise(() => undefined), pingTimeoutMs: 20, failuresBeforeRestart: 2 });
    const t0 = Date.now();
    await r.ticks(2);
    assert.ok(Date.now() - t0 < 1000);
    assert.equal(r.runs.length, 1);
    assert.match(r.events[0].message, /no answer within 20 ms/);
  });
});

describe('DockerWatchdog: backoff', () => {
  it('waits initialMs, then doubles, capped at maxMs, while the daemon stays down', async () => {
    const r = rig();
    r.healthy = false;
    const restartTimes: number[] = [];
    let now = 0;
    // 1 s between probes on the fake clock, 3 minutes of outage.
    for (let i = 0; i < 180; i++) {
      const before = r.runs.length;
      await r.wd.tick();
      if (r.runs.length > before) restartTimes.push(now);
      r.advance(1000);
      now += 1000;
    }
    const gaps = restartTimes.slice(1).map((t, i) => t - restartTimes[i]);
    // Each restart needs 3 fresh failures, so the first gaps are max(backoff, 3 s): 10, 20, 40, 40, ...
    assert.deepEqual(gaps.slice(0, 5), [10_000, 20_000, 40_000, 40_000, 40_000]);
    assert.deepEqual([0, 1, 2, 3, 4].map((n) => r.wd.backoffMs(n)), [10_000, 20_000, 40_000, 40_000, 40_000]);
    assert.equal(r.events.filter((e) => e.reason === 'DockerRestarting').length, restartTimes.length, 'an event for every restart');
    assert.equal(await r.metric('kiver_agent_docker_restarts_total', { result: 'ok' }), restartTimes.length);
  });

  it('starts over once the daemon has been healthy for stableMs, not at the first good ping', async () => {
    const r = rig();
    const outage = async () => {
      r.healthy = false;
      const before = r.runs.length;
      // Probe every second until the watchdog restarts (at most a minute).
      for (let i = 0; i < 60 && r.runs.length === before; i++) await r.ticks(1, 1000);
      r.healthy = true;
      await r.ticks(1, 1000);
    };
    await outage();
    assert.equal(r.wd.status().nextRestartAt! - r.wd.status().lastRestartAt!, 10_000);
    // A flapping daemon: down again soon after; the next restart waits 20 s.
    await r.ticks(5, 1000);
    await outage();
    assert.equal(r.wd.status().nextRestartAt! - r.wd.status().lastRestartAt!, 20_000);
    // Healthy for stableMs (60 s): the next outage starts at 10 s again.
    await r.ticks(61, 1000);
    await outage();
    assert.equal(r.wd.status().nextRestartAt! - r.wd.status().lastRestartAt!, 10_000);
  });
});

describe('DockerWatchdog: recovery, failures, no restart command', () => {
  it('reports the recovery once and calls onRecovered', async () => {
    const r = rig();
    r.healthy = false;
    await r.ticks(3);
    r.healthy = true;
    await r.ticks(3);
    const rec = r.events.filter((e) => e.reason === 'DockerRecovered');
    assert.equal(rec.length, 1);
    assert.equal(rec[0].type, 'Normal');
    assert.match(rec[0].message, /answers again after 15 s down; restarted 1 time/);
    assert.equal(r.recovered, 1);
    assert.equal(await r.metric('kiver_agent_docker_up'), 1);
    assert.equal(r.wd.status().consecutiveFailures, 0);
  });

  it('a failing restart command: metric result=failed, event with its output, backoff still applies', async () => {
    const r = rig({ result: { code: 1, output: 'Failed to restart docker.service: Unit docker.service not found.' } });
    r.healthy = false;
    await r.ticks(3, 1000);
    assert.equal(r.runs.length, 1);
    assert.equal(await r.metric('kiver_agent_docker_restarts_total', { result: 'failed' }), 1);
    const ev = r.events.find((e) => e.reason === 'DockerRestartFailed')!;
    assert.equal(ev.type, 'Warning');
    assert.match(ev.message, /exited with code 1 .*Unit docker.service not found.*next restart not before 10 s/);
    await r.ticks(6, 1000);
    assert.equal(r.runs.length, 1, 'not again within the backoff');
    await r.ticks(4, 1000);
    assert.equal(r.runs.length, 2);
  });

  it('restartCommand false: reports the outage once, never restarts', async () => {
    const r = rig({ restartCommand: false });
    r.healthy = false;
    await r.ticks(10);
    assert.equal(r.runs.length, 0);
    assert.deepEqual(r.events.map((e) => e.reason), ['DockerUnreachable']);
    assert.equal(await r.metric('kiver_agent_docker_ping_failures_total'), 10);
  });

  it('an onRecovered that throws does not stop the watchdog', async () => {
    const r = rig({ onRecovered: () => Promise.reject(new Error('resync failed')) });
    r.healthy = false;
    await r.ticks(3);
    r.healthy = true;
    await r.ticks(1);
    r.healthy = false;
    await r.ticks(3, 20_000);
    assert.equal(r.runs.length, 2);
  });

  it('rejects an empty restart command; two watchdogs share one registry', () => {
    assert.throws(() => new DockerWatchdog({ ping: async () => undefined, restartCommand: [] }), /non-empty argv/);
    const registry = new Registry();
    const a = new DockerWatchdog({ ping: async () => undefined, registry });
    const b = new DockerWatchdog({ ping: async () => undefined, registry });
    assert.equal(a.metrics.up, b.metrics.up);
  });
});

describe('DockerWatchdog: the loop', () => {
  it('probes every intervalMs, restarts, and stop() ends it', async () => {
    let healthy = false;
    let pings = 0;
    const runs: string[][] = [];
    const wd = new DockerWatchdog({
      ping: async () => {
        pings++;
        if (!healthy) throw new Error('down');
      },
      intervalMs: 10,
      restartCommand: ['restart-it'],
      runCommand: async (argv) => {
        runs.push(argv);
        healthy = true;
        return { code: 0, output: '' };
      },
    });
    wd.start();
    const deadline = Date.now() + 5000;
    while (wd.status().up !== true && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(runs, [['restart-it']]);
    await wd.stop();
    const after = pings;
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(pings, after, 'no probe after stop()');
  });

  it('stop() does not wait for, nor kill, a restart command that still runs', async () => {
    let finished = false;
    const wd = new DockerWatchdog({
      ping: async () => {
        throw new Error('down');
      },
      intervalMs: 5, failuresBeforeRestart: 1, restartCommand: ['slow-restart'],
      runCommand: async () => {
        await new Promise((r) => setTimeout(r, 300));
        finished = true;
        return { code: 0, output: '' };
      },
    });
    wd.start();
    await new Promise((r) => setTimeout(r, 100));
    const t0 = Date.now();
    await wd.stop();
    assert.ok(Date.now() - t0 < 100, `stop() took ${Date.now() - t0} ms`);
    assert.equal(finished, false);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(finished, true, 'the command ran to its end');
    assert.equal(wd.status().restarts, 1);
  });
});

describe('runCommand', () => {
  it('runs argv without a shell', async () => {
    const r = await runCommand(['/bin/echo', '$HOME; echo injected'], 5000);
    assert.equal(r.code, 0);
    assert.equal(r.output, '$HOME; echo injected');
  });

  it('reports exit codes, missing programs and timeouts', async () => {
    assert.equal((await runCommand(['sh', '-c', 'echo oops >&2; exit 3'], 5000)).code, 3);
    const missing = await runCommand(['/nonexistent/kiver-restart'], 5000);
    assert.equal(missing.code, null);
    assert.match(missing.output, /ENOENT/);
    const slow = await runCommand(['sleep', '10'], 100);
    assert.equal(slow.code, null);
    assert.equal(slow.signal, 'SIGKILL');
  });

  it('returns when the command exits, even if a daemon it started keeps its stdout', async () => {
    const t0 = Date.now();
    const r = await runCommand(['sh', '-c', 'sleep 3 & echo started'], 10_000);
    assert.equal(r.code, 0);
    assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
  });
});

describe('checkLiveRestore and parseRestartCommand', () => {
  it('reads LiveRestoreEnabled from docker info', async () => {
    assert.equal(await checkLiveRestore({ info: async () => ({ LiveRestoreEnabled: true }) }), true);
    assert.equal(await checkLiveRestore({ info: async () => ({ LiveRestoreEnabled: false }) }), false);
    assert.equal(await checkLiveRestore({ info: async () => ({}) }), false);
  });

  it('parses a JSON argv or space-separated words; none disables', () => {
    assert.deepEqual(parseRestartCommand('systemctl restart docker'), ['systemctl', 'restart', 'docker']);
    assert.deepEqual(parseRestartCommand('["/usr/local/bin/restart docker", "--now"]'), ['/usr/local/bin/restart docker', '--now']);
    assert.equal(parseRestartCommand('none'), false);
    assert.equal(parseRestartCommand(''), false);
    assert.throws(() => parseRestartCommand('["a", 1]'), /non-empty JSON array/);
    assert.throws(() => parseRestartCommand('[oops'), /not a JSON array/);
  });
});
