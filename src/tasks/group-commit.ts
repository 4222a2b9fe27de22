// Group commit on one bun:sqlite connection: the writes submitted during one event-loop turn
// run in one BEGIN IMMEDIATE … COMMIT, each inside its own savepoint, and each promise settles
// only after the COMMIT that holds its write returned.
import type { Database } from 'bun:sqlite'
import { failed, TurnBatch, type Outcome } from './batch'

/** Writes per transaction at most, so another process waiting for the write lock is not held up long. */
const MAX_BATCH = 256

type Write = () => unknown

export class GroupCommit {
  private readonly batch = new TurnBatch<Write, unknown>((writes) => this.execute(writes), MAX_BATCH)
  private readonly begin
  private readonly commit
  private readonly rollback
  private readonly savepoint
  private readonly release
  private readonly rollbackTo

  constructor(private readonly client: Database) {
    // IMMEDIATE takes the write lock up front (waiting up to busy_timeout for another process),
    // so the statements inside never meet SQLITE_BUSY halfway.
    this.begin = client.prepare('BEGIN IMMEDIATE')
    this.commit = client.prepare('COMMIT')
    this.rollback = client.prepare('ROLLBACK')
    this.savepoint = client.prepare('SAVEPOINT one_write')
    this.release = client.prepare('RELEASE one_write')
    this.rollbackTo = client.prepare('ROLLBACK TO one_write')
  }

  /**
   * Runs `write` (synchronous statements on this connection, no transaction of its own) in the
   * next group transaction. Resolves with its result once that transaction committed; rejects
   * with what it threw, its own statements rolled back and the rest of the batch unharmed.
   */
  run<T>(write: () => T): Promise<T> {
    return this.batch.add(write) as Promise<T>
  }

  /** One outcome per write; every one fails alike when the transaction cannot begin or commit. */
  private execute(writes: Write[]): Outcome<unknown>[] {
    try {
      // Statements of a closed bun:sqlite connection still run on its zombie handle; refuse instead.
      if (this.closed()) throw new Error('the database is closed')
      this.begin.run()
    } catch (error) {
      return writes.map(() => failed(error))
    }
    try {
      const outcomes = writes.map((write) => this.one(write))
      this.commit.run()
      return outcomes
    } catch (error) {
      try {
        if (this.client.inTransaction) this.rollback.run()
      } catch {
        // The connection is unusable; the error below is what the writers see.
      }
      return writes.map(() => failed(error))
    }
  }

  private one(write: Write): Outcome<unknown> {
    this.savepoint.run()
    try {
      const value = write()
      this.release.run()
      return { ok: true, value }
    } catch (error) {
      // SQLite itself rolled the whole transaction back (disk full, I/O error): the batch is lost.
      if (!this.client.inTransaction) throw error
      this.rollbackTo.run()
      this.release.run()
      return failed(error)
    }
  }

  private closed(): boolean {
    try {
      void this.client.inTransaction
      return false
    } catch {
      return true
    }
  }
}
