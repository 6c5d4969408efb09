// Composes each cost fixture schema's subgraphs into its supergraph.graphql with
// @theguild/federation-composition (MIT), like ../compose-fixtures.mjs:
//   cd /tmp/fedcomp && npm i @theguild/federation-composition graphql
//   NODE_PATH=/tmp/fedcomp/node_modules node gateway/federation/tests/cost/compose.mjs
// Subgraph files: tests/cost/<schema>/subgraphs/<name>.graphql (url = http://<name>).
import { createRequire } from 'node:module';
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(join(process.env.NODE_PATH || process.cwd(), 'x.js'));
const { composeServices } = require('@theguild/federation-composition');
const { parse } = require('graphql');

const root = dirname(fileURLToPath(import.meta.url));
let failed = false;
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
  const result = composeServices(services);
  if (result.errors && result.errors.length) {
    failed = true;
    console.error(`${name}:\n  ${result.errors.map((e) => e.message).join('\n  ')}`);
    continue;
  }
  writeFileSync(join(root, name, 'supergraph.graphql'), result.supergraphSdl + '\n');
  console.log(`${name}: ok`);
}
process.exit(failed ? 1 : 0);
