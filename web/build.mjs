// Builds the web app from src/ into dist/ (or the folder given as the first argument):
// index.html, and under assets/ the bundled JavaScript and CSS with content-hashed names; the
// service worker as sw.js at the root (its scope is the whole app, and its name cannot change).
// The output is deterministic, so CI rebuilds it and compares it with the committed dist/.
import * as esbuild from 'esbuild';
import { mkdir, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { basename, join } from 'node:path';

const outdir = process.argv[2] ?? 'dist';
await rm(outdir, { recursive: true, force: true });
await mkdir(join(outdir, 'assets'), { recursive: true });

const result = await esbuild.build({
  entryPoints: ['src/main.tsx'],
  bundle: true,
  // The chart library loads with the instrument page only, so the first page stays small.
  splitting: true,
  format: 'esm',
  minify: true,
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  outdir: join(outdir, 'assets'),
  entryNames: '[name]-[hash]',
  chunkNames: 'chunk-[hash]',
  assetNames: '[name]-[hash]',
  jsx: 'automatic',
  jsxImportSource: 'preact',
  charset: 'utf8',
  legalComments: 'eof',
  metafile: true,
  // Paths (and so the chunks' hashed names) stay under node_modules/ even when it is a link to a
  // shared cache, so the build is the same wherever the clone is.
  preserveSymlinks: true,
  logLevel: 'warning',
});

const outputs = Object.entries(result.metafile.outputs);
const [entryFile, entry] = outputs.find(([, o]) => o.entryPoint === 'src/main.tsx');
const href = (file) => '/assets/' + basename(file);
// The chunks the entry imports statically load in parallel with it.
const preloads = entry.imports
  .filter((i) => i.kind === 'import-statement')
  .map((i) => `<link rel="modulepreload" href="${href(i.path)}">`);
const template = await readFile('src/index.html', 'utf8');
const html = template
  .replace('<!-- styles -->', `<link rel="stylesheet" href="${href(entry.cssBundle)}">`)
  .replace(
    '<!-- scripts -->',
    [...preloads, `<script type="module" src="${href(entryFile)}"></script>`].join('\n    '),
  );
await writeFile(join(outdir, 'index.html'), html);
await copyFile('src/icon.svg', join(outdir, 'icon.svg'));
await esbuild.build({
  entryPoints: ['src/worker/sw.ts'],
  bundle: true,
  format: 'iife',
  minify: true,
  target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
  outfile: join(outdir, 'sw.js'),
  charset: 'utf8',
  logLevel: 'warning',
});
