#!/usr/bin/env bash
# Vendors the standard `wasi:keyvalue@0.2.0-draft` WIT into wit/deps/keyvalue/.
#
# The source is the WIT that the `wasmtime-wasi-keyvalue` crate ships, so tally's import is exactly
# the one wasmtime implements (upstream: WebAssembly/wasi-keyvalue tag v0.2.0-draft, commit 219ea36,
# as pinned by wasmtime's ci/vendor-wit.sh). The crate is fetched from crates.io into a throwaway
# project; the files are copied verbatim and their checksums recorded in wit/deps/keyvalue.lock.
#
#   scripts/vendor-wit.sh          refresh the vendored files and the lock
#   scripts/vendor-wit.sh --check  verify the vendored files against the lock (no network)
set -euo pipefail

crate=wasmtime-wasi-keyvalue
version=48.0.8
root=$(cd "$(dirname "$0")/.." && pwd)
dest=$root/wit/deps/keyvalue
lock=$root/wit/deps/keyvalue.lock

if [[ ${1:-} == --check ]]; then
  (cd "$dest" && grep -v '^#' "$lock" | sha256sum --check --quiet)
  echo "wit/deps/keyvalue matches $lock"
  exit 0
fi

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$scratch/src"
: >"$scratch/src/lib.rs"
cat >"$scratch/Cargo.toml" <<TOML
[package]
name = "vendor-scratch"
version = "0.0.0"
edition = "2021"
[dependencies]
$crate = "=$version"
TOML
src=$(cd "$scratch" && cargo metadata --format-version 1 --quiet \
  | python3 -c "import json,sys; print(next(p['manifest_path'] for p in json.load(sys.stdin)['packages'] if p['name']=='$crate'))")
src=$(dirname "$src")/wit/deps/keyvalue

rm -rf "$dest"
mkdir -p "$dest"
cp "$src"/*.wit "$dest"/
{
  echo "# Vendored from crates.io $crate $version (wit/deps/keyvalue/)."
  echo "# Upstream: WebAssembly/wasi-keyvalue tag v0.2.0-draft, commit 219ea36."
  echo "# Regenerate with scripts/vendor-wit.sh; verify with scripts/vendor-wit.sh --check."
  (cd "$dest" && sha256sum -- *.wit)
} >"$lock"
echo "vendored $crate $version WIT into $dest"
