#!/usr/bin/env bash
# Installs what statefold needs to build, test and run its local Kafka broker on a fresh
# Debian 12 machine. Idempotent and quick when everything is there: it asks dpkg first and
# only touches apt (update + install) for packages that are actually missing.
# The broker itself is not a Debian package: tools/kafka.sh fetches it through Maven.
set -euo pipefail

if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  cat <<'EOF'
Usage: tools/setup.sh

Installs (only when missing) the Debian 12 packages statefold needs: C++ toolchain, CMake,
Ninja, librdkafka, FlatBuffers, RocksDB, Boost 1.81 (+ JSON), CLI11, toml++, xxHash,
Google Benchmark/Test, compression libraries, PCRE2, clang-14 + libclang-rt-14-dev (fuzzing), Node.js + npm (the
tokenizer's rank tables come from the npm registry at build time), OpenJDK 17 + Maven (for the local Kafka
broker, see tools/kafka.sh), python3, curl, procps. Needs root (or sudo).
EOF
  exit 0
fi

PACKAGES=(
  # toolchain and build
  build-essential g++ cmake ninja-build pkg-config git
  # libraries the C++ code links against
  librdkafka-dev flatbuffers-compiler libflatbuffers-dev librocksdb-dev
  libboost1.81-dev libboost-json1.81-dev libcli11-dev libtomlplusplus-dev libxxhash-dev
  libbenchmark-dev libgtest-dev libssl-dev prometheus-cpp-dev libjwt-dev
  # connectors: the tokenizer's split pattern
  libpcre2-dev
  # promtool checks the /metrics output in tests; the openssl command makes the TLS tests' certificates
  prometheus openssl
  # every Kafka codec (zstd, lz4, snappy, gzip) must work end to end; zlib's crc32 also checks AWS event-streams
  libzstd-dev liblz4-dev libsnappy-dev zlib1g-dev
  # local real broker (tools/kafka.sh): Kafka 4.x needs Java 17+, jars come via Maven
  openjdk-17-jre-headless maven
  # scripts and tests
  python3 python3-venv curl procps
  # the libFuzzer targets (fuzz preset, tools/fuzz.sh)
  clang-14 libclang-rt-14-dev
)

installed() {
  [[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null)" == installed ]]
}

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done
# npm fetches the tokenizer's rank tables at build time. A Node.js that is not Debian's (NodeSource's bundles npm
# and conflicts with Debian's npm package) is fine as long as npm runs.
if ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup.sh: all ${#PACKAGES[@]} packages already installed"
  exit 0
fi

SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { echo "setup.sh: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi

echo "setup.sh: missing: ${missing[*]}"
# The index may be stale or absent on a fresh image; refresh it only now that we need it.
echo "setup.sh: apt-get update"
"${SUDO[@]}" apt-get update -q
echo "setup.sh: installing ${#missing[@]} package(s)"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -q --no-install-recommends "${missing[@]}"

# Check the result rather than trusting apt's exit status alone.
still=()
for p in "${missing[@]}"; do installed "$p" || still+=("$p"); done
if [[ ${#still[@]} -gt 0 ]]; then
  echo "setup.sh: still missing after install: ${still[*]}" >&2
  exit 1
fi
echo "setup.sh: done"
