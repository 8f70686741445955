import { InputError, KiverError, UnavailableError } from '../errors.js';

/** One bad value in an inventory file: where it is and what is wrong with it. */
export interface InventoryProblem {
  /** 1-based line in the file (the row for CSV, the field's line for YAML). */
  line: number;
  /** Field path, e.g. `bmc.address` or `identity.ip`; '' for the whole row. */
  field: string;
  message: string;
}

/**
 * A malformed inventory: every problem found, nothing imported. Still an InputError
 * (400) so the one error mapping applies; `problems` carries the full list.
 */
export class InventoryError extends InputError {
  constructor(readonly problems: InventoryProblem[]) {
    super(
      `inventory has ${problems.length} problem${problems.length === 1 ? '' : 's'}; nothing imported:\n` +
        problems.map((p) => `  line ${p.line}: ${p.field ? `${p.field}: ` : ''}${p.message}`).join('\n'),
      problems[0]?.field,
      { problems },
    );
  }
}

/** The BMC did not answer within the timeout (wrong address, powered-off BMC, firewall). */
export class BmcUnreachableError extends UnavailableError {
  override readonly code = 'bmc_unreachable';
}

/** The BMC answered but refused the user name or password. Never retried (lock-outs). */
export class BmcAuthError extends KiverError {
  override readonly status = 502;
  override readonly code = 'bmc_auth_failed';
}

/** The BMC does not support the operation (no FRU MAC, no PXE override, ...). */
export class BmcUnsupportedError extends KiverError {
  override readonly status = 501;
  override readonly code = 'bmc_unsupported';
}

/** The BMC answered with an error that fits none of the above. */
export class BmcCommandError extends KiverError {
  override readonly status = 502;
  override readonly code = 'bmc_error';
}
