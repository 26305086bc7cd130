/*
 * NAME
 *   config/tlsmgrcf - the extension settings file $config_directory/tlsmgr.cf
 * SYNOPSIS
 *   isExtensionName(name): boolean
 *   readTlsmgrCf(path, opts): Map<string, string>
 *   mergeTlsmgrCf(table, ext, opts): void
 * DESCRIPTION
 *   Every setting of this tlsmgr that Postfix does not know (the extensions: tlsmgr_* but
 *   Postfix's own tlsmgr_service_name, and <cache_type>_tls_session_cache_max_entries,
 *   _max_size, _max_entry_size) lives in tlsmgr.cf, next to main.cf, so that main.cf holds
 *   only Postfix's parameters and `postconf -n` has no "unused parameter" to warn about.
 *   isExtensionName() tells the two apart; a private helper macro for tlsmgr.cf values can
 *   be given any tlsmgr_* name there.
 *
 *   readTlsmgrCf() opens the file as main.cf is opened (config/maincf.ts readCfFile()) and
 *   parses it with the same parser. An absent file is an empty one. As root reads it, it
 *   warns in postfix check's words when the file is owned by neither root nor the reading
 *   user, or is group or other writable: whoever can write it chooses where the ticket keys
 *   are shared (tlsmgr_tktkey_database = redis:<file>, a file read as root) and which
 *   socket the log goes to. It is not refused, as Postfix does not refuse such a main.cf,
 *   which has the same power (queue_directory, mail_owner, the cache databases).
 *
 *   mergeTlsmgrCf() makes the one table that tlsmgr reads, as if both files were one:
 *   - an extension still in main.cf is honoured, with one warning per name saying where it
 *     belongs; tlsmgr.cf's value wins when both set it;
 *   - a name in tlsmgr.cf that is not an extension (a Postfix parameter or any other name)
 *     is ignored with one warning per name: the rest of Postfix reads only main.cf, so such
 *     an entry would make this daemon see a queue_directory, mail_owner, cache timeout or
 *     $macro that smtpd and smtp do not see.
 *   The -o overrides are applied by the caller after this, so they win over both files.
 * LIMITS
 *   The merged table is one namespace: a Postfix parameter in main.cf whose value names an
 *   extension ("$tlsmgr_...") expands with tlsmgr.cf's value here, while Postfix's own
 *   programs, which never read tlsmgr.cf, expand it from main.cf alone.
 *   The mode checks look at the file only, not at the directories above it.
 * DIAGNOSTICS
 *   FatalError from readCfFile(): "open <path>: <strerror>" (EACCES, a dangling symbolic
 *   link, ...), "read <path>: <strerror>" (a directory), and the parse errors of
 *   config/maincf.ts. Warnings (no value is ever shown):
 *   "<main.cf>: parameter <name> belongs in <tlsmgr.cf>" (", which overrides it" when both
 *   set it), "<tlsmgr.cf>: parameter <name> belongs in <main.cf>; ignored",
 *   "not owned by root: <tlsmgr.cf>", "group or other writable: <tlsmgr.cf>".
 * SEE ALSO
 *   config/load.ts, config/maincf.ts, postfix-script (check-warn), postconf(1)
 */

import { readCfFile, parseMainCf } from './maincf.js';
import { CACHE_TYPES } from './types.js';

type Warn = (msg: string) => void;

/** The Postfix 3.7 parameters whose names start with "tlsmgr_" (`postconf -d`). */
const POSTFIX_TLSMGR_NAMES: ReadonlySet<string> = new Set(['tlsmgr_service_name']);

const CACHE_LIMIT_NAME = new RegExp(`^(?:${CACHE_TYPES.join('|')})_tls_session_cache_max_(?:entries|size|entry_size)$`);

/** A setting of this tlsmgr that Postfix does not know: it belongs in tlsmgr.cf. */
export function isExtensionName(name: string): boolean {
  if (name.startsWith('tlsmgr_')) return !POSTFIX_TLSMGR_NAMES.has(name);
  return CACHE_LIMIT_NAME.test(name);
}

export interface ReadTlsmgrCfOptions {
  readonly warn: Warn;
  /** The reading process's effective user ID (default process.geteuid()). */
  readonly euid?: number;
}

/** Read and parse tlsmgr.cf; an absent file gives an empty table. */
export function readTlsmgrCf(path: string, opts: ReadTlsmgrCfOptions): Map<string, string> {
  const file = readCfFile(path, true);
  if (file === undefined) return new Map();
  const euid = opts.euid ?? process.geteuid?.() ?? 0;
  if (file.stat.uid !== 0 && file.stat.uid !== euid) opts.warn(`not owned by root: ${path}`);
  if ((file.stat.mode & 0o022) !== 0) opts.warn(`group or other writable: ${path}`);
  return parseMainCf(file.text, path, { warn: opts.warn });
}

export interface MergeTlsmgrCfOptions {
  readonly mainPath: string;
  readonly tlsmgrPath: string;
  readonly warn: Warn;
}

/** Enter tlsmgr.cf's extensions into the main.cf table (see DESCRIPTION). */
export function mergeTlsmgrCf(table: Map<string, string>, ext: ReadonlyMap<string, string>, opts: MergeTlsmgrCfOptions): void {
  for (const name of table.keys()) {
    if (!isExtensionName(name)) continue;
    opts.warn(`${opts.mainPath}: parameter ${name} belongs in ${opts.tlsmgrPath}${ext.has(name) ? ', which overrides it' : ''}`);
  }
  for (const [name, value] of ext) {
    if (isExtensionName(name)) table.set(name, value);
    else opts.warn(`${opts.tlsmgrPath}: parameter ${name} belongs in ${opts.mainPath}; ignored`);
  }
}
