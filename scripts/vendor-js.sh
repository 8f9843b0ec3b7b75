#!/usr/bin/env bash
# Regenerates the console's vendored JavaScript (committed; the Rust build never needs node):
#
#   api/src/console/assets/blake3.js   BLAKE3 (hash) of @noble/hashes, one ES module
#
# from pinned npm versions whose registry integrity is checked, bundled with esbuild in a temp
# dir. Running it again reproduces the committed file byte for byte (`git diff --exit-code`
# after it is the check). Needs node and npm (not part of scripts/setup.sh: only this script
# does).
#
#   scripts/vendor-js.sh           rewrite the file
#   scripts/vendor-js.sh --check   fail if the committed file differs from a fresh build
set -euo pipefail

NOBLE_VERSION=2.4.0
NOBLE_INTEGRITY='sha512-X5XaVWZIBCT7HHZGm5I7ZQXDwLG+bGXuSrMQAW+7Zvl87h1kmc1ZB1VSRJcpUfoUrGQp4Fkoxm5kZ+Ms+aW+eA=='
ESBUILD_VERSION=0.28.2
ESBUILD_INTEGRITY='sha512-HKVLS8dvII+xoKW9kmqxbRKrnWEXfJJr/FZhhJmiqIB0e053QNYFqOBouTMO/k5sID4MvCiUCvv8b9M4h32wIA=='

root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/api/src/console/assets/blake3.js"
check=false
[ "${1:-}" = "--check" ] && check=true

for tool in node npm; do
  command -v "$tool" >/dev/null 2>&1 || { echo "vendor-js: $tool is not installed" >&2; exit 2; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
cat >package.json <<EOF
{
  "name": "release-ledger-console-vendor",
  "private": true,
  "dependencies": { "@noble/hashes": "$NOBLE_VERSION" },
  "devDependencies": { "esbuild": "$ESBUILD_VERSION" }
}
EOF
# --ignore-scripts: no package runs code at install (esbuild's binary comes as its
# optional @esbuild/<platform> package, which needs no install script).
npm install --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null

# The registry's integrity of what was installed must be the pinned one.
node - "$NOBLE_INTEGRITY" "$ESBUILD_INTEGRITY" <<'EOF'
const lock = require('./package-lock.json');
const want = { 'node_modules/@noble/hashes': process.argv[2], 'node_modules/esbuild': process.argv[3] };
for (const [path, integrity] of Object.entries(want)) {
  const got = lock.packages[path] && lock.packages[path].integrity;
  if (got !== integrity) {
    console.error(`vendor-js: ${path} integrity ${got} is not the pinned ${integrity}`);
    process.exit(1);
  }
}
EOF

echo "export { blake3 } from '@noble/hashes/blake3.js';" >entry.js
./node_modules/.bin/esbuild entry.js --bundle --format=esm --platform=browser --target=es2020 \
  --legal-comments=none --charset=utf8 --log-level=warning --outfile=bundle.js

{
  echo "// BLAKE3 from @noble/hashes $NOBLE_VERSION (https://github.com/paulmillr/noble-hashes),"
  echo "// npm integrity $NOBLE_INTEGRITY,"
  echo "// bundled into one ES module by scripts/vendor-js.sh with esbuild $ESBUILD_VERSION. Do not edit:"
  echo "// rerun the script. Exports blake3(bytes: Uint8Array) -> Uint8Array (32 bytes)."
  echo "//"
  echo "// License of @noble/hashes:"
  echo "//"
  sed 's#^#// #; s#[[:space:]]*$##' node_modules/@noble/hashes/LICENSE
  echo
  cat bundle.js
} >blake3.js

if $check; then
  if cmp -s blake3.js "$out"; then
    echo "vendor-js: $out is up to date"
  else
    echo "vendor-js: $out differs from a fresh build of @noble/hashes $NOBLE_VERSION" >&2
    exit 1
  fi
else
  mkdir -p "$(dirname "$out")"
  cp blake3.js "$out"
  echo "vendor-js: wrote $out ($(wc -c <"$out") bytes)"
fi
