/*
 * NAME
 *   attr/writer - attr0 encoder
 * SYNOPSIS
 *   new Attr0Writer().int(name, v).str(name, s).data(name, bytes).end(): Buffer
 * DESCRIPTION
 *   Builds one attr0 list (util/attr_print0.c, spec 1.2): `name\0value\0` per attribute and a
 *   final `\0`. INT values go out as C's printf("%u") of the 32-bit value, so -1 is
 *   "4294967295" and -2 "4294967294"; DATA is base64 with padding; STR is sent verbatim and
 *   must not contain NUL. One writer per list: no state is shared between calls.
 * DIAGNOSTICS
 *   str() throws TypeError for a value containing NUL (a programming error, not peer input).
 * SEE ALSO
 *   util/attr_print0.c
 */

export class Attr0Writer {
  private parts: string[] = [];

  /** INT attribute, printed as unsigned 32-bit decimal. */
  int(name: string, value: number): this {
    this.parts.push(name, '\0', String(value >>> 0), '\0');
    return this;
  }

  /** STR attribute (latin1 bytes). */
  str(name: string, value: string): this {
    if (value.includes('\0')) throw new TypeError(`attr0 string value of ${name} contains NUL`);
    this.parts.push(name, '\0', value, '\0');
    return this;
  }

  /** DATA attribute, base64-encoded. */
  data(name: string, value: Uint8Array): this {
    const b = Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength);
    this.parts.push(name, '\0', b.toString('base64'), '\0');
    return this;
  }

  /** Terminate the list and return its bytes. */
  end(): Buffer {
    this.parts.push('\0');
    return Buffer.from(this.parts.join(''), 'latin1');
  }
}
