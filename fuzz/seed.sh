#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from committed files: the fixture operations (planner
# fixtures, the execution corpus, the demo's client operations), the fixture
# supergraphs, and minted-token requests. The corpus folders are not committed.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/plan corpus/plan_generated corpus/request corpus/supergraph corpus/trust
for f in ../gateway/federation/tests/fixtures/*/operation.graphql \
         ../tests/fixtures/*/operation.graphql \
         ../client-operations/*.graphql; do
  name=$(basename "$(dirname "$f")")-$(basename "$f" .graphql)
  cp "$f" "corpus/plan/$name"
  # The same operation as a request body, for the request path.
  python3 -c 'import json,sys; print(json.dumps({"query": open(sys.argv[1]).read()}))' "$f" \
    > "corpus/request/$name.json"
done
printf '[{"query":"{ __typename }"},{"query":"{ me { username } }"}]' > corpus/request/batch.json
printf '{"query":"query($id: ID!) { user(id: $id) { username } }","variables":{"id":"u1"}}' > corpus/request/variables.json
printf '{"extensions":{"persistedQuery":{"version":1,"sha256Hash":"00"}}}' > corpus/request/apq.json
# The generator reads choice bytes; a few fixed sequences start it on every supergraph.
for i in 0 1 2 3 4 5 6; do
  printf "\\x$(printf %02x "$i")\\x00\\x03\\x0b\\x0c\\x10\\x12\\x05" > "corpus/plan_generated/seed-$i"
done
for f in ../supergraph/supergraph.graphql ../tests/fixtures/*/supergraph.graphql; do
  cp "$f" "corpus/supergraph/$(basename "$(dirname "$f")").graphql"
done
# trust: mode byte (odd: a minted token, altered by the trailing pairs), body, 0xFF,
# user id, 0xFF, scopes, 0xFF, edits.
printf '\x01{"query":"{ me { id } }"}\xffu1\xffread write\xff' > corpus/trust/minted
printf '\x01{}\xff\xff\xff\x05\x01\x40\x20' > corpus/trust/minted-altered
printf '\x00v2.eyJhIjoxfQ.AAAA' > corpus/trust/raw
echo "seeded: $(ls corpus/plan | wc -l) operations, $(ls corpus/supergraph | wc -l) supergraphs"
