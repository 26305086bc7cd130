/*
 * NAME
 *   config/load - build the frozen TlsmgrConfig from main.cf, tlsmgr.cf, -o overrides and defaults
 * DESCRIPTION
 *   loadConfig() follows the order of multi_server_main(): the configuration table starts
 *   with config_directory and process_name, main.cf is read into it (mail_conf_suck()),
 *   then the extensions of $config_directory/tlsmgr.cf (config/tlsmgrcf.ts: optional, same
 *   syntax; an extension left in main.cf is honoured with a warning, tlsmgr.cf wins; any
 *   other name in tlsmgr.cf is ignored with a warning), so that "$name" in either file sees
 *   both as one table; each "-o name=value" replaces an entry (mail_conf_update()), over
 *   both files; then process_name and service_name are entered (again): both are
 *   read-only, so neither main.cf nor "-o process_name=..." / "-o service_name=..."
 *   changes $process_name or $service_name, silently, as in Postfix 3.12 (snapshot
 *   20260508 on; Postfix 3.7-3.11 protect only service_name this way; postconf(1) warns
 *   "read-only parameter assignment" for both).
 *   The real names are opts.processName (basename of argv[0]) and opts.serviceName (-n).
 *   Then parameters are read in the order of mail_params_init() followed by tlsmgr.c's
 *   time, int and string tables, and last the extensions (tlsmgr_* and the per-cache limits
 *   *_tls_session_cache_max_entries, _max_size, _max_entry_size: 0 = no limit).
 *
 *   Reading a parameter expands its value recursively (mail_conf_lookup_eval()). An absent
 *   parameter gets its built-in default, which is entered into the table as Postfix does
 *   (string defaults expanded, time and boolean-expression defaults raw, integers as
 *   decimal), so a later "$name" sees it; a "$name" of a parameter that has not been read
 *   yet and is in neither file is empty, exactly as in Postfix.
 *
 *   The returned lookup(name) gives a parameter's expanded value from the final table
 *   (both files merged, -o applied), or undefined when it is neither configured nor one of
 *   the parameters read here; like mail_conf_lookup_eval() it throws the macro FatalError
 *   for a value with bad syntax.
 * LIMITS
 *   Only the parameters tlsmgr and the generic server skeleton use are known; other
 *   mail_params_init() checks (mail_owner exists, myhostname, ...) are not made here.
 * DIAGNOSTICS
 *   FatalError, first error wins: the main.cf errors of config/maincf.ts, the tlsmgr.cf
 *   errors of config/tlsmgrcf.ts (an unreadable tlsmgr.cf is fatal, an absent one is not),
 *   "invalid \"-o <arg>\" option value: <split_nameval error>" (master/multi_server.c),
 *   "malformed compatibility level syntax: \"<v>\"" (global/compat_level.c),
 *   "file <dir>/main.cf: parameter syslog_facility: unrecognized value: <v>"
 *   (global/mail_params.c), the macro errors of config/expand.ts and the value errors of
 *   config/units.ts, "tlsmgr_metrics_listen = <v>: use host:port ..." (parseListenAddress). Warnings (duplicate entries, macro syntax, a setting in the wrong file,
 *   tlsmgr.cf's owner and mode) go to opts.warn.
 * SEE ALSO
 *   master/multi_server.c (multi_server_main), global/mail_conf.c, global/mail_params.c
 *   (mail_params_init), global/mail_params.h (defaults), tlsmgr/tlsmgr.c (main)
 */

import { FatalError } from '../util/errors.js';
import { CACHE_TYPES, type CacheParams, type CacheType, type ListenAddress, type TlsmgrConfig } from './types.js';
import { dictEval } from './expand.js';
import { readMainCf, splitNameVal } from './maincf.js';
import { mergeTlsmgrCf, readTlsmgrCf } from './tlsmgrcf.js';
import { checkInt, checkLong, checkStr, checkTime, compatLevelFromString, parseBool, parseConfInt, parseConfLong, parseTime } from './units.js';

export interface LoadConfigOptions {
  /** The configuration directory ($MAIL_CONFIG or /etc/postfix); main.cf and tlsmgr.cf are read from it. */
  readonly configDir: string;
  /** The -o arguments, in command-line order. */
  readonly overrides: readonly string[];
  /** Receives Postfix warning texts (without the "warning: " prefix). */
  readonly warn?: (msg: string) => void;
  /** process_name, basename(argv[0]) in Postfix. Default "tlsmgr". */
  readonly processName?: string;
  /** service_name, the -n value or the process name. Default: processName. */
  readonly serviceName?: string;
}

export interface LoadedConfig {
  readonly config: TlsmgrConfig;
  /** Expanded value of any parameter in the final table, or undefined. */
  readonly lookup: (name: string) => string | undefined;
}

