#!/usr/bin/env bash
# The swarm test's long run: random sessions (mesh on even seeds,
# client-server on odd ones, 3 to 32 stations) with random workloads and
# faults on the deterministic simulator, invariants checked after every
# step. Prints, per topology, the seeds, steps, virtual hours and any seed
# that failed (each with the command that reproduces it alone).
#
#   bash scripts/swarm.sh            # 10,000 seeds (5,000 per topology)
#   bash scripts/swarm.sh 2000 4000  # 2,000 seeds from seed 4,000
set -uo pipefail
cd "$(dirname "$0")/.."

export NETZ_SWARM_PROFILE=long
export NETZ_SWARM_SEEDS="${1:-10000}"
export NETZ_SWARM_START="${2:-0}"
cargo test --release -p netz-core --test swarm --no-run || exit 1
status=0
for t in swarm_client_server swarm_mesh; do
    cargo test --release -p netz-core --test swarm -- --exact "$t" --nocapture 2>&1 |
        grep -E '^swarm|reproduce:'
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
exit "$status"
