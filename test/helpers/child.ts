/*
 * child - collect a spawned daemon's stdout and stderr, and wait (bounded) for its exit.
 * exited(ms) resolves with the exit code or signal name, or kills the child with SIGKILL and
 * resolves "no exit within <ms> ms" when it does not exit in time.
 * logged(re, ms) waits for stderr to match re, checked each time stderr grows (no polling):
 * it resolves with the match, and rejects (showing stderr) when the child exits first or
 * after ms.
 */

import type { ChildProcess } from 'node:child_process';
import { Signal } from './signal.js';

export interface ChildOutput {
  readonly stdout: () => Buffer;
  readonly stderr: () => string;
  readonly exited: (ms: number) => Promise<number | string>;
  readonly logged: (re: RegExp, ms: number) => Promise<RegExpExecArray>;
}

export function captureChild(child: ChildProcess): ChildOutput {
  const out: Buffer[] = [];
  let err = '';
  let gone = false;
  const changed = new Signal();
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString('utf8');
    changed.wake();
  });
  const done = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  // 'close': the exit and the end of stdout and stderr, so the last lines are in.
  child.on('close', () => {
    gone = true;
    changed.wake();
  });
  return {
    stdout: () => Buffer.concat(out),
    stderr: () => err,
    exited: (ms) =>
      new Promise((resolve) => {
        const timer = setTimeout(() => {
          child.kill('SIGKILL');
          resolve(`no exit within ${ms} ms`);
        }, ms);
        void done.then((v) => {
          clearTimeout(timer);
          resolve(v);
        });
      }),
    logged: async (re, ms) => {
      await changed.until(() => re.test(err) || gone, ms, () => `${re} on stderr: ${err}`);
      const m = re.exec(err);
      if (m === null) throw new Error(`exited (${String(child.exitCode ?? child.signalCode)}) without ${re} on stderr: ${err}`);
      return m;
    },
  };
}
