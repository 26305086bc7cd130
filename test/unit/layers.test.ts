/*
 * layers - the folders of src/ import one way (issue 14): read every src/**\/*.ts, take each
 * import of another folder -- `import ... from`, `import type ... from`, `export ... from`,
 * `import('...')` in a type -- and check that
 * - no folder imports a folder that imports it back, directly or round a longer cycle
 *   (type-only imports count: a type still ties the two folders' designs together);
 * - each folder imports only folders of the layers below its own (LAYERS, top to bottom),
 *   so cluster/ (Redis plumbing) imports neither cache/ nor tickets/, and util/ nothing.
 * A folder missing from LAYERS fails the second test until it is given its place.
 * Failures name the files that make each offending edge.
 */

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

/** Top to bottom: a folder may import the folders of the layers after its own, only. */
const LAYERS: readonly (readonly string[])[] = [
  ['cli', 'ctl', 'client'],
  ['daemon'],
  ['metrics'],
  ['server'],
  ['cache'],
  ['tickets'],
  ['prng'],
  ['cluster'],
  ['master'],
  ['protocol'],
  ['attr', 'config', 'log'],
  ['util'],
];

// dist/test/unit/layers.test.js -> the checkout's src/ (the sources, not the compiled files,
// which lose type-only imports).
const SRC = resolve(dirname(fileURLToPath(import.meta.url)), '../../../src');

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...sourceFiles(p));
    else if (name.endsWith('.ts')) out.push(p);
  }
  return out;
}

/** Relative module names a file imports (values, types, re-exports, import() types). */
function importsOf(text: string): string[] {
  const code = text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/^\s*\/\/.*$/gm, '');
  const re = /\bfrom\s*['"](\.{1,2}\/[^'"]+)['"]|\bimport\s*\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)|^\s*import\s+['"](\.{1,2}\/[^'"]+)['"]/gm;
  return [...code.matchAll(re)].map((m) => m[1] ?? m[2] ?? m[3]);
}

/** folder -> imported folder -> the files (relative to src/) that import it. */
function folderGraph(): Map<string, Map<string, string[]>> {
  const graph = new Map<string, Map<string, string[]>>();
  for (const file of sourceFiles(SRC)) {
    const from = relative(SRC, file).split('/')[0];
    if (!graph.has(from)) graph.set(from, new Map());
    for (const spec of importsOf(readFileSync(file, 'utf8'))) {
      const to = relative(SRC, resolve(dirname(file), spec)).split('/')[0];
      if (to === from || to.startsWith('..')) continue;
      const edges = graph.get(from) as Map<string, string[]>;
      edges.set(to, [...(edges.get(to) ?? []), relative(SRC, file)]);
    }
  }
  return graph;
}

/** Every cycle of folders, each once (from its smallest name), as [a, b, ..., a]. */
function cycles(graph: Map<string, Map<string, string[]>>): string[][] {
  const found = new Map<string, string[]>();
  const walk = (start: string, at: string, path: string[], depth: number): void => {
    if (depth > graph.size) return;
    for (const next of graph.get(at)?.keys() ?? []) {
      if (next === start) {
        const cycle = [...path, start];
        const min = path.reduce((m, f) => (f < m ? f : m));
        if (min === start) found.set(cycle.join(' -> '), cycle);
      } else if (!path.includes(next)) {
        walk(start, next, [...path, next], depth + 1);
      }
    }
  };
  for (const f of graph.keys()) walk(f, f, [f], 0);
  return [...found.values()];
}

function describeEdge(graph: Map<string, Map<string, string[]>>, a: string, b: string): string {
  const files = graph.get(a)?.get(b) ?? [];
  return `${a} -> ${b} (${[...new Set(files)].join(', ')})`;
}

test('src/ has folders and they import each other (the check sees the imports)', () => {
  const graph = folderGraph();
  assert.ok(graph.size >= 10, `only ${graph.size} folders under ${SRC}`);
  assert.ok(graph.get('server')?.has('protocol'), 'server/ imports protocol/ (a known edge) but the check did not see it');
  assert.ok(graph.get('cache')?.has('util'), 'cache/ imports util/ (a known edge, type-only too) but the check did not see it');
});

test('no folder of src/ imports a folder that imports it back (type-only imports count)', () => {
  const graph = folderGraph();
  const found = cycles(graph);
  assert.deepEqual(
    found.map((c) => c.slice(1).map((to, i) => describeEdge(graph, c[i], to)).join('; ')),
    [],
    'folder cycles',
  );
});

test('each folder imports only the layers below its own', () => {
  const graph = folderGraph();
  const layerOf = new Map<string, number>();
  LAYERS.forEach((names, i) => names.forEach((n) => layerOf.set(n, i)));
  const bad: string[] = [];
  for (const [from, edges] of graph) {
    const mine = layerOf.get(from);
    if (mine === undefined) {
      bad.push(`${from}/ has no place in LAYERS`);
      continue;
    }
    for (const to of edges.keys()) {
      const theirs = layerOf.get(to);
      if (theirs === undefined || theirs <= mine) bad.push(describeEdge(graph, from, to));
    }
  }
  assert.deepEqual(bad, [], 'imports that point up or sideways');
});
