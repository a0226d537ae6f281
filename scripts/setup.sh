#!/usr/bin/env bash
# Installs what the workspace's tests need besides a Rust toolchain, when
# missing: protoc (the official `agones` crate's build runs it; netz-host's
# own build uses a vendored one) and chromium (the monitor's page test; it
# is skipped, loudly, where no browser can be had). Debian packages, as root.
set -euo pipefail

need_apt=()
if ! command -v protoc >/dev/null 2>&1 && [ -z "${PROTOC:-}" ]; then
  need_apt+=(protobuf-compiler)
fi
if ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  need_apt+=(chromium)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${need_apt[*]}"
    apt-get update -qq && apt-get install -y -qq "${need_apt[@]}" >/dev/null \
      || echo "could not install ${need_apt[*]}"
  else
    echo "== please install: ${need_apt[*]} (not root or no apt-get here)"
  fi
fi

