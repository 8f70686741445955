/**
 * The host `kiver node init` works on: where its files go (everything under `root`,
 * `/` on a real node, a chroot-like directory in tests), how its processes run
 * (systemd units, or Kiver's own supervisor where systemd is absent) and the few
 * paths every step shares.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The join token's file (the agent's `--join-token-file`): used once, for the node's
 * first join; the agent then acts with its own credential (NODE_SECRET_FILE).
 */
export const CREDENTIAL_FILE = '/etc/kiver/node.credential';
/** The node's own credential, which the agent gets at its first join and keeps (0600); the join token is needed only for that join. */
export const NODE_SECRET_FILE = '/etc/kiver/node.secret';
/** Supervised programs (one JSON file each) when systemd is absent. */
export const SUPERVISE_DIR = '/etc/kiver/supervise';
/** The node's own settings, written by init and read by leave. */
export const NODE_CONFIG_FILE = '/etc/kiver/node.json';
export const DAEMON_JSON = '/etc/docker/daemon.json';
export const SYSTEMD_UNIT_DIR = '/etc/systemd/system';
export const AGENT_UNIT = 'kiver-agent.service';
export { SHIPPER_CONTAINER } from '../agent/log-shipper.js';

/** `kiver` itself (bin/kiver.js), for units and supervised programs. */
export const KIVER_BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../../bin/kiver.js');

export type ProcessManager = 'systemd' | 'supervisor';

export class NodeHost {
  readonly root: string;
  constructor(root = '/') {
    this.root = resolve(root);
  }

  /** A node path (absolute, as on the node) → where it is on this machine. */
  path(p: string): string {
    return this.root === '/' ? p : join(this.root, p);
  }

  get isRealRoot(): boolean {
    return this.root === '/';
  }

  /**
   * systemd when it is PID 1 of this root (the directory it creates at boot exists);
   * otherwise Kiver supervises dockerd and the agent itself. A test root never has it.
   */
  processManager(): { kind: ProcessManager; why: string } {
    if (this.isRealRoot && existsSync('/run/systemd/system')) return { kind: 'systemd', why: 'systemd is PID 1' };
    let pid1 = '?';
    try {
      pid1 = readFileSync('/proc/1/comm', 'utf8').trim();
    } catch {
      /* no /proc */
    }
    const why = this.isRealRoot ? `no systemd (PID 1 is ${pid1})` : `--root ${this.root} (a test root has no systemd)`;
    return { kind: 'supervisor', why };
  }

  /** Docker's socket for this node: the default one, or one inside a test root. */
  get dockerSocket(): string {
    return this.isRealRoot ? '/var/run/docker.sock' : this.path('/run/docker.sock');
  }

  /** The supervisor's run directory (pid files) and log directory. */
  get runDir(): string {
    return this.path('/run/kiver');
  }

  get logDir(): string {
    return this.path('/var/log/kiver');
  }
}
