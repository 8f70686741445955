/** What the steps of one `kiver node init` share: the host, the settings, and findings of earlier checks. */
import type { NodeHost, ProcessManager } from './node-host.js';

export interface ComputeSettings {
  /** Node paths (as on the node). */
  dataRoot: string;
  logRoot: string;
  dockerRoot: string;
  dockerPackage: string;
  logMaxSize: string;
  logMaxFile: number;
  servers: string[];
  joinToken: string;
  node: string;
  address?: string;
  /** host:port of a TCP syslog receiver; no shipper without it. */
  shipTo?: { host: string; port: number };
  shipperCpu: number;
  shipperMemory: number;
}

export interface InitContext {
  host: NodeHost;
  manager: ProcessManager;
  s: ComputeSettings;
  /** Set by the daemon.json check: why dockerd must restart (a non-reloadable key changed). */
  dockerdRestart?: string;
  /** Set by the daemon.json check: only reloadable keys changed (SIGHUP is enough). */
  dockerdReload?: boolean;
  /** Set by the units check: dockerd runs already and Kiver did not start it (left alone). */
  foreignDockerd?: boolean;
}
