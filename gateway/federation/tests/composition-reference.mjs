// Writes tests/composition/<case>/reference.graphql: the supergraph that
// @theguild/federation-composition (MIT) composes for each composition fixture that it
// composes successfully. tests/composition.rs checks Portico's supergraph against it
// (same API schema and join metadata after normalisation). A case with a `notes.md` is one
// where Portico deliberately disagrees with the library (the note says why, usually
// following Apollo's composition): it gets no reference. Run from a folder that has it:
//   cd /tmp/fedcomp && npm i @theguild/federation-composition graphql
//   NODE_PATH=/tmp/fedcomp/node_modules node gateway/federation/tests/composition-reference.mjs
import { createRequire } from 'node:module';
import { readdirSync, readFileSync, writeFileSync, existsSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(join(process.env.NODE_PATH || process.cwd(), 'x.js'));
const { composeServices } = require('@theguild/federation-composition');
const { parse } = require('graphql');

const root = join(dirname(fileURLToPath(import.meta.url)), 'composition');
for (const name of readdirSync(root).sort()) {
  const dir = join(root, name, 'subgraphs');
  if (!existsSync(dir)) continue;
  const services = readdirSync(dir)
    .filter((f) => f.endsWith('.graphql'))
    .sort()
    .map((f) => {
      const n = f.replace(/\.graphql$/, '');
      return { name: n, url: `http://${n}`, typeDefs: parse(readFileSync(join(dir, f), 'utf8')) };
    });
  const out = join(root, name, 'reference.graphql');
  const result = composeServices(services);
  if (result.errors && result.errors.length) {
    if (existsSync(out)) rmSync(out);
    console.log(`${name}: fails (${[...new Set(result.errors.map((e) => e.extensions?.code))].join(', ')})`);
    continue;
  }
  if (existsSync(join(root, name, 'notes.md')) || existsSync(join(root, name, 'expect-codes'))) {
    // Portico deliberately composes differently or fails: see the case's notes.md.
    if (existsSync(out)) rmSync(out);
    console.log(`${name}: ok here, but Portico deliberately differs (notes.md); no reference`);
    continue;
  }
  writeFileSync(out, result.supergraphSdl + '\n');
  console.log(`${name}: ok`);
}
