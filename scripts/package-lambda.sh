#!/usr/bin/env bash
# Builds the deployable Lambda artifact: target/lambda/authserver/bootstrap.zip, the release
# `authserver` binary for arm64 (Graviton, provided.al2023) named `bootstrap`, and prints its size.
#
#   scripts/package-lambda.sh
#
# Installs what is missing: the aarch64-unknown-linux-gnu Rust target, and cargo-lambda and
# ziglang (the cross linker) in the repo's .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=scripts/lib/setup.sh
source scripts/lib/setup.sh
ensure_venv cargo-lambda ziglang # also puts .venv/bin (python3 -m ziglang) first on PATH
ensure_rust_target aarch64-unknown-linux-gnu

"$VENV/bin/cargo-lambda" lambda build --release --arm64 --output-format zip --bin authserver

zip="target/lambda/authserver/bootstrap.zip"
[ -f "$zip" ] || { echo "package-lambda: $zip was not produced" >&2; exit 1; }
zip_bytes=$(stat -c %s "$zip")
bin_bytes=$(python3 "$SETUP_TOOLS_PY" zip-entry-size "$zip" bootstrap)
echo "package-lambda: $zip: $zip_bytes bytes zipped ($((zip_bytes / 1024)) KiB); bootstrap $bin_bytes bytes ($((bin_bytes / 1024)) KiB)"
