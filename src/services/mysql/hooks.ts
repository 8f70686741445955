/**
 * MariaDB lifecycle hooks over the SQL protocol (mysql2), as root with the
 * generated admin password. Positions are GTID sequence numbers of domain 0:
 * with gtid_strict_mode they only grow, whichever server wrote them.
 */
import { Readable } from 'node:stream';
import mysql, { type Connection, type RowDataPacket } from 'mysql2/promise';
import type { Addr, HookContext, Hooks, Probe } from '../types.js';

const CONNECT_TIMEOUT_MS = 1500;

async function connect(at: Addr, c: HookContext): Promise<Connection> {
  return mysql.createConnection({
    host: at.host, port: at.port, user: 'root', password: c.credentials.admin,
    connectTimeout: CONNECT_TIMEOUT_MS, multipleStatements: false, supportBigNumbers: true,
  });
}

async function withConn<T>(at: Addr, c: HookContext, fn: (db: Connection) => Promise<T>): Promise<T> {
  const db = await connect(at, c);
  try {
    return await fn(db);
  } finally {
    db.destroy();
  }
}

async function rows(db: Connection, sql: string, args: unknown[] = []): Promise<RowDataPacket[]> {
  const [r] = await db.query<RowDataPacket[]>(sql, args);
  return r;
}

/** The sequence number of domain 0 in a GTID list such as "0-2-117" or "0-1-5,1-3-9"; 0 if none. */
export function gtidSeq(list: string | null | undefined): number {
  for (const g of (list ?? '').split(',')) {
    const m = /^\s*(\d+)-(\d+)-(\d+)\s*$/.exec(g);
    if (m && m[1] === '0') return Number(m[3]);
  }
  return 0;
}

/** ER_LOCK_WAIT_TIMEOUT: `SET GLOBAL read_only` gave up waiting for commits in flight. */
const LOCK_WAIT_TIMEOUT_ERRNO = 1205;

/** Ends every client session of the application user (not ours, not replication's). */
async function killAppSessions(db: Connection): Promise<void> {
  const conns = await rows(db, "SELECT ID FROM information_schema.PROCESSLIST WHERE USER = 'app'");
  for (const r of conns) await db.query('KILL CONNECTION ?', [Number(r.ID)]).catch(() => {});
}

/**
 * `read_only = ON` waits for the commits in flight. On a primary cut off from its replicas a
 * commit waits for a semi-sync ACK that never comes (the timeout is days, by design), so the
 * fence would wait forever: end the application's sessions first — a commit that was never
 * acknowledged may be dropped, and a rejoin rebuilds a history that diverged — and retry
 * with a bounded lock wait, in case a client got in again meanwhile.
 */
async function makeReadOnly(db: Connection): Promise<void> {
  await db.query('SET SESSION lock_wait_timeout = 2');
  for (let attempt = 1; ; attempt++) {
    await killAppSessions(db);
    try {
      await db.query('SET GLOBAL read_only = ON');
      return;
    } catch (err) {
      if ((err as { errno?: number }).errno !== LOCK_WAIT_TIMEOUT_ERRNO || attempt === 5) throw err;
    }
  }
}

/** IO error 1236: the source does not have the GTID the replica asks for — its history diverged. */
const DIVERGED_ERRNO = 1236;

async function probe(at: Addr, c: HookContext): Promise<Probe> {
  let db: Connection;
  try {
    db = await connect(at, c);
  } catch (err) {
    return { up: false, role: 'none', position: 0, positionText: '', error: (err as Error).message };
  }
  try {
    const [v] = await rows(db, 'SELECT @@read_only AS ro, @@gtid_binlog_pos AS b, @@gtid_current_pos AS cur');
    const [s] = await rows(db, 'SHOW SLAVE STATUS');
    if (s && s.Master_Host) {
      const io = String(s.Gtid_IO_Pos ?? '');
      const linkUp = s.Slave_IO_Running === 'Yes' && s.Slave_SQL_Running === 'Yes';
      const ioErr = Number(s.Last_IO_Errno ?? 0);
      return {
        up: true, role: 'replica', source: { host: String(s.Master_Host), port: Number(s.Master_Port) }, linkUp,
        position: Math.max(gtidSeq(io), gtidSeq(String(v.cur))), positionText: String(v.cur),
        ...(s.Seconds_Behind_Master !== null && s.Seconds_Behind_Master !== undefined ? { lagSeconds: Number(s.Seconds_Behind_Master) } : {}),
        ...(ioErr === DIVERGED_ERRNO ? { diverged: true } : {}),
        ...(s.Last_IO_Error || s.Last_SQL_Error ? { error: String(s.Last_IO_Error || s.Last_SQL_Error) } : {}),
      };
    }
    return { up: true, role: Number(v.ro) === 0 ? 'primary' : 'none', position: gtidSeq(String(v.b)), positionText: String(v.b) };
  } catch (err) {
    return { up: false, role: 'none', position: 0, positionText: '', error: (err as Error).message };
  } finally {
    db.destroy();
  }
}

/** Runs a dump's statements (each ends with ";\n"; values never contain a raw newline: they are escaped). */
async function applyDump(db: Connection, stream: Readable): Promise<void> {
  await db.query('USE app');
  let buf = '';
  for await (const chunk of stream) {
    buf += String(chunk);
    let i: number;
    while ((i = buf.indexOf(';\n')) >= 0) {
      await db.query(buf.slice(0, i));
      buf = buf.slice(i + 2);
    }
  }
}

