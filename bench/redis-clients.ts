/*
 * NAME
 *   bench/redis-clients - `npm run bench:redis-clients`: ioredis against node-redis, our way
 * SYNOPSIS
 *   node dist/bench/redis-clients.js [--seconds S] [--rounds R] [--callers N] [--via tcp|unix]
 * DESCRIPTION
 *   Why cluster/link.ts uses ioredis. Against a private redis-server, each client runs what a
 *   tlsmgr under load sends: N = 32 concurrent callers on one connection, each in a loop
 *   alternating SET key value PX ttl (a 250-byte value, like a sealed session record) and GET
 *   of a Buffer, over 1,000 keys per caller, for S = 3 s; R = 3 rounds, alternated. Prints
 *   operations/s and p50/p99 latency per run and the medians.
 * LIMITS
 *   Needs /usr/bin/redis-server. node-redis is a devDependency, for this comparison only.
 */

import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { createClient, RESP_TYPES } from 'redis';
import { redisAvailability, startRedis } from '../test/helpers/redis.js';
import { median } from './compare.js';

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '3' },
    callers: { type: 'string', default: '32' },
    via: { type: 'string', default: 'tcp' },
  },
});

interface Ops {
  get(key: string): Promise<Buffer | null>;
  set(key: string, value: Buffer): Promise<unknown>;
  close(): Promise<void>;
}

interface Result {
  ops: number;
  p50: number;
  p99: number;
}

async function load(ops: Ops, seconds: number, callers: number): Promise<Result> {
  const value = Buffer.alloc(250, 0x5a);
  const lat: number[] = [];
  let n = 0;
  const end = performance.now() + seconds * 1000;
  await Promise.all(
    Array.from({ length: callers }, async (_, c) => {
      for (let i = 0; performance.now() < end; i++) {
        const key = `bench:${c}:${i % 1000}`;
        const t = performance.now();
        if (i % 2 === 0) await ops.set(key, value);
        else await ops.get(key);
        lat.push(performance.now() - t);
        n++;
      }
    }),
  );
  lat.sort((a, b) => a - b);
  return { ops: n / seconds, p50: lat[Math.floor(lat.length * 0.5)], p99: lat[Math.floor(lat.length * 0.99)] };
}

const avail = redisAvailability();
if (!avail.ok) {
  console.error(`bench:redis-clients: ${avail.reason}`);
  process.exit(1);
}
const server = await startRedis();
const target = values.via === 'unix' ? { path: server.socket } : { host: '127.0.0.1', port: server.port };
const clients: Record<string, () => Promise<Ops>> = {
  ioredis: async () => {
    const r = new Redis({ ...target, enableOfflineQueue: true });
    return { get: (k) => r.getBuffer(k), set: (k, v) => r.set(k, v, 'PX', 300_000), close: async () => r.disconnect() };
  },
  'node-redis': async () => {
    const socket = 'path' in target ? { path: target.path } : { host: target.host, port: target.port };
    const c = await createClient({ socket }).connect();
    const b = c.withTypeMapping({ [RESP_TYPES.BLOB_STRING]: Buffer });
    return { get: (k) => b.get(k), set: (k, v) => c.set(k, v, { PX: 300_000 }), close: async () => void (await c.quit()) };
  },
};
const results = new Map<string, Result[]>(Object.keys(clients).map((k) => [k, []]));
try {
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const [name, make] of Object.entries(clients)) {
      const ops = await make();
      const r = await load(ops, Number(values.seconds), Number(values.callers));
      await ops.close();
      results.get(name)?.push(r);
      console.log(`round ${round + 1} ${name.padEnd(10)} ${r.ops.toFixed(0).padStart(8)} ops/s  p50 ${r.p50.toFixed(3)} ms  p99 ${r.p99.toFixed(3)} ms`);
    }
  }
  console.log(`medians (${values.callers} callers, one connection, SET PX / GET Buffer, via ${values.via}):`);
  for (const [name, rs] of results) {
    console.log(`  ${name.padEnd(10)} ${median(rs.map((r) => r.ops)).toFixed(0).padStart(8)} ops/s  p50 ${median(rs.map((r) => r.p50)).toFixed(3)} ms  p99 ${median(rs.map((r) => r.p99)).toFixed(3)} ms`);
  }
} finally {
  await server.destroy();
}
