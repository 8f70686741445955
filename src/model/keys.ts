/** Every store key Kiver writes, in one place. */
export const K = {
  root: '/kiver/',
  service: (name: string) => `/kiver/services/${name}`,
  services: '/kiver/services/',
  replica: (service: string, ordinal: number) => `/kiver/replicas/${service}/${ordinal}`,
  replicas: '/kiver/replicas/',
  replicasOf: (service: string) => `/kiver/replicas/${service}/`,
  status: (service: string, ordinal: number) => `/kiver/replica-status/${service}/${ordinal}`,
  statuses: '/kiver/replica-status/',
  statusesOf: (service: string) => `/kiver/replica-status/${service}/`,
  node: (name: string) => `/kiver/nodes/${name}`,
  nodes: '/kiver/nodes/',
  alive: (name: string) => `/kiver/node-alive/${name}`,
  alives: '/kiver/node-alive/',
  nodeHealth: (name: string) => `/kiver/node-health/${name}`,
  nodeHealths: '/kiver/node-health/',
  /** Each running server, on its own lease: where Prometheus finds them (/v1/monitoring/targets). */
  serverMember: (id: string) => `/kiver/servers/${id}`,
  serverMembers: '/kiver/servers/',
  /** Where the monitoring pair runs (Prometheus x2, Alertmanager x2), written by `kiver monitoring up`. */
  monitoring: '/kiver/monitoring/config',
  /** Notifications the alert receiver sent (or gave up on), by alert group and channel. */
  alert: (id: string) => `/kiver/alerts/${id}`,
  alerts: '/kiver/alerts/',
  alloc: (node: string) => `/kiver/allocs/${node}`,
  allocs: '/kiver/allocs/',
  event: (object: string, reason: string) => `/kiver/events/${object.replaceAll('/', ':')}/${reason}`,
  events: '/kiver/events/',
  token: (id: string) => `/kiver/tokens/${id}`,
  tokens: '/kiver/tokens/',
  /** The leader lease's key; its mod revision is the controllers' write fence. */
  leader: '/kiver/leader',
  machines: '/kiver/machines/',
  /** Backups (issue 13): targets with sealed keys, one record per backup, restores by new service, policies by service. */
  backupTarget: (name: string) => `/kiver/backup-targets/${name}`,
  backupTargets: '/kiver/backup-targets/',
  backup: (id: string) => `/kiver/backups/${id}`,
  backups: '/kiver/backups/',
  backupsOf: (service: string) => `/kiver/backups/${service}.`,
  restore: (to: string) => `/kiver/restores/${to}`,
  restores: '/kiver/restores/',
  backupPolicy: (service: string) => `/kiver/backup-policies/${service}`,
  backupPolicies: '/kiver/backup-policies/',
  /** Catalog services (src/services/): generated credentials, sealed; roles written by the role controller. */
  serviceCredentials: (name: string) => `/kiver/service-credentials/${name}`,
  serviceRoles: (name: string) => `/kiver/service-roles/${name}`,
  serviceRolesAll: '/kiver/service-roles/',
  /** IP pools (src/ipam/): the pool, its addresses (one key each), each replica identity's binding, each node's held addresses. */
  pool: (name: string) => `/kiver/pools/${name}`,
  pools: '/kiver/pools/',
  /** Bumped by every pool create/delete: creates compare it, so two overlapping pools cannot both land. */
  poolsVersion: '/kiver/pool-index/version',
  /** Touched by every allocation in the pool: a delete compares it, so none slips in between its check and its delete. */
  poolUse: (pool: string) => `/kiver/pool-index/use-${pool}`,
  ip: (pool: string, ip: string) => `/kiver/ips/${pool}/${ip}`,
  ips: '/kiver/ips/',
  ipsOf: (pool: string) => `/kiver/ips/${pool}/`,
  ipOwner: (service: string, ordinal: number) => `/kiver/ip-owners/${service}/${ordinal}`,
  ipOwners: '/kiver/ip-owners/',
  ipHolders: (node: string) => `/kiver/ip-holders/${node}`,
  ipHolderReports: '/kiver/ip-holders/',
} as const;
