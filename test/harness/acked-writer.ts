/**
 * A client that writes numbered records through an endpoint and remembers which
 * ones were acknowledged (the call returned success); a write whose outcome is
 * unknown (the connection broke) is not counted. Reconnects on any error.
 */
import mysql from 'mysql2/promise';

export interface WriterBackend {
  connect(): Promise<void>;
  /** Resolves only when the write is acknowledged (COMMIT returned; WAIT 1 confirmed). */
  write(id: number): Promise<void>;
  close(): Promise<void>;
}

export class AckedWriter {
  readonly acked: number[] = [];
  readonly ackTimes: number[] = [];
  failed = 0;
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
      } catch {
        this.failed++;
        connected = false;
        await this.backend.close().catch(() => {});
        await new Promise((r) => setTimeout(r, 100));
      }
    }
  }

  /** When the first write after `t` was acknowledged. */
  firstAckAfter(t: number): number | undefined {
    return this.ackTimes.find((x) => x > t);
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.backend.close().catch(() => {});
  }
}

export function mysqlWriter(opts: { host: string; port: number; user: string; password: string; database: string }): WriterBackend {
  let db: mysql.Connection | undefined;
  return {
    async connect() {
      db = await mysql.createConnection({ ...opts, connectTimeout: 5000 });
      await db.query('CREATE TABLE IF NOT EXISTS acked (id INT PRIMARY KEY, at TIMESTAMP(6) DEFAULT CURRENT_TIMESTAMP(6)) ENGINE=InnoDB');
    },
    async write(id) {
      // autocommit: the INSERT returns after COMMIT (and the semi-sync acknowledgement).
      await db!.query({ sql: 'INSERT INTO acked (id) VALUES (?)', timeout: 10_000 }, [id]);
    },
    async close() {
      db?.destroy();
      db = undefined;
    },
  };
}
