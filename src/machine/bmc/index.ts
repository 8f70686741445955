/** Picks the driver for a machine's BMC spec. */
import type { BmcSpec } from '../../model/machine.js';
import type { BmcDriver, BmcDriverFactory, BmcDriverOptions } from './driver.js';
import { IpmiDriver, type IpmiOptions } from './ipmi.js';
import { RedfishDriver, type RedfishOptions } from './redfish.js';

export type { BmcDriver, BmcDriverFactory, PowerState } from './driver.js';
export { IpmiDriver } from './ipmi.js';
export { RedfishDriver } from './redfish.js';

export interface BmcFactoryOptions extends BmcDriverOptions {
  ipmi?: Partial<Omit<IpmiOptions, 'address' | 'port' | 'user' | 'password'>>;
  redfish?: Partial<Omit<RedfishOptions, 'address' | 'port' | 'user' | 'password'>>;
}

export function bmcDriverFactory(opts: BmcFactoryOptions = {}): BmcDriverFactory {
  return (bmc: BmcSpec): BmcDriver => {
    const common = { address: bmc.address, port: bmc.port, user: bmc.user, password: bmc.password, timeoutMs: opts.timeoutMs, retries: opts.retries };
    if (bmc.driver === 'redfish') return new RedfishDriver({ ...common, ...opts.redfish });
    return new IpmiDriver({ ...common, ...opts.ipmi });
  };
}
