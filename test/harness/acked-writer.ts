/**
 * A client that writes numbered records through an endpoint and remembers which
 * ones were acknowledged (the call returned success); a write whose outcome is
 * unknown (the connection broke) is not counted. Reconnects on any error.
 */
import mysql from 'mysql2/promise';
import { Redis } from 'ioredis';

export interface WriterBackend {
  connect(): Promise<void>;
  /** Resolves only when the write is acknowledged (COMMIT returned; WAIT 1 confirmed). */
  write(id: number): Promise<void>;
  close(): Promise<void>;
}

export class AckedWriter {
  readonly acked: number[] = [];
  readonly ackTimes: number[] = [];
  readonly failTimes: number[] = [];
  failed = 0;
  /** Distinct failure messages with their counts (for the test's report). */
  readonly errors = new Map<string, number>();
  private running = false;
  private loop?: Promise<void>;
  private next = 1;

  constructor(private readonly backend: WriterBackend) {}

  async start(): Promise<void> {
    await this.backend.connect();
    this.running = true;
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    let connected = true;
    while (this.running) {
      try {
        if (!connected) {
          await this.backend.connect();
          connected = true;
        }
        const id = this.next++;
        await this.backend.write(id);
        this.acked.push(id);
        this.ackTimes.push(Date.now());
      } catch (err) {
        const msg = (err as Error).message.slice(0, 120);
        this.errors.set(msg, (this.errors.get(msg) ?? 0) + 1);
        this.failed++;
        this.failTimes.push(Date.now());
        connected = false;
        await this.backend.close().catch(() => {});
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /**
   * How long after `t` (a kill) writes were acknowledged again: from t to the first
   * acknowledgement after the first failure that followed t (writes acknowledged
   * between the kill call and the process's death do not count as recovery).
   */
  outageAfter(t: number): number | undefined {
    const fail = this.failTimes.find((x) => x >= t);
    if (fail === undefined) return undefined;
    const ack = this.ackTimes.find((x) => x > fail);
    return ack === undefined ? undefined : ack - t;
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.backend.close().catch(() => {});
  }
}

export function mysqlWriter(opts: { host: string; port: number; user: string; password: string; database: string }, table = 'acked'): WriterBackend {
  let db: mysql.Connection | undefined;
  let created = false;
  return {
    async connect() {
      db = await mysql.createConnection({ ...opts, connectTimeout: 5000 });
      // Once: a DDL statement is binlogged even when the table exists.
      if (!created) await db.query(`CREATE TABLE IF NOT EXISTS ${db.escapeId(table)} (id INT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB`);
      created = true;
    },
    async write(id) {
      // autocommit: the INSERT returns after COMMIT (and the semi-sync acknowledgement).
      await db!.query({ sql: `INSERT INTO ${db!.escapeId(table)} (id) VALUES (?)`, timeout: 10_000 }, [id]);
    },
    async close() {
      db?.destroy();
      db = undefined;
    },
  };
}

/** INCR of one counter, acknowledged only when WAIT 1 confirms a replica has it; the acked value is the INCR's result. */
export function redisWriter(opts: { host: string; port: number; password: string }, key = 'counter'): WriterBackend & { values: number[] } {
  let r: Redis | undefined;
  const values: number[] = [];
  return {
    values,
    async connect() {
      r = new Redis({ ...opts, lazyConnect: true, connectTimeout: 5000, commandTimeout: 10_000, maxRetriesPerRequest: 0, retryStrategy: () => null, enableOfflineQueue: false });
      r.on('error', () => {});
      await r.connect();
    },
    async write() {
      const v = await r!.incr(key);
      const n = Number(await r!.call('WAIT', '1', '5000'));
      if (n < 1) throw new Error(`WAIT 1 confirmed ${n} replicas`);
      values.push(v);
    },
    async close() {
      r?.disconnect();
      r = undefined;
    },
  };
}
