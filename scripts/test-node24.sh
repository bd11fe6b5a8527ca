#!/usr/bin/env bash
# Runs the libraries' and services' vitest suites (packages/, services/) under Node 24, the
# runtime of the images (the machine's own Node may be older). The binary comes from the npm registry package node-linux-<arch>@24,
# installed once into node_modules/.cache/node24 (not a project dependency: it is a 30 MB
# platform-specific binary only this script needs). Extra arguments go to vitest.
#   NODE24_SPEC   package version range (default 24: the newest 24.x)
#   NODE24_DIR    where to install it (default node_modules/.cache/node24)
set -euo pipefail
cd "$(dirname "$0")/.."

case "$(uname -m)" in
  x86_64 | amd64) arch=x64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "test-node24: no node-linux package for $(uname -m)" >&2; exit 1 ;;
esac
spec="${NODE24_SPEC:-24}"
dir="${NODE24_DIR:-node_modules/.cache/node24}"
node24="$dir/node_modules/node-linux-$arch/bin/node"

if ! [ -x "$node24" ] || ! "$node24" --version | grep -q '^v24\.'; then
  rm -rf "$dir"
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-package-lock --no-audit --no-fund --loglevel=error "node-linux-$arch@$spec"
fi

echo "test-node24: the libraries' and services' tests on $("$node24" --version)"
exec "$node24" node_modules/vitest/vitest.mjs run packages services "$@"
