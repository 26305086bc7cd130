/*
 * NAME
 *   master/status - the master(8) status channel on fd 5
 * SYNOPSIS
 *   const st = new MasterStatus(fd, generation, onGone)
 *   st.taken() / st.avail() / st.close()
 *   parseGeneration(text): number
 * DESCRIPTION
 *   master_notify() records (spec 5.3): 12 bytes in one write, x86-64 layout:
 *   int32 pid, uint32 generation, int32 status (0 TAKEN = busy, 1 AVAIL = idle). The
 *   multi-server skeleton sends TAKEN before it serves a readable client connection and
 *   AVAIL after. The channel becoming readable (EOF when master exits or on `postfix
 *   reload`, any data, or an error) means "master gone": onGone runs once (the daemon then
 *   saves the PRNG exchange file and exits 0). A failed AVAIL write counts as master gone.
 * DIAGNOSTICS
 *   parseGeneration() throws FatalError("bad generation: <text>") unless all octal digits.
 * SEE ALSO
 *   master/master_proto.c master_notify(), master/multi_server.c multi_server_abort()
 */

import { Socket } from 'node:net';
import { FatalError } from '../util/errors.js';

export const MASTER_STAT_TAKEN = 0;
export const MASTER_STAT_AVAIL = 1;

export function parseGeneration(text: string): number {
  if (!/^[0-7]+$/.test(text)) throw new FatalError(`bad generation: ${text}`);
  return parseInt(text, 8) >>> 0;
}

export function statusRecord(pid: number, generation: number, status: number): Buffer {
  const b = Buffer.alloc(12);
  b.writeInt32LE(pid, 0);
  b.writeUInt32LE(generation >>> 0, 4);
  b.writeInt32LE(status, 8);
  return b;
}

export class MasterStatus {
  private readonly sock: Socket;
  private readonly takenRec: Buffer;
  private readonly availRec: Buffer;
  private gone = false;

  constructor(fd: number, generation: number, private readonly onGone: () => void) {
    this.sock = new Socket({ fd, readable: true, writable: true });
    this.takenRec = statusRecord(process.pid, generation, MASTER_STAT_TAKEN);
    this.availRec = statusRecord(process.pid, generation, MASTER_STAT_AVAIL);
    const lost = (): void => this.lost();
    this.sock.on('data', lost);
    this.sock.on('end', lost);
    this.sock.on('close', lost);
    this.sock.on('error', lost);
  }

  taken(): void {
    if (!this.gone) this.sock.write(this.takenRec);
  }

  avail(): void {
    if (!this.gone) this.sock.write(this.availRec, (err) => err && this.lost());
  }

  close(): void {
    this.gone = true;
    this.sock.destroy();
  }

  private lost(): void {
    if (this.gone) return;
    this.gone = true;
    this.onGone();
  }
}
