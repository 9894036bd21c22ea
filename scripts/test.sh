#!/usr/bin/env bash
# The whole test suite, on a fresh machine too: installs what it needs (Rust
# components, the real test servers from ../shared/peers), starts the servers,
# then runs fmt, clippy, every test, a smoke run of the benchmarks and the
# Windows stage (the Windows build's tests under Wine, scripts/windows.sh).
#
#   scripts/test.sh            # from the repository root (or anywhere)
#   MAILHOST_SHARED=/path/to/shared scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${MAILHOST_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
if [ ! -x "$SHARED/peers/all.sh" ]; then
  echo "test.sh: $SHARED/peers/all.sh not found; put the shared folder beside this repository or set MAILHOST_SHARED" >&2
  exit 2
fi

step() { printf '\n== %s\n' "$*"; }

# A clean clone (CI) gains nothing from incremental compilation, which roughly
# doubles target/ (about 9 GB in all otherwise); say early when the disk is short.
if [ -n "${CI:-}" ]; then export CARGO_INCREMENTAL=${CARGO_INCREMENTAL:-0}; fi
mkdir -p "$ROOT/target"
free_kb=$(df -Pk "$ROOT/target" | awk 'NR == 2 { print $4 }')
if [ -n "$free_kb" ] && [ "$free_kb" -lt $((12 * 1024 * 1024)) ]; then
  echo "test.sh: only $((free_kb / 1024)) MB free under $ROOT/target; the build and tests need about 10 GB (free some space, or cargo clean)" >&2
fi

step "toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

step "test peers (Postfix smtp-sink, Node smtp-server, Graph double, Dovecot)"
export PEERS_DIR="$ROOT/target/peers"
mkdir -p "$PEERS_DIR"
started_here=0
if ! "$SHARED/peers/all.sh" status 2>/dev/null | grep -q "running"; then started_here=1; fi
"$SHARED/peers/all.sh" start
# PostgreSQL: the outbox's scale-out backend (not in all.sh).
pg_started_here=1
if "$SHARED/peers/postgres.sh" start | grep -q "already running"; then pg_started_here=0; fi
if [ "${MAILHOST_KEEP_PEERS:-0}" != 1 ]; then
  trap '[ "$started_here" = 1 ] && "$SHARED/peers/all.sh" stop >/dev/null 2>&1; [ "$pg_started_here" = 1 ] && "$SHARED/peers/postgres.sh" stop >/dev/null 2>&1; true' EXIT
fi

# apt_install PACKAGE WHY: a Debian package (as root, or through sudo); a
# failure is said and the run goes on (the tests that need it say so too).
apt_install() {
  local run=""
  [ "$(id -u)" = 0 ] || run=sudo
  ($run apt-get install -y --no-install-recommends "$1" >/dev/null 2>&1 \
    || { $run apt-get update >/dev/null 2>&1 && $run apt-get install -y --no-install-recommends "$1" >/dev/null 2>&1; }) \
    || echo "test.sh: could not install $1 (apt-get install $1); $2" >&2
}

step "reference tools for the benchmarks (msmtp)"
command -v msmtp >/dev/null 2>&1 || apt_install msmtp "the one-shot benchmark needs it"

step "systemd-analyze for the unit file's test (Debian's systemd)"
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd "tests/systemd.rs needs systemd-analyze"

step "browser for the admin page tests (Debian's chromium, Playwright from tests/admin-browser)"
[ -x /usr/bin/chromium ] || apt_install chromium "the admin page tests need it"
[ -x /usr/bin/chromium ] || exit 1
if ! command -v npm >/dev/null 2>&1; then
  echo "test.sh: npm is missing (the peers' Node servers need it too): apt-get install nodejs npm" >&2
  exit 1
fi
(cd tests/admin-browser && npm ci --no-audit --no-fund >/dev/null)

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

step "build (plugins as cdylibs, the binary, fixtures)"
cargo build --workspace --all-targets

step "benchmarks: compiled and smoke-run in the test profile (measure with: cargo bench)"
MAILHOST_BENCH_SMOKE=1 cargo test --workspace --benches

step "tests"
log="$ROOT/target/test-output.log"
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line over every test binary and doc-test run.
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "tests: %d passed, %d failed\n", p, f }' "$log"

step "windows: the Windows build under Wine, against the same peers (scripts/windows.sh)"
set +e
MAILHOST_SHARED="$SHARED" "$ROOT/scripts/windows.sh"
windows_status=$?
set -e
[ "$status" = 0 ] && status=$windows_status
exit "$status"

