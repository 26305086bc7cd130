/*
 * child - collect a spawned daemon's stdout and stderr, and wait (bounded) for its exit.
 * exited(ms) resolves with the exit code or signal name, or kills the child with SIGKILL and
 * resolves "no exit within <ms> ms" when it does not exit in time.
 */

import type { ChildProcess } from 'node:child_process';

export interface ChildOutput {
  readonly stdout: () => Buffer;
  readonly stderr: () => string;
  readonly exited: (ms: number) => Promise<number | string>;
}

export function captureChild(child: ChildProcess): ChildOutput {
  const out: Buffer[] = [];
  let err = '';
  child.stdout?.on('data', (c: Buffer) => out.push(c));
  child.stderr?.on('data', (c: Buffer) => {
    err += c.toString('utf8');
  });
  const done = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
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
  };
}
