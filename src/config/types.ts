/*
 * NAME
 *   config/types - the typed, frozen configuration every other module receives
 * DESCRIPTION
 *   TlsmgrConfig is built once at startup by config/load.ts from main.cf, tlsmgr.cf (the
 *   extensions), `-o` overrides and built-in defaults (Postfix 3.7 names, defaults and
 *   units). Times are in seconds, sizes in bytes.
 *   Values are as configured: the session-cache timeouts are sanitised later (cache/, spec 3.2).
 *   No module reads main.cf, tlsmgr.cf, process.env or parameter names on its own; they
 *   take this object.
 * SEE ALSO
 *   global/mail_params.h, tlsmgr/tlsmgr.c main() parameter tables.
 */

/** The three cache types of tls/tls.h, in Postfix's table order. */
export const CACHE_TYPES = ['smtpd', 'smtp', 'lmtp'] as const;
export type CacheType = (typeof CACHE_TYPES)[number];

/** One row of tlsmgr.c's cache_table, from main.cf. */
export interface CacheParams {
  /** `<type>_tls_session_cache_database`, expanded; empty = no cache. */
  readonly database: string;
  /** `<type>_tls_session_cache_timeout` in seconds as configured (0..8640000). */
  readonly timeout: number;
  /** `<type>_tls_loglevel`, as text (Postfix accepts numbers and keywords). */
  readonly loglevel: string;
  /* Extensions (not in Postfix; tlsmgr.cf): cache limits, 0 = no limit (cache/scache.ts). */
  /** `<type>_tls_session_cache_max_entries` (default 1000000). */
  readonly maxEntries: number;
  /** `<type>_tls_session_cache_max_size`: cache_id + sealed record bytes in all (default 1073741824). */
  readonly maxSize: number;
  /** `<type>_tls_session_cache_max_entry_size`: largest single entry in bytes (default 65536). */
  readonly maxEntrySize: number;
}

export interface TlsmgrConfig {
  readonly configDirectory: string;
  readonly queueDirectory: string;
  readonly dataDirectory: string;
  readonly daemonDirectory: string;
  readonly mailOwner: string;
  readonly syslogName: string;
  readonly syslogFacility: string;
  readonly maillogFile: string;
  readonly tlsmgrServiceName: string;
  readonly defaultDatabaseType: string;
  readonly smtputf8Enable: boolean;
  readonly ipcTimeout: number;
  readonly daemonTimeout: number;
  readonly cache: Readonly<Record<CacheType, CacheParams>>;
  readonly tlsRandomSource: string;
  readonly tlsRandomBytes: number;
  readonly tlsRandomReseedPeriod: number;
  readonly tlsRandomPrngUpdatePeriod: number;
  readonly tlsRandomExchangeName: string;
  /* Extensions (not in Postfix; tlsmgr.cf): input bounds of the attr0 decoder and the protocol. */
  /** tlsmgr_attr_name_limit: longest attribute name in bytes (default 256). */
  readonly attrNameLimit: number;
  /** tlsmgr_attr_value_limit: longest encoded attribute value in bytes (default 1500000). */
  readonly attrValueLimit: number;
  /** tlsmgr_attr_count_limit: most attributes in one request list (default 32). */
  readonly attrCountLimit: number;
  /** tlsmgr_cache_id_limit: longest cache_id in bytes (default 65536). */
  readonly cacheIdLimit: number;
  /** tlsmgr_session_limit: largest decoded session in bytes (default 1048576). */
  readonly sessionLimit: number;
  /** tlsmgr_connection_limit: client connections served at once (default 8192). */
  readonly connectionLimit: number;
  /** tlsmgr_input_buffer_limit: bytes of unfinished requests held by all clients (default 67108864). */
  readonly inputBufferLimit: number;
  /** tlsmgr_stats_interval: seconds between cache statistics log lines, 0 = never (default 3600). */
  readonly statsInterval: number;
  /** tlsmgr_syslog_socket: the syslog(3) datagram socket (default /dev/log). */
  readonly syslogPath: string;
  /**
   * tlsmgr_tktkey_database: where session-ticket keys are shared (tickets/open.ts): empty
   * (default) = through smtpd's cache database when it is redis:, "redis:<file>", or "none".
   */
  readonly tktkeyDatabase: string;
  /**
   * tlsmgr_metrics_listen: where GET /metrics is served (daemon/metrics-http.ts), from
   * "host:port" or "[ipv6]:port"; null (default, empty) = no HTTP listener.
   */
  readonly metricsListen: ListenAddress | null;
}

/** A TCP address to listen on: a host name or address (no brackets) and a port 1..65535. */
export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}
