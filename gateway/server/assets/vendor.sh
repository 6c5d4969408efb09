#!/usr/bin/env bash
# Vendors the GraphiQL playground assets into this folder, reproducibly, from the npm
# registry. The gateway embeds these files with include_bytes!, so the playground works
# offline and never loads anything from a CDN.
#
# Pinned versions (all MIT licensed; licences are copied next to the files):
#   graphiql 3.8.3, react 18.3.1, react-dom 18.3.1
#
# Usage: bash gateway/server/assets/vendor.sh
set -euo pipefail

GRAPHIQL=3.8.3
REACT=18.3.1

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cd "$work"
for pkg in "graphiql@$GRAPHIQL" "react@$REACT" "react-dom@$REACT"; do
  npm pack --silent "$pkg" >/dev/null
done
for tgz in *.tgz; do
  name="${tgz%.tgz}"
  mkdir -p "$name"
  tar -xzf "$tgz" -C "$name"
done

cp "graphiql-$GRAPHIQL/package/graphiql.min.js" "$here/graphiql.min.js"
cp "graphiql-$GRAPHIQL/package/graphiql.min.css" "$here/graphiql.min.css"
cp "react-$REACT/package/umd/react.production.min.js" "$here/react.production.min.js"
cp "react-dom-$REACT/package/umd/react-dom.production.min.js" "$here/react-dom.production.min.js"

{
  echo "graphiql $GRAPHIQL"; echo; cat "graphiql-$GRAPHIQL/package/LICENSE"; echo
  echo "react $REACT"; echo; cat "react-$REACT/package/LICENSE"; echo
  echo "react-dom $REACT"; echo; cat "react-dom-$REACT/package/LICENSE"
} > "$here/LICENSES.txt"

(cd "$here" && sha256sum graphiql.min.js graphiql.min.css react.production.min.js react-dom.production.min.js > SHA256SUMS)
echo "vendored into $here"
