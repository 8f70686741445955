/**
 * The machine inventory's types (MISSION M7): what Kiver knows about a bare-metal
 * server — its BMC, NIC MACs, OS profile and the identity it gets after install —
 * and the view the API returns. Parsing and validation live in src/machine/.
 */
import { Type, type Static } from '@sinclair/typebox';

export type BmcDriverName = 'ipmi' | 'redfish';
export const BMC_DRIVERS: readonly BmcDriverName[] = ['ipmi', 'redfish'];

/** BMC access as the operator gives it. The password exists in clear only in memory. */
export interface BmcSpec {
  driver: BmcDriverName;
  /** Host name or IP address of the BMC (no scheme). */
  address: string;
  port?: number;
  user: string;
  password: string;
}

/** BMC access as stored: the password encrypted (see secrets.ts). */
export interface StoredBmc {
  driver: BmcDriverName;
  address: string;
  port?: number;
  user: string;
  /** `v1:` AES-256-GCM envelope produced by SecretBox.encrypt. */
  passwordEnc: string;
}

/** What the machine is told by the config center after its OS is installed. */
export interface MachineIdentity {
  ip: string;
  prefix: number;
  hostname: string;
  gateway?: string;
  dns: string[];
  ntp: string[];
}

/** A machine as the operator describes it (`kiver machine add`, one inventory row). */
export interface MachineSpec {
  name: string;
  bmc: BmcSpec;
  /** Known NIC MACs, normalized `aa:bb:cc:dd:ee:ff`; may be empty (read from the BMC). */
  macs: string[];
  osProfile: string;
  identity: MachineIdentity;
}

export type MachinePhase = 'registered' | 'inspected' | 'installing' | 'installed' | 'failed';
export const MACHINE_PHASES: readonly MachinePhase[] = ['registered', 'inspected', 'installing', 'installed', 'failed'];

export interface MachineEvent {
  at: string;
  type: string;
  message: string;
}

/** The install in flight. The token itself is never stored, only its SHA-256. */
export interface InstallRecord {
  tokenSha256: string;
  startedAt: string;
  /** The token (and the boot files) expire at this time. */
  expiresAt: string;
  osProfile: string;
  /** Base URL of the Kiver server as the machine reaches it (config center, seeds). */
  serverUrl: string;
  /** MACs boot files were written for (as read from the BMC). */
  macs: string[];
  bootFiles: string[];
  /** When the installer first fetched its identity from the config center. */
  identityServedAt?: string;
}

export interface MachineStatus {
  phase: MachinePhase;
  /** Why the machine is `failed` (or any note on the last transition). */
  reason?: string;
  /** When the current phase was entered. */
  since: string;
  /** When each phase was last entered. */
  timestamps: Partial<Record<MachinePhase, string>>;
  /** MACs the BMC reported at the last inspection/install. */
  bmcMacs?: string[];
  install?: InstallRecord;
  /** Most recent events, oldest first (bounded, see MAX_EVENTS). */
  events: MachineEvent[];
}

/** A machine as stored (`/kiver/machines/<name>`): secrets encrypted. */
export interface MachineRecord {
  name: string;
  bmc: StoredBmc;
  macs: string[];
  osProfile: string;
  identity: MachineIdentity;
  createdAt: string;
  status: MachineStatus;
}

export const MAX_EVENTS = 50;


/** Machine names (and the API's path parameter): DNS-label-like. */
export const MACHINE_NAME_PATTERN = '^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$';
export const OS_PROFILE_PATTERN = '^[a-z0-9][a-z0-9._-]{0,62}$';

// What a machine looks like on the wire (the API's response schema and the client's type):
// nothing secret has a field here — no password, no ciphertext, no token hash.
const Strs = Type.Array(Type.String());
const PhaseLiteral = Type.Union(MACHINE_PHASES.map((p) => Type.Literal(p)));
export const MachineView = Type.Object({
  name: Type.String(),
  bmc: Type.Object({
    driver: Type.Union(BMC_DRIVERS.map((d) => Type.Literal(d))), address: Type.String(), port: Type.Optional(Type.Integer()),
    user: Type.String(), password: Type.Literal('(set)'),
  }),
  macs: Strs,
  osProfile: Type.String(),
  identity: Type.Object({ ip: Type.String(), prefix: Type.Integer(), hostname: Type.String(), gateway: Type.Optional(Type.String()), dns: Strs, ntp: Strs }),
  createdAt: Type.String(),
  status: Type.Object({
    phase: PhaseLiteral,
    reason: Type.Optional(Type.String()),
    since: Type.String(),
    timestamps: Type.Partial(Type.Object(Object.fromEntries(MACHINE_PHASES.map((p) => [p, Type.String()])) as Record<MachinePhase, ReturnType<typeof Type.String>>)),
    bmcMacs: Type.Optional(Strs),
    install: Type.Optional(Type.Object({
      startedAt: Type.String(), expiresAt: Type.String(), osProfile: Type.String(), serverUrl: Type.String(),
      macs: Strs, bootFiles: Strs, identityServedAt: Type.Optional(Type.String()),
    })),
    events: Type.Array(Type.Object({ at: Type.String(), type: Type.String(), message: Type.String() })),
  }),
});
export type MachineView = Static<typeof MachineView>;
