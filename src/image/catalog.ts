/**
 * The images Kiver can build offline from Debian packages. A recipe is data: its
 * canonical JSON is part of the build key, so any change to it gives a new tag.
 */
import { InputError } from '../errors.js';

export const IMAGE_REPO_PREFIX = 'kiver/';
export const DEBIAN_SUITE = 'bookworm';
const PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export type RecipeSource =
  /** One .deb from the host's apt, unpacked into an otherwise empty root. */
  | { kind: 'deb'; package: string }
  /** `debootstrap --variant=minbase SUITE`, then security/updates from the host's lists. */
  | { kind: 'debootstrap'; suite: string }
  /** The root of another recipe plus packages installed with apt inside it. */
  | { kind: 'derived'; base: string; install: string[] };

export interface RecipeFile {
  path: string;
  mode: number;
  content: string;
}

export interface ImageRecipe {
  name: string;
  description: string;
  source: RecipeSource;
  /** The package whose upstream version starts the tag (else the Debian suite). */
  tagFrom?: string;
  /** Directories created in the root (mode), e.g. the /data and /log mounts. */
  dirs: Record<string, number>;
  files: RecipeFile[];
  /** Paths emptied after install (the directory itself stays). */
  empty: string[];
  config: {
    cmd: string[];
    entrypoint?: string[];
    env: string[];
    workdir: string;
    exposedPorts?: string[];
  };
}

const MARIADB_ENTRYPOINT = `#!/bin/sh
# kiver/mariadb: initialise the data directory on first start, then run mariadbd.
# Root logs in over the unix socket; set MARIADB_ROOT_PASSWORD for root@'%' over TCP.
set -eu
DATADIR="\${MARIADB_DATADIR:-/data}"
mkdir -p "$DATADIR" /run/mysqld
chown mysql:mysql "$DATADIR" /run/mysqld
if [ ! -d "$DATADIR/mysql" ]; then
  echo "kiver/mariadb: initialising $DATADIR" >&2
  mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db --auth-root-authentication-method=socket >&2
  if [ -n "\${MARIADB_ROOT_PASSWORD:-}" ]; then
    pw=$(printf '%s' "$MARIADB_ROOT_PASSWORD" | sed "s/\\\\\\\\/\\\\\\\\\\\\\\\\/g; s/'/''/g")
    printf "FLUSH PRIVILEGES;\\nCREATE USER 'root'@'%%' IDENTIFIED BY '%s';\\nGRANT ALL ON *.* TO 'root'@'%%' WITH GRANT OPTION;\\n" "$pw" |
      mariadbd --user=mysql --datadir="$DATADIR" --bootstrap --skip-networking >&2
  fi
fi
exec mariadbd --user=mysql --datadir="$DATADIR" --bind-address=0.0.0.0 "$@"
`;

const ETC_PASSWD = 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n';
const ETC_GROUP = 'root:x:0:\nnogroup:x:65534:\n';

export const RECIPES: readonly ImageRecipe[] = [
  {
    name: 'busybox',
    description: 'tiny image for tests: static busybox, /data, /log',
    source: { kind: 'deb', package: 'busybox-static' },
    tagFrom: 'busybox-static',
    dirs: { '/tmp': 0o1777, '/data': 0o755, '/log': 0o755, '/root': 0o700, '/proc': 0o555, '/sys': 0o555, '/dev': 0o755, '/etc': 0o755 },
    files: [
      { path: '/etc/passwd', mode: 0o644, content: ETC_PASSWD },
      { path: '/etc/group', mode: 0o644, content: ETC_GROUP },
    ],
    empty: [],
    config: { cmd: ['sh'], env: [`PATH=${PATH}`], workdir: '/' },
  },
  {
    name: 'debian',
    description: `Debian ${DEBIAN_SUITE} minbase with current security updates`,
    source: { kind: 'debootstrap', suite: DEBIAN_SUITE },
    dirs: { '/data': 0o755, '/log': 0o755 },
    files: [],
    empty: [],
    config: { cmd: ['bash'], env: [`PATH=${PATH}`, 'LANG=C.UTF-8'], workdir: '/' },
  },
  {
    name: 'redis',
    description: 'redis-server from Debian, data in /data, no protected mode',
    source: { kind: 'derived', base: 'debian', install: ['redis-server'] },
    tagFrom: 'redis-server',
    dirs: { '/data': 0o755, '/log': 0o755 },
    files: [],
    empty: [],
    config: {
      cmd: ['redis-server', '--protected-mode', 'no', '--dir', '/data'],
      env: [`PATH=${PATH}`, 'LANG=C.UTF-8'],
      workdir: '/data',
      exposedPorts: ['6379/tcp'],
    },
  },
  {
    name: 'rsyslog',
    description: "rsyslog from Debian: a node's log shipper (imfile on the guard's flat directory → TCP syslog)",
    source: { kind: 'derived', base: 'debian', install: ['rsyslog'] },
    tagFrom: 'rsyslog',
    dirs: { '/data': 0o755, '/log': 0o755, '/var/spool/rsyslog': 0o700 },
    files: [],
    empty: [],
    // The configuration is mounted at /etc/rsyslog.conf by whoever runs it (kiver node init).
    config: { cmd: ['rsyslogd', '-n', '-f', '/etc/rsyslog.conf'], env: [`PATH=${PATH}`, 'LANG=C.UTF-8'], workdir: '/' },
  },
  {
    name: 'mariadb',
    description: 'mariadb-server from Debian (demo): initialises /data on first start',
    source: { kind: 'derived', base: 'debian', install: ['mariadb-server'] },
    tagFrom: 'mariadb-server',
    dirs: { '/data': 0o755, '/log': 0o755 },
    // The package's postinst initialises /var/lib/mysql (~100 MB); the image uses /data.
    files: [{ path: '/usr/local/bin/kiver-mariadb', mode: 0o755, content: MARIADB_ENTRYPOINT }],
    empty: ['/var/lib/mysql'],
    config: {
      cmd: ['/usr/local/bin/kiver-mariadb'],
      env: [`PATH=${PATH}`, 'LANG=C.UTF-8'],
      workdir: '/data',
      exposedPorts: ['3306/tcp'],
    },
  },
];

export function recipeNames(): string[] {
  return RECIPES.map((r) => r.name);
}

/** The recipe for NAME (also accepts `kiver/NAME`); unknown names list the known ones. */
export function getRecipe(name: string): ImageRecipe {
  const bare = name.startsWith(IMAGE_REPO_PREFIX) ? name.slice(IMAGE_REPO_PREFIX.length) : name;
  const r = RECIPES.find((x) => x.name === bare);
  if (!r) throw new InputError(`unknown image "${name}"; known images: ${recipeNames().join(', ')}`, 'name');
  return r;
}

export function imageRepo(name: string): string {
  return `${IMAGE_REPO_PREFIX}${name}`;
}
