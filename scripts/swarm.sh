#!/usr/bin/env bash
# The swarm test's long run: random sessions (mesh on even seeds,
# client-server on odd ones, 3 to 32 stations) with random workloads and
# faults on the deterministic simulator, invariants checked after every
# step. Runs the default mix, then the same seeds with outages longer than
# the failure timeout (`long_outages`: live stations declared failed,
# sessions split and healed, with the check that a station the session
# counts out learns it). Prints, per mix and topology, the seeds, steps,
# virtual hours and any seed that failed (each with the command that
# reproduces it alone).
#
#   bash scripts/swarm.sh            # 10,000 seeds per mix (5,000 per topology)
#   bash scripts/swarm.sh 2000 4000  # 2,000 seeds from seed 4,000
#   SWARM_MIXES=default bash scripts/swarm.sh   # one mix only (default or long_outages)
set -uo pipefail
cd "$(dirname "$0")/.."

export NETZ_SWARM_PROFILE=long
export NETZ_SWARM_SEEDS="${1:-10000}"
export NETZ_SWARM_START="${2:-0}"
cargo test --release -p netz-core --test swarm --no-run || exit 1
status=0
for mix in ${SWARM_MIXES:-default long_outages}; do
    case "$mix" in
        default) extra=() ;;
        long_outages) extra=(NETZ_SWARM_SCENARIOS=long_outages NETZ_SWARM_ENABLE=session_epoch) ;;
        *) echo "SWARM_MIXES: no mix '$mix' (default, long_outages)" >&2; exit 2 ;;
    esac
    echo "== $mix"
    for t in swarm_client_server swarm_mesh; do
        env "${extra[@]}" cargo test --release -p netz-core --test swarm -- --exact "$t" --nocapture 2>&1 |
            grep -E '^swarm|reproduce:'
        [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
    done
done
exit "$status"
