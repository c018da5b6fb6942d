#!/usr/bin/env bash
# The gateway seen through its clients: the official OpenAI Python SDK (tests/gateway/test_openai_sdk.py, the
# Conversations API and the Responses lifecycle in test_conversations.py,
# test_bedrock.py for AWS Bedrock, test_auth.py for keys, roles and tenants, test_tls.py for HTTPS,
# test_group_budget.py for a key's token budget over two instances, test_group_listing.py for listing their
# sessions and reporting their usage, test_kafka_security.py for Kafka over SASL_SSL
# on a broker of its own), the official OpenAI Node SDK
# (test_node_sdk.py running node/scenarios.mjs) and LangChain's ChatOpenAI (test_langchain.py), against the scripted
# fake upstreams (tests/support/fake_upstream.py, fake_bedrock.py) and the real Kafka broker in STATEFOLD_BROKERS.
# conftest.py and gateway_harness.py hold what they share (one serve, one fake upstream for the whole run).
#
#   tests/gateway/run_sdk_tests.sh [BUILD_DIR] [pytest args...]      e.g. ... build/dev -k streaming -x
#
# BUILD_DIR (or STATEFOLD_BUILD_DIR; default build/dev) holds the venv (gateway-sdk-venv/, made once and reused while
# requirements.txt is unchanged), the Node SDK (gateway-node/: `npm ci` of node/package-lock.json, redone only when
# the lock changes), pytest's temp dirs with every serve and fake upstream log (gateway-sdk-tmp/) and a JUnit report
# (gateway-sdk-results.xml). pip installs requirements.txt from PyPI and npm the openai package from the npm
# registry: the only network this uses.
#
# Environment: STATEFOLD_BROKERS (required), STATEFOLD_BIN (default BUILD_DIR/tools/statefold/statefold),
# STATEFOLD_SOURCE_DIR (default: this repository), PYTHON (default python3), NODE and NPM (default node and npm;
# Node.js 18 or newer), STATEFOLD_KAFKA_DIR (optional: the serve logs are then checked with tools/kafka.sh
# check-logs, as the C++ integration tests do).
# Exit status: pytest's (0 = every test passed); 2 for a setup problem.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source_dir=${STATEFOLD_SOURCE_DIR:-$(cd "$here/../.." && pwd)}

build_dir=${STATEFOLD_BUILD_DIR:-$source_dir/build/dev}
if [ $# -gt 0 ] && [ "${1#-}" = "$1" ]; then
  build_dir=$1
  shift
fi
mkdir -p "$build_dir"
build_dir=$(cd "$build_dir" && pwd)

fail() {
  echo "run_sdk_tests.sh: $*" >&2
  exit 2
}

if [ -z "${STATEFOLD_BROKERS:-}" ]; then
  fail "STATEFOLD_BROKERS is not set. These tests need a real Kafka broker: run tools/test.sh, or start one with
  bash tools/kafka.sh start --port 19092 --dir /tmp/statefold-test-kafka
and export STATEFOLD_BROKERS=127.0.0.1:19092 STATEFOLD_KAFKA_DIR=/tmp/statefold-test-kafka"
fi

bin=${STATEFOLD_BIN:-$build_dir/tools/statefold/statefold}
[ -x "$bin" ] || fail "no statefold binary at $bin (build it, or set STATEFOLD_BIN)"

python=${PYTHON:-python3}
command -v "$python" >/dev/null || fail "$python not found (Debian: apt-get install python3 python3-venv)"

venv=$build_dir/gateway-sdk-venv
stamp=$venv/.statefold-requirements
want="$(sha256sum "$here/requirements.txt" | cut -d' ' -f1) $("$python" -c 'import sys; print(sys.version.split()[0])')"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  rm -rf "$venv"
  if ! "$python" -m venv "$venv" >"$build_dir/gateway-sdk-venv.log" 2>&1; then
    cat "$build_dir/gateway-sdk-venv.log" >&2
    rm -rf "$venv"
    fail "cannot create a venv with $python -m venv (Debian: apt-get install python3-venv)"
  fi
  echo "run_sdk_tests.sh: installing $(grep -Ev '^\s*(#|$)' "$here/requirements.txt" | tr '\n' ' ')into $venv"
  if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
      -r "$here/requirements.txt"; then
    rm -rf "$venv"
    fail "pip install -r $here/requirements.txt failed (it needs PyPI)"
  fi
  echo "$want" >"$stamp"
fi

# The Node SDK, installed exactly as node/package-lock.json pins it. Scripts are run from this directory (Node finds
# `openai` next to the script), so test_node_sdk.py copies node/scenarios.mjs there.
node=${NODE:-node}
npm=${NPM:-npm}
command -v "$node" >/dev/null ||
  fail "$node not found: test_node_sdk.py needs Node.js 18 or newer and npm (Debian: apt-get install nodejs npm)"
command -v "$npm" >/dev/null || fail "$npm not found: test_node_sdk.py needs npm to install the openai package"
node_major=$("$node" -p 'process.versions.node.split(".")[0]')
[ "$node_major" -ge 18 ] || fail "$node is Node.js $("$node" --version); test_node_sdk.py needs 18 or newer (global fetch)"
node_dir=$build_dir/gateway-node
node_stamp=$node_dir/.statefold-lock
node_want="$(cat "$here/node/package.json" "$here/node/package-lock.json" | sha256sum | cut -d' ' -f1) $node_major"
if [ ! -f "$node_dir/node_modules/openai/package.json" ] || [ "$(cat "$node_stamp" 2>/dev/null)" != "$node_want" ]; then
  rm -rf "$node_dir"
  mkdir -p "$node_dir"
  cp "$here/node/package.json" "$here/node/package-lock.json" "$node_dir/"
  echo "run_sdk_tests.sh: installing the Node SDK ($(grep -o '"openai": *"[^"]*"' "$here/node/package.json")) into $node_dir"
  if ! (cd "$node_dir" && "$npm" ci --no-audit --no-fund --loglevel=error); then
    rm -rf "$node_dir"
    fail "npm ci in $node_dir failed (it needs the npm registry)"
  fi
  echo "$node_want" >"$node_stamp"
fi

export STATEFOLD_BIN=$bin STATEFOLD_SOURCE_DIR=$source_dir STATEFOLD_BROKERS STATEFOLD_NODE_DIR=$node_dir NODE=$node
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ in the source tree
export LANGSMITH_TRACING=false LANGCHAIN_TRACING_V2=false  # LangChain sends no traces anywhere
cd "$build_dir"
# The protocol module's writers against the same SDK's types (tests/protocol/sdk_parse_check.py, which ctest's
# protocol_sdk_check skips where no openai package is installed): with the venv, it always runs here.
samples=$build_dir/tests/protocol/protocol_samples
if [ -x "$samples" ]; then
  "$venv/bin/python" "$source_dir/tests/protocol/sdk_parse_check.py" "$samples" ||
    { echo "run_sdk_tests.sh: the protocol writers' output does not parse with the openai SDK" >&2; exit 1; }
fi
exec "$venv/bin/python" -m pytest "$here/test_openai_sdk.py" "$here/test_conversations.py" "$here/test_node_sdk.py" \
  "$here/test_langchain.py" \
  "$here/test_bedrock.py" "$here/test_auth.py" "$here/test_tls.py" "$here/test_group_budget.py" "$here/test_group_listing.py" \
  "$here/test_kafka_security.py" -p no:cacheprovider -ra \
  --basetemp="$build_dir/gateway-sdk-tmp" --junitxml="$build_dir/gateway-sdk-results.xml" "$@"
