#!/usr/bin/env bash
# Every test of the workspace, with what the tests need installed first
# (scripts/setup.sh: protoc and chromium). Arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

bash "$(dirname "$0")/setup.sh"

exec cargo test --workspace "$@"
