/*
 * NAME
 *   util/maybe - a value now or later, without a promise for the value now
 * SYNOPSIS
 *   type Maybe<T> = T | Promise<T>
 *   isPromise(m): boolean     then(m, f): Maybe<U>     settle(m, f, onError): Maybe<U>
 * DESCRIPTION
 *   Embedded stores answer in the same turn; network stores answer later. Code that serves
 *   both takes a Maybe and continues with then(): a plain value goes straight to `f` with no
 *   promise allocated, so the synchronous path costs a type check and nothing more.
 *   settle() also routes a failure (a throw now, or a rejection later) to `onError`, so the
 *   result never rejects when onError does not throw.
 */

export type Maybe<T> = T | Promise<T>;

export function isPromise<T>(m: Maybe<T>): m is Promise<T> {
  return m instanceof Promise;
}

/** f(value) now for a plain value, later for a promise. */
export function then<T, U>(m: Maybe<T>, f: (value: T) => Maybe<U>): Maybe<U> {
  return m instanceof Promise ? m.then(f) : f(m);
}

/** Like then(), with failures of `run` (thrown or rejected) handed to onError. */
export function settle<T, U>(run: () => Maybe<T>, f: (value: T) => Maybe<U>, onError: (err: unknown) => Maybe<U>): Maybe<U> {
  let m: Maybe<T>;
  try {
    m = run();
  } catch (err) {
    return onError(err);
  }
  return m instanceof Promise ? m.then(f, onError) : f(m);
}
