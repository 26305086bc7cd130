/*
 * NAME
 *   ctl/procs - find master(8) and the tlsmgr process it runs, from /proc
 * SYNOPSIS
 *   masterPid(queueDir): MasterPid
 *   serviceProcesses(masterPid, service): ServiceProcess[]
 * DESCRIPTION
 *   masterPid() reads $queue_directory/pid/master.pid (root's, mode 0600) and says whether
 *   that process lives and is master(8) (its executable is named "master").
 *   serviceProcesses() lists master's children that serve `service`: master runs a service
 *   as "<command> [-n <service>] -t <type> ...", with -n when the service name is not the
 *   command's own name. So a child counts when argv[0] is named like the service (Postfix's
 *   "tlsmgr") or when its arguments hold "-n <service>" (our node process: node's argv
 *   replaces the entry script's, and master's arguments follow bin/tlsmgr). Each comes
 *   with its argv and the target of /proc/<pid>/exe, the binary really running.
 * LIMITS
 *   Linux only. Not being root, master.pid and other users' /proc/<pid>/exe are
 *   unreadable: masterPid() then says "unknown".
 * SEE ALSO
 *   master(8), proc(5)
 */

import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';

export type MasterPid =
  | { readonly state: 'running'; readonly pid: number }
  | { readonly state: 'stopped' }
  | { readonly state: 'unknown'; readonly why: string };

export interface ServiceProcess {
  readonly pid: number;
  readonly argv: readonly string[];
  /** readlink /proc/<pid>/exe ('' when unreadable). */
  readonly exe: string;
}

function readLink(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

/** masterPid - whether master(8) runs for this queue directory, and its pid. */
export function masterPid(queueDir: string): MasterPid {
  let text: string;
  try {
    text = readFileSync(join(queueDir, 'pid', 'master.pid'), 'latin1');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') return { state: 'stopped' };
    return { state: 'unknown', why: `${join(queueDir, 'pid', 'master.pid')}: ${e.message}` };
  }
  const pid = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(pid) || pid <= 1) return { state: 'stopped' };
  const exe = readLink(`/proc/${pid}/exe`);
  if (exe === '') {
    try {
      readFileSync(`/proc/${pid}/stat`, 'latin1');
    } catch {
      return { state: 'stopped' };
    }
    return { state: 'unknown', why: `cannot read /proc/${pid}/exe` };
  }
  return basename(exe) === 'master' ? { state: 'running', pid } : { state: 'stopped' };
}

/* parentOf - the parent pid of a live process, from /proc/<pid>/stat (undefined: gone or a zombie) */
function parentOf(pid: string): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[0] === 'Z' ? undefined : Number(rest[1]);
  } catch {
    return undefined;
  }
}

/** serviceProcesses - master's live children that serve `service`. */
export function serviceProcesses(master: number, service: string): ServiceProcess[] {
  const out: ServiceProcess[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc');
  } catch {
    return out;
  }
  for (const name of names) {
    if (!/^\d+$/.test(name) || parentOf(name) !== master) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (argv[argv.length - 1] === '') argv.pop();
    const named = argv.some((a, i) => a === '-n' && argv[i + 1] === service);
    if (argv.length === 0 || !(basename(argv[0]) === service || named)) continue;
    out.push({ pid: Number(name), argv, exe: readLink(`/proc/${name}/exe`) });
  }
  return out;
}