export const mysqlHooks: Hooks = {
  probe,

  async init(primary, c) {
    await withConn(primary, c, async (db) => {
      // Binlogged, so every replica that starts from an empty position replays them.
      await db.query("CREATE USER IF NOT EXISTS 'repl'@'%' IDENTIFIED BY ?", [c.credentials.replication]);
      await db.query("GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'repl'@'%'");
      await db.query('CREATE DATABASE IF NOT EXISTS app');
      await db.query("CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY ?", [c.credentials.app]);
      await db.query("GRANT ALL ON app.* TO 'app'@'%'");
    });
  },

  async replicate(replica, primary, c) {
    await withConn(replica, c, async (db) => {
      await makeReadOnly(db);
      await db.query('SET GLOBAL rpl_semi_sync_master_enabled = OFF');
      await db.query('STOP SLAVE');
      // current_pos: a former primary resumes after its own (truncated) binlog, a replica after what it applied.
      await db.query(
        "CHANGE MASTER TO MASTER_HOST = ?, MASTER_PORT = ?, MASTER_USER = 'repl', MASTER_PASSWORD = ?, MASTER_USE_GTID = current_pos, MASTER_CONNECT_RETRY = 1",
        [primary.host, primary.port, c.credentials.replication],
      );
      await db.query('START SLAVE');
    });
  },

  async promote(replica, c) {
    await withConn(replica, c, async (db) => {
      const [s] = await rows(db, 'SHOW SLAVE STATUS');
      if (s && s.Master_Host) {
        await db.query('STOP SLAVE IO_THREAD');
        // Apply every transaction it received (acknowledged commits are among them) before it takes writes.
        const io = String(s.Gtid_IO_Pos ?? '');
        if (io) {
          const [w] = await rows(db, 'SELECT MASTER_GTID_WAIT(?, 60) AS r', [io]);
          if (Number(w.r) !== 0) throw new Error(`replica did not apply its relay log up to ${io} within 60 s`);
        }
        await db.query('STOP SLAVE');
        await db.query('RESET SLAVE ALL');
      }
    });
  },

  async open(primary, c) {
    await withConn(primary, c, async (db) => {
      if (c.syncReplicas > 0) await db.query('SET GLOBAL rpl_semi_sync_master_enabled = ON');
      await db.query('SET GLOBAL read_only = OFF');
    });
  },

  async fence(at, c) {
    await withConn(at, c, async (db) => {
      await makeReadOnly(db);
      // Sessions that were writing keep no open transaction on a fenced server.
      await killAppSessions(db);
    });
  },

  /** A logical dump of the `app` database taken in one consistent snapshot, and the GTID position it ends at. */
  async backup(at, c) {
    const db = await connect(at, c);
    // The snapshot and its GTID position together (what mysqldump --master-data does): writes pause for milliseconds.
    await db.query('FLUSH TABLES WITH READ LOCK');
    await db.query('START TRANSACTION WITH CONSISTENT SNAPSHOT');
    const [pos] = await rows(db, 'SELECT @@gtid_binlog_pos AS Value');
    await db.query('UNLOCK TABLES');
    const tables = (await rows(db, "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'app' AND TABLE_TYPE = 'BASE TABLE'")).map((r) => String(r.t));
    async function* dump(): AsyncGenerator<string> {
      try {
        for (const t of tables) {
          const [ddl] = await rows(db, `SHOW CREATE TABLE app.${db.escapeId(t)}`);
          yield `DROP TABLE IF EXISTS ${db.escapeId(t)};\n${String(ddl['Create Table'])};\n`;
          for (const r of await rows(db, `SELECT * FROM app.${db.escapeId(t)}`)) {
            yield `INSERT INTO ${db.escapeId(t)} VALUES (${Object.values(r).map((v) => db.escape(v)).join(',')});\n`;
          }
        }
      } finally {
        await db.query('COMMIT').catch(() => {});
        db.destroy();
      }
    }
    return { stream: Readable.from(dump()), position: String(pos?.Value ?? '') };
  },

  async restore(at, c, stream) {
    await withConn(at, c, async (db) => {
      await db.query('CREATE DATABASE IF NOT EXISTS app');
      await applyDump(db, stream);
    });
  },

  /**
   * Drop the diverged history (its binlog and the app database) and load a consistent
   * dump of the primary, not binlogged, then replicate from the dump's GTID position.
   */
  async rebuild(replica, primary, c) {
    const { stream, position } = await mysqlHooks.backup(primary, c);
    await withConn(replica, c, async (db) => {
      await makeReadOnly(db);
      await db.query('STOP SLAVE');
      await db.query('RESET SLAVE ALL');
      await db.query('RESET MASTER');
      await db.query('SET SESSION sql_log_bin = 0');
      await db.query('DROP DATABASE IF EXISTS app');
      await db.query('CREATE DATABASE app');
      await applyDump(db, stream);
      await db.query('SET GLOBAL gtid_slave_pos = ?', [position]);
    });
    await mysqlHooks.replicate(replica, primary, c);
  },
};