/** Built-in defaults (Postfix 3.7.11 on Debian, as `postconf -d` shows them). */
export const DEFAULTS = Object.freeze({
  compatibility_level: '0',
  syslog_facility: 'mail',
  multi_instance_name: '',
  maillog_file: '',
  smtputf8_enable: '${{$compatibility_level} <level {1} ? {no} : {yes}}',
  syslog_name: '${multi_instance_name?{$multi_instance_name}:{postfix}}',
  mail_owner: 'postfix',
  daemon_directory: '/usr/lib/postfix/sbin',
  data_directory: '/var/lib/postfix',
  queue_directory: '/var/spool/postfix',
  default_database_type: 'hash',
  max_use: 100,
  max_idle: '100s',
  ipc_timeout: '3600s',
  daemon_timeout: '18000s',
  tls_random_reseed_period: '3600s',
  tls_random_prng_update_period: '3600s',
  smtpd_tls_session_cache_timeout: '3600s',
  smtp_tls_session_cache_timeout: '3600s',
  lmtp_tls_session_cache_timeout: '3600s',
  tls_random_bytes: 32,
  tls_random_source: 'dev:/dev/urandom',
  tls_random_exchange_name: '${data_directory}/prng_exch',
  smtpd_tls_session_cache_database: '',
  smtp_tls_session_cache_database: '',
  lmtp_tls_session_cache_database: '',
  smtpd_tls_loglevel: '0',
  smtp_tls_loglevel: '0',
  lmtp_tls_loglevel: '0',
  tlsmgr_service_name: 'tlsmgr',
  tlsmgr_attr_name_limit: 256,
  tlsmgr_attr_value_limit: 1500000,
  tlsmgr_attr_count_limit: 32,
  tlsmgr_cache_id_limit: 65536,
  tlsmgr_session_limit: 1048576,
  tlsmgr_connection_limit: 8192,
  tlsmgr_input_buffer_limit: 67108864,
  tlsmgr_stats_interval: '3600s',
  smtpd_tls_session_cache_max_entries: 1000000,
  smtp_tls_session_cache_max_entries: 1000000,
  lmtp_tls_session_cache_max_entries: 1000000,
  smtpd_tls_session_cache_max_size: 1073741824,
  smtp_tls_session_cache_max_size: 1073741824,
  lmtp_tls_session_cache_max_size: 1073741824,
  smtpd_tls_session_cache_max_entry_size: 65536,
  smtp_tls_session_cache_max_entry_size: 65536,
  lmtp_tls_session_cache_max_entry_size: 65536,
  tlsmgr_syslog_socket: '/dev/log',
  tlsmgr_tktkey_database: '',
  tlsmgr_metrics_listen: '',
});

/** MAX_SMTPD_TLS_SCACHETIME etc.: 100 days. */
const MAX_SCACHE_TIMEOUT = 8640000;

/** msg_syslog.c facility_list on Linux (no LOG_SECURITY). */
const FACILITIES: readonly string[] = [
  'auth', 'authpriv', 'cron', 'daemon', 'ftp', 'kern', 'lpr', 'mail', 'news', 'syslog',
  'user', 'uucp', 'local0', 'local1', 'local2', 'local3', 'local4', 'local5', 'local6', 'local7',
];

/** The get_mail_conf_*() family over one configuration table. */
class ConfTable {
  constructor(private readonly dict: Map<string, string>, private readonly warn: (m: string) => void) {}

  /** mail_conf_lookup_eval(). */
  lookupEval(name: string): string | undefined {
    const raw = this.dict.get(name);
    if (raw === undefined) return undefined;
    return dictEval(raw, (n) => this.dict.get(n), { warn: this.warn });
  }

  str(name: string, defval: string, min = 0, max = 0): string {
    let v = this.lookupEval(name);
    if (v === undefined) {
      v = dictEval(defval, (n) => this.dict.get(n), { warn: this.warn });
      this.dict.set(name, v);
    }
    return checkStr(name, v, min, max);
  }

  /** get_mail_conf_time() with the default unit of the (all "...s") defaults. */
  time(name: string, defval: string, min = 0, max = 0): number {
    if (!this.dict.has(name)) this.dict.set(name, defval);
    return checkTime(name, parseTime(name, this.lookupEval(name) ?? defval, 's'), min, max);
  }

  /** get_mail_conf_long(): like int() over a C long (here bounded by the caller's max). */
  long(name: string, defval: number, min = 0, max = 0): number {
    const v = this.lookupEval(name);
    let n = defval;
    if (v === undefined) this.dict.set(name, String(defval));
    else n = parseConfLong(name, v);
    return checkLong(name, n, min, max);
  }

