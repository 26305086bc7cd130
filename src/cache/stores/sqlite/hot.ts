/*
 * NAME
 *   cache/stores/sqlite/hot - the SQLite store's latest writes, kept in memory: sealed records by row id
 * SYNOPSIS
 *   new HotRecords(maxBytes)
 *   hot.add(id, k, record)        hot.get(id, k): Buffer | null | undefined
 *   hot.remove(id)                hot.clear()                     hot.held
 * DESCRIPTION
 *   A lookup served from the table costs a statement, often a page read past SQLite's small
 *   page cache, and a fresh buffer for the record: about three quarters of the store's cost
 *   of a lookup. The store (cache/stores/sqlite.ts) therefore keeps the key and record of
 *   its latest writes here, by row id, and probes the table only for rows no longer held.
 *   Rows are added in id order (the store's write order). They are held in one byte ring
 *   of maxBytes, each as a 4-byte header (key length, record length), the key bytes and
 *   the record: the newest write takes the place of the oldest ones it overlaps, which are
 *   no longer held (still in the table). A ring of start offsets, indexed by id, says
 *   where each held row is.
 *   get(id, k) answers for a row id the key index gave: the record (a view into the ring,
 *   valid until the next add()), null when the row is held under another key (a hash
 *   collision: the row is not k's, no probe needed), or undefined when the row is not held
 *   (ask the table). remove() forgets a row the store deleted and zeroes its bytes;
 *   clear() forgets every row (after SQLite rolled back writes) and zeroes the ring.
 *   Only sealed records (util/seal.ts) ever come here: no session is held in clear.
 * LIMITS
 *   At most maxBytes of rows (the ring is allocated zeroed at the first add(), and its pages
 *   cost memory as writes first reach them) plus 4 bytes of offset per id between the
 *   oldest held row and the newest, at most maxBytes / 16 ids; older rows are dropped first.
 *   A row over a quarter of maxBytes, or with a key or record over 65535 bytes, is not held.
 *   Ids must be added in increasing order; an id skipped is simply not held.
 * DIAGNOSTICS
 *   None: nothing here fails on data; a misuse (ids out of order) throws RangeError.
 * SEE ALSO
 *   cache/stores/sqlite.ts, cache/stores/sqlite/key-index.ts, test/unit/sqlite-parts.test.ts
 */

const HEADER = 4;
const MAX_FIELD = 0xffff;
/** Offset ring slots at first; doubled as needed, up to maxBytes / 16. */
const FIRST_SLOTS = 1024;

export class HotRecords {
  private ring = Buffer.alloc(0);
  /** Start offset in the ring of each held id (at id & mask), -1 for an id not held. */
  private starts = new Int32Array(0);
  private mask = -1;
  private readonly maxSlots: number;
  /** Held ids are in [first, end): end is one past the newest id added. */
  private first = 0;
  private end = 0;
  /** Where the next row is written. */
  private head = 0;
  /** The end of the part of the ring ever written (the rest was never touched). */
  private used = 0;

  constructor(private readonly maxBytes: number) {
    this.maxSlots = Math.max(FIRST_SLOTS, 2 ** Math.floor(Math.log2(Math.max(1, maxBytes / 16))));
  }

  /** Ids between the oldest row held and the newest (held or not). */
  get held(): number {
    return this.end - this.first;
  }

  /* add - hold row `id` (key k, sealed record), dropping the oldest rows it needs the room of */
  add(id: number, k: Uint8Array, record: Uint8Array): void {
    if (id < this.end) throw new RangeError(`hot records: id ${id} added after ${this.end - 1}`);
    const size = HEADER + k.length + record.length;
    if (size > this.maxBytes / 4 || k.length > MAX_FIELD || record.length > MAX_FIELD) {
      this.skipTo(id + 1);
      return;
    }
    if (this.ring.length === 0) this.ring = Buffer.alloc(this.maxBytes);
    this.skipTo(id);
    if (this.end - this.first >= this.maxSlots) this.dropOldest();
    else if (this.end - this.first >= this.starts.length) this.growSlots();
    let at = this.head;
    if (at + size > this.ring.length) {
      this.evict(at, this.ring.length); // the tail of the ring stays unused this lap
      at = 0;
    }
    this.evict(at, at + size);
    const ring = this.ring;
    ring.writeUInt16BE(k.length, at);
    ring.writeUInt16BE(record.length, at + 2);
    ring.set(k, at + HEADER);
    ring.set(record, at + HEADER + k.length);
    this.starts[id & this.mask] = at;
    this.end = id + 1;
    this.head = at + size;
    if (this.head > this.used) this.used = this.head;
  }

  /** The record of row id when it is held under key k; null: held under another key; undefined: not held. */
  get(id: number, k: Uint8Array): Buffer | null | undefined {
    if (id < this.first || id >= this.end) return undefined;
    const at = this.starts[id & this.mask];
    if (at < 0) return undefined;
    const ring = this.ring;
    const klen = (ring[at] << 8) | ring[at + 1];
    const key = at + HEADER;
    if (klen !== k.length || ring.compare(k, 0, klen, key, key + klen) !== 0) return null;
    const rlen = (ring[at + 2] << 8) | ring[at + 3];
    return ring.subarray(key + klen, key + klen + rlen);
  }

  /* remove - forget row id (deleted from the table) and zero its bytes */
  remove(id: number): void {
    if (id < this.first || id >= this.end) return;
    const slot = id & this.mask;
    const at = this.starts[slot];
    if (at < 0) return;
    this.ring.fill(0, at, at + this.sizeAt(at));
    this.starts[slot] = -1;
  }

  /* clear - forget every row and zero the ring */
  clear(): void {
    this.ring.fill(0, 0, this.used); // not the pages never written: they would cost memory
    this.starts.fill(-1);
    this.first = this.end;
    this.head = 0;
  }

  private sizeAt(at: number): number {
    const r = this.ring;
    return HEADER + ((r[at] << 8) | r[at + 1]) + ((r[at + 2] << 8) | r[at + 3]);
  }

  /* skipTo - ids from end up to `id` (excluded) are not held */
  private skipTo(id: number): void {
    if (this.end === this.first) {
      this.first = id;
      this.end = id;
      return;
    }
    while (this.end < id) {
      if (this.end - this.first >= this.maxSlots) this.dropOldest();
      else if (this.end - this.first >= this.starts.length) this.growSlots();
      this.starts[this.end & this.mask] = -1;
      this.end++;
    }
  }

  /* evict - drop the oldest rows while one of them lies in [from, to); rows are laid out in id order */
  private evict(from: number, to: number): void {
    while (this.first < this.end) {
      const at = this.starts[this.first & this.mask];
      if (at >= 0) {
        if (at >= to || at + this.sizeAt(at) <= from) return;
        this.ring.fill(0, at, at + this.sizeAt(at));
      }
      this.first++;
    }
  }

  private dropOldest(): void {
    this.remove(this.first);
    this.first++;
  }

  private growSlots(): void {
    const n = Math.max(FIRST_SLOTS, this.starts.length * 2);
    const next = new Int32Array(n).fill(-1);
    for (let id = this.first; id < this.end; id++) next[id & (n - 1)] = this.starts[id & this.mask];
    this.starts = next;
    this.mask = n - 1;
  }
}
