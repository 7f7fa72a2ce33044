#!/usr/bin/env bash
# Rebuilds the vendored GraphiQL front end from the pinned packages.
#
#   ./refresh.sh
#
# 1. installs exactly what package-lock.json pins (npm ci from the configured npm
#    registry, no install scripts: esbuild's binary comes from its @esbuild/<platform>
#    optional dependency);
# 2. bundles src/main.jsx and the Monaco workers with esbuild into vendor/;
# 3. copies the licence text of every package that ends up in the bundles into
#    LICENSES/ (the list comes from esbuild's metafile);
# 4. writes vendor/MANIFEST.json (sha256 of each vendored file, bundled package
#    versions).
#
# To move to newer versions: edit the exact versions in package.json, run
# `npm install --ignore-scripts` once to update package-lock.json, then run this.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

command -v node >/dev/null || { echo "refresh.sh: node is required (v20 or newer)" >&2; exit 1; }
command -v npm >/dev/null || { echo "refresh.sh: npm is required" >&2; exit 1; }

rm -rf node_modules vendor LICENSES
npm ci --ignore-scripts --no-audit --no-fund

node build.mjs

# Nothing that reaches the browser may point at another origin for loading.
if grep -l -E '(esm\.sh|unpkg\.com|jsdelivr|cdnjs|fonts\.googleapis|fonts\.gstatic)' vendor/* index.html; then
  echo "refresh.sh: a vendored file references a CDN" >&2
  exit 1
fi
if grep -o -E 'url\([^)]*\)' vendor/graphiql.css | grep -v -E '^url\((data:|"data:|#)'; then
  echo "refresh.sh: graphiql.css references a non-inlined resource" >&2
  exit 1
fi

echo "vendor/ and LICENSES/ are up to date."