  int(name: string, defval: number, min = 0, max = 0): number {
    const v = this.lookupEval(name);
    let n = defval;
    if (v === undefined) this.dict.set(name, String(defval));
    else n = parseConfInt(name, v);
    return checkInt(name, n, min, max);
  }

  /** get_mail_conf_nbool(): the default is an expression, entered raw and then evaluated. */
  nbool(name: string, defval: string): boolean {
    if (!this.dict.has(name)) this.dict.set(name, defval);
    return parseBool(name, this.lookupEval(name) ?? defval);
  }
}

/*
 * parseListenAddress - "host:port" or "[ipv6]:port" (a port 1..65535, a host that is not
 * empty); empty means none. A bad value is fatal, as Postfix's bad parameter values are.
 */
export function parseListenAddress(name: string, value: string): ListenAddress | null {
  if (value === '') return null;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^\s:[\]]+)):(\d{1,5})$/.exec(value);
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || !(port >= 1 && port <= 65535)) {
    throw new FatalError(`${name} = ${value}: use host:port or [ipv6-address]:port with a port from 1 to 65535, e.g. 127.0.0.1:9155`);
  }
  return { host: m[1] ?? m[2], port };
}

export function loadConfig(opts: LoadConfigOptions): LoadedConfig {
  const warn = opts.warn ?? ((): void => undefined);
  const processName = opts.processName ?? 'tlsmgr';
  const dict = new Map<string, string>();
  dict.set('config_directory', opts.configDir);
  dict.set('process_name', processName);
  // mail_conf_suck() concatenates without normalising, and so do its messages.
  const mainPath = `${opts.configDir}/main.cf`;
  const tlsmgrPath = `${opts.configDir}/tlsmgr.cf`;
  readMainCf(mainPath, { into: dict, warn });
  mergeTlsmgrCf(dict, readTlsmgrCf(tlsmgrPath, { warn }), { mainPath, tlsmgrPath, warn });
  for (const o of opts.overrides) {
    const nv = splitNameVal(o);
    if ('error' in nv) throw new FatalError(`invalid "-o ${o}" option value: ${nv.error}`);
    dict.set(nv.name, nv.value);
  }
  // Read-only: a $process_name or $service_name in syslog_name, a path or any other value
  // must name this very process and service, whatever main.cf or master.cf -o say.
  dict.set('process_name', processName);
  dict.set('service_name', opts.serviceName ?? processName);

  const t = new ConfTable(dict, warn);
  const D = DEFAULTS;

  // mail_params_init(): compatibility level first, then syslog_facility, ...
  const compat = t.str('compatibility_level', D.compatibility_level);
  if (compatLevelFromString(compat) === undefined) {
    throw new FatalError(`malformed compatibility level syntax: "${compat}"`);
  }
  const syslogFacility = t.str('syslog_facility', D.syslog_facility, 1);
  if (!FACILITIES.includes(syslogFacility)) {
    throw new FatalError(`file ${opts.configDir}/main.cf: parameter syslog_facility: unrecognized value: ${syslogFacility}`);
  }
  t.str('multi_instance_name', D.multi_instance_name);
  const maillogFile = t.str('maillog_file', D.maillog_file);
  const smtputf8Enable = t.nbool('smtputf8_enable', D.smtputf8_enable);
  const syslogName = t.str('syslog_name', D.syslog_name, 1);
  const mailOwner = t.str('mail_owner', D.mail_owner, 1);
  const daemonDirectory = t.str('daemon_directory', D.daemon_directory, 1);
  const dataDirectory = t.str('data_directory', D.data_directory, 1);
  const queueDirectory = t.str('queue_directory', D.queue_directory, 1);
  const defaultDatabaseType = t.str('default_database_type', D.default_database_type, 1);
  t.int('max_use', D.max_use, 1);
  t.time('max_idle', D.max_idle, 1);
  const ipcTimeout = t.time('ipc_timeout', D.ipc_timeout, 1);
  const daemonTimeout = t.time('daemon_timeout', D.daemon_timeout, 1);

  // tlsmgr.c main(): time table, int table, string table.
  const tlsRandomReseedPeriod = t.time('tls_random_reseed_period', D.tls_random_reseed_period, 1);
  const tlsRandomPrngUpdatePeriod = t.time('tls_random_prng_update_period', D.tls_random_prng_update_period, 1);
  const timeouts = {} as Record<CacheType, number>;
  for (const ct of CACHE_TYPES) {
    timeouts[ct] = t.time(`${ct}_tls_session_cache_timeout`, D[`${ct}_tls_session_cache_timeout`], 0, MAX_SCACHE_TIMEOUT);
  }
  const tlsRandomBytes = t.int('tls_random_bytes', D.tls_random_bytes, 1);
  const tlsRandomSource = t.str('tls_random_source', D.tls_random_source);
  const tlsRandomExchangeName = t.str('tls_random_exchange_name', D.tls_random_exchange_name);
  const databases = {} as Record<CacheType, string>;
  for (const ct of CACHE_TYPES) {
    databases[ct] = t.str(`${ct}_tls_session_cache_database`, D[`${ct}_tls_session_cache_database`]);
  }
  const loglevels = {} as Record<CacheType, string>;
  for (const ct of CACHE_TYPES) loglevels[ct] = t.str(`${ct}_tls_loglevel`, D[`${ct}_tls_loglevel`]);
  // Read by the clients (tls_misc.c), min length 1.
  const tlsmgrServiceName = t.str('tlsmgr_service_name', D.tlsmgr_service_name, 1);

  // Extensions (not in Postfix; tlsmgr.cf).
  const attrNameLimit = t.int('tlsmgr_attr_name_limit', D.tlsmgr_attr_name_limit, 1);
  const attrValueLimit = t.int('tlsmgr_attr_value_limit', D.tlsmgr_attr_value_limit, 1);
  const attrCountLimit = t.int('tlsmgr_attr_count_limit', D.tlsmgr_attr_count_limit, 1);
  const cacheIdLimit = t.int('tlsmgr_cache_id_limit', D.tlsmgr_cache_id_limit, 1);
  const sessionLimit = t.int('tlsmgr_session_limit', D.tlsmgr_session_limit, 1);
  const connectionLimit = t.int('tlsmgr_connection_limit', D.tlsmgr_connection_limit, 1);
  const inputBufferLimit = t.long('tlsmgr_input_buffer_limit', D.tlsmgr_input_buffer_limit, 1, Number.MAX_SAFE_INTEGER);
  const statsInterval = t.time('tlsmgr_stats_interval', D.tlsmgr_stats_interval, 0);
  // Cache limits: 0 = no limit. check_mail_conf_int() skips a zero minimum, so the sign is checked here.
  const limit = (name: string, n: number): number => {
    if (n < 0) throw new FatalError(`invalid ${name} parameter value ${n} < 0`);
    return n;
  };
  const limits = {} as Record<CacheType, Pick<CacheParams, 'maxEntries' | 'maxSize' | 'maxEntrySize'>>;
  for (const ct of CACHE_TYPES) {
    const p = `${ct}_tls_session_cache_`;
    limits[ct] = {
      maxEntries: limit(`${p}max_entries`, t.int(`${p}max_entries`, D[`${ct}_tls_session_cache_max_entries`])),
      maxSize: limit(`${p}max_size`, t.long(`${p}max_size`, D[`${ct}_tls_session_cache_max_size`], 0, Number.MAX_SAFE_INTEGER)),
      maxEntrySize: limit(`${p}max_entry_size`, t.int(`${p}max_entry_size`, D[`${ct}_tls_session_cache_max_entry_size`])),
    };
  }
  const syslogPath = t.str('tlsmgr_syslog_socket', D.tlsmgr_syslog_socket, 1);
  const tktkeyDatabase = t.str('tlsmgr_tktkey_database', D.tlsmgr_tktkey_database);
  const metricsListen = parseListenAddress('tlsmgr_metrics_listen', t.str('tlsmgr_metrics_listen', D.tlsmgr_metrics_listen));

  const cache = {} as Record<CacheType, CacheParams>;
  for (const ct of CACHE_TYPES) {
    cache[ct] = Object.freeze({ database: databases[ct], timeout: timeouts[ct], loglevel: loglevels[ct], ...limits[ct] });
  }
  const config: TlsmgrConfig = Object.freeze({
    configDirectory: opts.configDir,
    queueDirectory,
    dataDirectory,
    daemonDirectory,
    mailOwner,
    syslogName,
    syslogFacility,
    maillogFile,
    tlsmgrServiceName,
    defaultDatabaseType,
    smtputf8Enable,
    ipcTimeout,
    daemonTimeout,
    cache: Object.freeze(cache),
    tlsRandomSource,
    tlsRandomBytes,
    tlsRandomReseedPeriod,
    tlsRandomPrngUpdatePeriod,
    tlsRandomExchangeName,
    attrNameLimit,
    attrValueLimit,
    attrCountLimit,
    cacheIdLimit,
    sessionLimit,
    connectionLimit,
    inputBufferLimit,
    statsInterval,
    syslogPath,
    tktkeyDatabase,
    metricsListen,
  });
  return { config, lookup: (name) => t.lookupEval(name) };
}
