/**
 * The BMC driver contract: what Kiver asks of a server's baseboard management
 * controller. Implementations: ipmi.ts (ipmitool, lanplus), redfish.ts (HTTP/JSON).
 * Errors are typed (machine/errors.ts): BmcUnreachableError (timeout),
 * BmcAuthError (bad credentials), BmcUnsupportedError, BmcCommandError.
 */
import type { BmcSpec } from '../../model/machine.js';

export type PowerState = 'on' | 'off';

export interface BmcDriver {
  powerStatus(): Promise<PowerState>;
  powerOn(): Promise<void>;
  /** Hard power off (not an ACPI request). */
  powerOff(): Promise<void>;
  /** Hard reset (warm reboot). */
  powerReset(): Promise<void>;
  /** Boot from the network on the next boot only (the BMC clears the override after it). */
  bootPxeOnce(): Promise<void>;
  /** NIC MAC addresses the BMC knows, normalized `aa:bb:cc:dd:ee:ff`, first the boot NIC. */
  readMacs(): Promise<string[]>;
}

export interface BmcDriverOptions {
  /** Per attempt, milliseconds. */
  timeoutMs?: number;
  /** Extra attempts when the BMC did not answer (never for bad credentials). */
  retries?: number;
}

/** Builds a driver for a machine's BMC; the server passes one of these to the installer. */
export type BmcDriverFactory = (bmc: BmcSpec) => BmcDriver;
