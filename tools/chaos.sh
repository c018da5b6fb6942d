#!/usr/bin/env bash
# The full chaos campaign (issue 9; docs/operations.md "Chaos"): builds the dev preset's chaos_test and runs it with
# many faults. The test starts its own broker (tools/kafka.sh on a free port), so nothing else needs to run.
set -euo pipefail
cd "$(dirname "$0")/.."

usage() {
  cat <<EOF2
Usage: tools/chaos.sh [--serve-kills N] [--broker-kills N] [--seed S] [--no-build]

  --serve-kills N   kill -9 of serve at random moments, each followed by a restart (default 50)
  --broker-kills N  kill -9 of the broker, each followed by a restart on its data (default 5)
  --seed S          seed of the fault schedule (default: random, printed)
  --no-build        use build/dev/tests/chaos/chaos_test as it is
Prints each fault's recovery time and, at the end, acknowledged, missing and doubled events. Exit 0 when nothing
acknowledged was lost or doubled and 'statefold verify' passed.
EOF2
}

serve_kills=50
broker_kills=5
seed=""
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --serve-kills) serve_kills="$2"; shift 2 ;;
    --broker-kills) broker_kills="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) printf 'chaos.sh: unknown option %s\n' "$1" >&2; usage >&2; exit 2 ;;
  esac
done

if [ "$build" -eq 1 ]; then
  cmake --preset dev >/dev/null
  cmake --build --preset dev -j "${STATEFOLD_JOBS:-$(nproc)}" --target chaos_test statefold
fi
export STATEFOLD_CHAOS_SERVE_KILLS="$serve_kills" STATEFOLD_CHAOS_BROKER_KILLS="$broker_kills"
[ -n "$seed" ] && export STATEFOLD_CHAOS_SEED="$seed"
export STATEFOLD_BIN="${STATEFOLD_BIN:-$PWD/build/dev/tools/statefold/statefold}"
exec build/dev/tests/chaos/chaos_test --gtest_color=no
