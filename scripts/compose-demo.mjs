// Interim: composes the demo subgraph SDLs (supergraph/<name>.graphql) into
// supergraph/supergraph.graphql with @theguild/federation-composition (MIT), until
// `portico compose` replaces it. Usage:
//   npm i --prefix /tmp/fedcomp @theguild/federation-composition graphql
//   NODE_PATH=/tmp/fedcomp/node_modules node scripts/compose-demo.mjs
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(join(process.env.NODE_PATH || process.cwd(), 'x.js'));
const { composeServices } = require('@theguild/federation-composition');
const { parse } = require('graphql');

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'supergraph');
const names = ['auth', 'users', 'posts', 'comments', 'likes', 'notifications'];
const services = names.map((n, i) => ({
  name: n,
  url: `http://127.0.0.1:${4001 + i}/graphql`,
  typeDefs: parse(readFileSync(join(dir, `${n}.graphql`), 'utf8')),
}));
const result = composeServices(services);
if (result.errors && result.errors.length) {
  console.error(result.errors.map((e) => e.message).join('\n'));
  process.exit(1);
}
writeFileSync(join(dir, 'supergraph.graphql'), result.supergraphSdl + '\n');
console.log('wrote supergraph/supergraph.graphql');
