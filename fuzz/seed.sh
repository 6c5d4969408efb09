#!/usr/bin/env bash
# Seeds fuzz/corpus/<target>/ from the fixture operations (planner fixtures, the
# execution corpus, the demo's client operations). The corpus folders are not committed.
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/plan corpus/plan_generated
for f in ../gateway/federation/tests/fixtures/*/operation.graphql \
         ../tests/fixtures/*/operation.graphql \
         ../client-operations/*.graphql; do
  name=$(basename "$(dirname "$f")")-$(basename "$f" .graphql)
  cp "$f" "corpus/plan/$name"
done
# The generator reads choice bytes; a few fixed sequences start it on every supergraph.
for i in 0 1 2 3 4 5 6; do
  printf "\\x$(printf %02x "$i")\\x00\\x03\\x0b\\x0c\\x10\\x12\\x05" > "corpus/plan_generated/seed-$i"
done
echo "seeded: $(ls corpus/plan | wc -l) operations"
