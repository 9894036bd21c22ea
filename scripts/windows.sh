#!/usr/bin/env bash
# The Windows stage: builds what the Windows tests need for x86_64-pc-windows-gnu
# (and the 32-bit Simple MAPI helper for i686-pc-windows-gnu),
# creates a fresh Wine prefix and runs tests/tests/windows.rs under Wine against
# the same peers as the Linux tests. Installs what it lacks (the rustup targets,
# mingw-w64 for both, Debian's wine64); called by scripts/test.sh, or on its own:
#
#   scripts/windows.sh          # from the repository root (or anywhere)
#
# Wine 8 lacks bcryptprimitives.dll, which Rust's standard library imports: the
# prefix gets a stand-in built from tests/windows/bcryptprimitives.c (a test
# fixture; real Windows 10+ has the DLL, nothing ships it).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
SHARED=${MAILHOST_SHARED:-$(cd "$ROOT/.." && pwd)/shared}
TARGET=x86_64-pc-windows-gnu
TARGET32=i686-pc-windows-gnu
WINE=/usr/lib/wine/wine64
WINESERVER=/usr/lib/wine/wineserver
started=$(date +%s)

step() { printf '\n== windows: %s\n' "$*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

step "toolchain (rustup targets $TARGET and $TARGET32, mingw-w64, wine64)"
for t in "$TARGET" "$TARGET32"; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done
pkgs=""
[ -x "$WINE" ] || pkgs="$pkgs wine64"
command -v x86_64-w64-mingw32-gcc >/dev/null || pkgs="$pkgs gcc-mingw-w64-x86-64"
command -v i686-w64-mingw32-gcc >/dev/null || pkgs="$pkgs gcc-mingw-w64-i686"
if [ -n "$pkgs" ]; then
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null \
    || { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs >/dev/null; } \
    || { echo "windows.sh: could not install$pkgs (apt-get install$pkgs)" >&2; exit 2; }
fi

step "build for $TARGET (the host and the plugins the Windows tests load) and the 32-bit MAPI helper"
# mailhost-mapi-helper32 for x86_64 too: Debian's 32-bit Wine (wine32:i386) is
# not used here, so the helper's route runs under wine64 with a 64-bit build
# of the helper standing in for the 32-bit one (tests/tests/windows.rs says how).
cargo build --target "$TARGET" -p mailhost -p mailhost-pickup -p mailhost-smtp -p mailhost-mapi -p mailhost-outlook \
  -p mailhost-mapi-helper32
# The helper as shipped: what a 64-bit mailhost starts for a 32-bit mail client.
cargo build --target "$TARGET32" -p mailhost-mapi-helper32 --bin mailhost-mapi32
export MAILHOST_HELPER32_EXE="$ROOT/target/$TARGET32/debug/mailhost-mapi32.exe"

step "fresh Wine prefix (no display) with the bcryptprimitives.dll test shim"
export WINEPREFIX="$ROOT/target/wine/prefix" WINEDEBUG=-all
# No Mono/Gecko install prompts: the tests need neither .NET nor an HTML engine.
export WINEDLLOVERRIDES="mscoree=d;mshtml=d"
[ -d "$WINEPREFIX" ] && "$WINESERVER" -k 2>/dev/null || true
rm -rf "$WINEPREFIX"
mkdir -p "$WINEPREFIX"
# One wineserver for the whole stage, started here so that no test's output
# files are inherited by it; ended on the way out.
"$WINESERVER" -p >/dev/null 2>&1 </dev/null
trap '"$WINESERVER" -k 2>/dev/null || true' EXIT
"$WINE" wineboot --init >/dev/null 2>&1
# A new session for the tests: in the session that created the prefix, a COM
# local server (the Outlook double) is started but its client's calls never
# reach it (Wine 8; the client waits forever). A restarted wineserver serves them.
"$WINESERVER" -k 2>/dev/null || true
"$WINESERVER" -p >/dev/null 2>&1 </dev/null
x86_64-w64-mingw32-gcc -shared -O2 tests/windows/bcryptprimitives.c \
  -o "$WINEPREFIX/drive_c/windows/system32/bcryptprimitives.dll" -ladvapi32
# The test double of a default mail client (Simple MAPI), registered by the tests.
export MAILHOST_TEST_CLIENT_DLL="$ROOT/target/wine/testclient.dll"
x86_64-w64-mingw32-gcc -shared -O2 tests/windows/testclient.c -o "$MAILHOST_TEST_CLIENT_DLL"
# The same client built 32-bit (undecorated stdcall export names, as mapi32 looks them up).
export MAILHOST_TEST_CLIENT32_DLL="$ROOT/target/wine/testclient32.dll"
i686-w64-mingw32-gcc -shared -O2 -Wl,--kill-at tests/windows/testclient.c -o "$MAILHOST_TEST_CLIENT32_DLL"
# The test double of Outlook Classic's object model (an out-of-process COM
# server, LocalServer32, as Outlook is).
export MAILHOST_TEST_OUTLOOK_EXE="$ROOT/target/wine/testoutlook.exe"
x86_64-w64-mingw32-gcc -O2 -municode tests/windows/testoutlook.c -o "$MAILHOST_TEST_OUTLOOK_EXE" -lole32 -loleaut32 -luuid
# The test double of the new Outlook's program (olk.exe).
export MAILHOST_TEST_OLK_EXE="$ROOT/target/wine/testolk.exe"
x86_64-w64-mingw32-gcc -O2 -municode tests/windows/testolk.c -o "$MAILHOST_TEST_OLK_EXE"

step "peers"
if [ -z "${PEERS_DIR:-}" ]; then
  export PEERS_DIR="$ROOT/target/peers"
  mkdir -p "$PEERS_DIR"
  "$SHARED/peers/all.sh" start >/dev/null
fi

step "tests under Wine"
export WINE MAILHOST_WINDOWS_DIR="$ROOT/target/$TARGET/debug"
# One at a time: the tests write the prefix's registry, which they all share.
cargo test -p mailhost-tests --test windows -- --ignored --test-threads=1

echo "windows stage: $(($(date +%s) - started)) s"
