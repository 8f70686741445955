/**
 * Prometheus metrics of bare-metal provisioning, on Kiver's shared registry (served at
 * the server's /metrics; `kiver pxe serve --metrics-listen` serves the dnsmasq ones).
 */
import { Counter } from 'prom-client';
import { registry } from '../metrics.js';

export const machineMetrics = {
  installsStarted: new Counter({
    name: 'kiver_machine_installs_started_total',
    help: 'Installs started: boot files written, one-time PXE set and the machine reset by its BMC',
    registers: [registry],
  }),
  installsFinished: new Counter({
    name: 'kiver_machine_installs_finished_total',
    help: 'Installs whose installer reported done to the config center',
    registers: [registry],
  }),
  installsFailed: new Counter({
    name: 'kiver_machine_installs_failed_total',
    help: 'Installs that failed: refused at start (BMC error, conflict, bad input) or expired without a report',
    labelNames: ['reason'],
    registers: [registry],
  }),
  bootFilesReaped: new Counter({
    name: 'kiver_machine_boot_files_reaped_total',
    help: 'Kiver-written per-MAC boot files deleted by the reaper for being older than the max age',
    registers: [registry],
  }),
  reaperRuns: new Counter({
    name: 'kiver_machine_reaper_runs_total',
    help: 'Reaper passes (scheduled and by hand), by result',
    labelNames: ['result'],
    registers: [registry],
  }),
  configCenterDenied: new Counter({
    name: 'kiver_machine_config_center_denied_total',
    help: 'Config-center requests refused (404: no install pending for the address, 403: bad or expired token)',
    labelNames: ['status'],
    registers: [registry],
  }),
  dnsmasqRestarts: new Counter({
    name: 'kiver_pxe_dnsmasq_restarts_total',
    help: 'Times the dnsmasq supervisor restarted dnsmasq after it died',
    registers: [registry],
  }),
};
