#!/bin/sh
# Fetches the pinned jQuery release from the npm registry into
# crates/camut-engine/vendor/jquery/ (jquery.js and its MIT license) and checks
# both against the checksums kept in SHA256SUMS there. The files are committed so
# that builds need no network; run this to re-fetch or to verify them.
#   scripts/fetch-jquery.sh          # fetch (if missing) and verify
#   scripts/fetch-jquery.sh --check  # verify only
set -eu
VERSION=3.7.1
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DEST="$ROOT/crates/camut-engine/vendor/jquery"
if [ "${1:-}" != "--check" ] && { [ ! -f "$DEST/jquery.js" ] || [ ! -f "$DEST/LICENSE.txt" ]; }; then
    TMP=$(mktemp -d)
    trap 'rm -rf "$TMP"' EXIT
    (cd "$TMP" && npm pack --silent "jquery@$VERSION" >/dev/null)
    tar -xzf "$TMP/jquery-$VERSION.tgz" -C "$TMP"
    cp "$TMP/package/dist/jquery.js" "$DEST/jquery.js"
    cp "$TMP/package/LICENSE.txt" "$DEST/LICENSE.txt"
fi
cd "$DEST"
sha256sum -c SHA256SUMS
grep -q "jQuery JavaScript Library v$VERSION" jquery.js
