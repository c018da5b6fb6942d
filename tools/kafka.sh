#!/usr/bin/env bash
# Local single-node Apache Kafka (KRaft) for statefold's real-broker tests and benchmarks.
# The broker comes from Maven Central as jars (tools/kafka/pom.xml): no tarball download,
# nothing vendored. See `tools/kafka.sh --help`.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$HERE/kafka/pom.xml"
LOG4J_CONF="$HERE/kafka/log4j2.yaml"

# The version lives in the pom only; STATEFOLD_KAFKA_VERSION overrides it (passed to Maven).
POM_KAFKA_VERSION="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)"
KAFKA_VERSION="${STATEFOLD_KAFKA_VERSION:-$POM_KAFKA_VERSION}"
CACHE_ROOT="${STATEFOLD_CACHE:-$HOME/.cache/statefold}"
KAFKA_HOME="$CACHE_ROOT/kafka-$KAFKA_VERSION"
LIBS="$KAFKA_HOME/libs"
STAMP="$KAFKA_HOME/.fetched"

DEFAULT_DIR="${STATEFOLD_KAFKA_DIR:-/tmp/statefold-kafka}"
DEFAULT_PORT=9092
START_TIMEOUT="${STATEFOLD_KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT=30
HEAP_OPTS="${STATEFOLD_KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
# --sasl-ssl: the one SASL user and mechanism of the SASL_SSL listener.
SASL_USER=statefold
SASL_MECHANISM=SCRAM-SHA-512

usage() {
  cat <<EOF
Usage: tools/kafka.sh COMMAND [OPTIONS]

Runs a single-node Apache Kafka $KAFKA_VERSION broker (KRaft, combined broker+controller)
on 127.0.0.1 for statefold's real-broker tests.

Commands:
  fetch                          Resolve the broker jars into $LIBS
                                 (via Maven; skipped when already complete).
  start [--port P] [--dir DIR] [--sasl-ssl]
                                 Fetch if needed, configure, format storage (first time only),
                                 start in the background and wait until the broker serves.
                                 Already running: says so and exits 0. Prints the bootstrap address
                                 (the PLAINTEXT one, also with --sasl-ssl).
  stop [--dir DIR]               SIGTERM, wait up to ${STOP_TIMEOUT}s, then SIGKILL. Idempotent.
  restart [--port P] [--dir DIR] [--sasl-ssl]
                                 stop, then start on the same dir (data kept).
  status [--dir DIR]             Exit 0 if the broker of DIR is running and serving, 1 otherwise.
  sasl-info [--dir DIR]          For a dir with SASL_SSL (see --sasl-ssl), print one per line:
                                 bootstrap=127.0.0.1:P+2, ca=<CA file>, username=$SASL_USER,
                                 password_file=<file>. Exit 1 if DIR has no SASL_SSL listener.
  check-logs [--dir DIR] [FILE...]
                                 Exit 1 (printing the lines) if the broker log or the given
                                 files mention an unsupported compression type.

Options:
  --port P    PLAINTEXT port (controller uses P+1, SASL_SSL P+2). Default: the port DIR was
              last started with, else $DEFAULT_PORT.
  --dir DIR   Broker home (config, data, logs, pid). Default: \$STATEFOLD_KAFKA_DIR or
              /tmp/statefold-kafka (currently $DEFAULT_DIR).
  --sasl-ssl  Also open a SASL_SSL listener on 127.0.0.1:P+2 (TLS + SASL/$SASL_MECHANISM or
              SASL/PLAIN, user "$SASL_USER", no authorizer) for client security tests; statefold's
              librdkafka (2.0.2) needs PLAIN: its SCRAM is refused by Kafka 4.x (librdkafka#4895). PLAINTEXT on P and the
              controller stay as they are. The first use creates DIR/tls/ with a test CA
              (ca.pem, ca.key), the broker certificate for IP:127.0.0.1 and DNS:localhost
              (broker.pem, broker.key), the broker's PEM keystore (broker-keystore.pem) and
              the user's password (sasl-password, no trailing newline). The choice sticks:
              while DIR/tls exists, every start/restart of DIR has the listener (delete
              DIR/tls, with the broker stopped, to go back). On a dir formatted without it,
              the user is added through the PLAINTEXT listener once the broker serves.

Environment:
  STATEFOLD_CACHE                 jar cache root (default \$HOME/.cache/statefold)
  STATEFOLD_KAFKA_DIR             default --dir
  STATEFOLD_KAFKA_VERSION         override the Kafka version in tools/kafka/pom.xml
  STATEFOLD_KAFKA_START_TIMEOUT   seconds to wait for the broker to serve (default 90)
  STATEFOLD_KAFKA_HEAP_OPTS       JVM heap flags (default "-Xms256m -Xmx768m")
  STATEFOLD_KAFKA_SASL_PASSWORD   password of the SASL user "$SASL_USER" (with --sasl-ssl / DIR/tls);
                                  written to DIR/tls/sasl-password on start, and the broker's
                                  credential updated if it changed. Unset: a random password
                                  is generated once. No whitespace, and none of , [ ] " \\

Layout of DIR: server.properties, data/ (log.dirs), logs/server.log, logs/console.log, kafka.pid,
and with --sasl-ssl tls/ (see above; the secret files are mode 0600).
EOF
}

log() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- fetch

java_bin() {
  local j
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then j="$JAVA_HOME/bin/java"; else j="$(command -v java || true)"; fi
  [[ -n "$j" ]] || die "java not found (Kafka 4.x needs Java 17+; run tools/setup.sh)"
  # Kafka 4.x brokers refuse older JVMs with an obscure UnsupportedClassVersionError; say it plainly.
  local major
  major="$("$j" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')"
  [[ "${major%%.*}" -ge 17 ]] 2>/dev/null || die "$j is Java ${major:-?}; Kafka $KAFKA_VERSION needs Java 17+"
  printf '%s\n' "$j"
}

# The stamp records what was fetched, so editing the pom (or the version) triggers a re-fetch.
fetch_key() { printf '%s %s\n' "$KAFKA_VERSION" "$(sha256sum "$POM" | cut -d' ' -f1)"; }

fetch_complete() { [[ -f "$STAMP" && -d "$LIBS" && "$(cat "$STAMP")" == "$(fetch_key)" ]]; }

cmd_fetch() {
  if fetch_complete; then
    log "Kafka $KAFKA_VERSION jars already in $LIBS"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (run tools/setup.sh)"
  mkdir -p "$KAFKA_HOME"
  # Serialise concurrent fetches (parallel test jobs); re-check after getting the lock.
  exec 8>"$KAFKA_HOME/.fetch.lock"
  flock 8
  if fetch_complete; then exec 8>&-; log "Kafka $KAFKA_VERSION jars already in $LIBS"; return 0; fi
  log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS ..."
  local tmp="$KAFKA_HOME/libs.tmp.$$" t0=$SECONDS
  rm -rf "$tmp"
  # Copy into a temp dir and rename, so an interrupted fetch never looks complete.
  # Maven's output goes to fetch.log (Maven 3.8's -q still spews colour escapes); shown on failure.
  if ! mvn -B -ntp -f "$POM" \
      -Dkafka.version="$KAFKA_VERSION" -DincludeScope=runtime \
      dependency:copy-dependencies -DoutputDirectory="$tmp" >"$KAFKA_HOME/fetch.log" 2>&1; then
    tail -n 30 "$KAFKA_HOME/fetch.log" >&2
    rm -rf "$tmp"; exec 8>&-
    die "Maven could not resolve org.apache.kafka:kafka_2.13:$KAFKA_VERSION (full log: $KAFKA_HOME/fetch.log)"
  fi
  [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; exec 8>&-; die "kafka_2.13-$KAFKA_VERSION.jar missing after fetch"; }
  rm -rf "$LIBS"
  mv "$tmp" "$LIBS"
  fetch_key >"$STAMP"
  exec 8>&-
  log "fetched $(find "$LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------- helpers on a broker dir

DIR="" PORT="" SASL_SSL=0

parse_opts() {  # sets DIR, PORT, SASL_SSL (0/1), and EXTRA (remaining positional args)
  DIR="$DEFAULT_DIR" PORT="" SASL_SSL=0 EXTRA=()
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --sasl-ssl) SASL_SSL=1; shift ;;
      --dir) [[ $# -ge 2 ]] || die "--dir needs a value"; DIR="$2"; shift 2 ;;
      --dir=*) DIR="${1#--dir=}"; shift ;;
      --port) [[ $# -ge 2 ]] || die "--port needs a value"; PORT="$2"; shift 2 ;;
      --port=*) PORT="${1#--port=}"; shift ;;
      -h|--help) usage; exit 0 ;;
      --) shift; EXTRA+=("$@"); break ;;
      -*) die "unknown option: $1 (see --help)" ;;
      *) EXTRA+=("$1"); shift ;;
    esac
  done
  [[ -z "$PORT" || "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number"
  DIR="$(realpath -m "$DIR")"  # absolute: it ends up in server.properties and the pid check
}

no_sasl_opt() { ((SASL_SSL == 0)) || die "--sasl-ssl is an option of start and restart only"; }

pid_file() { printf '%s/kafka.pid\n' "$DIR"; }

# Port the dir's broker was configured with (empty if never configured).
configured_port() {
  [[ -f "$DIR/server.properties" ]] || return 0
  sed -n 's#^listeners=PLAINTEXT://127\.0\.0\.1:\([0-9]*\),.*#\1#p' "$DIR/server.properties"
}

# Whether the dir's last written config has the SASL_SSL listener.
configured_sasl() { [[ -f "$DIR/server.properties" ]] && grep -q '^listeners=.*,SASL_SSL://' "$DIR/server.properties"; }

# PID of this dir's broker if it is alive. Checks the command line too, so a stale pid file
# whose pid got reused by some other process is not mistaken for our broker.
broker_pid() {
  local pf pid
  pf="$(pid_file)"
  [[ -f "$pf" ]] || return 1
  pid="$(cat "$pf")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "kafka.Kafka $DIR/server.properties" || return 1
  printf '%s\n' "$pid"
}

# A real Kafka protocol round trip over bash's /dev/tcp: Metadata v4 for all topics, which
# the broker only answers once its listeners are open (end of startup). "Serving" = the
# response carries our correlation id and at least one registered broker.
serves() {
  local port="$1" hex
  # shellcheck disable=SC2016  # the inner script expands $1 itself
  hex="$(timeout 5 bash -c '
      exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
      # size=15 | api_key=3 (Metadata) | version=4 | correlation_id=7 | client_id=null | topics=null | allow_auto_create=false
      printf "\x00\x00\x00\x0f\x00\x03\x00\x04\x00\x00\x00\x07\xff\xff\xff\xff\xff\xff\x00" >&3
      # size(4) | correlation_id(4) | throttle_time_ms(4) | brokers count(4)
      head -c 16 <&3 | od -An -tx1 -v | tr -d " \n"
    ' _ "$port" 2>/dev/null)" || return 1
  [[ ${#hex} -eq 32 && "${hex:8:8}" == "00000007" && "${hex:24:8}" != "00000000" ]]
}

# shellcheck disable=SC2016  # the inner script expands $1 itself
port_open() { timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null; }

tail_log() {
  local f
  for f in "$DIR/logs/server.log" "$DIR/logs/console.log"; do
    [[ -s "$f" ]] || continue
    log "---- last lines of $f ----"
    tail -n 40 "$f" >&2
  done
}

# Random KRaft cluster id: 16 random bytes as unpadded base64url, like `kafka-storage.sh random-uuid`
# (which also never returns an id starting with '-', as it would read as a command-line flag).
random_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* ]] && break
  done
  printf '%s\n' "$id"
}

# ---------------------------------------------------------------- --sasl-ssl

tls_dir() { printf '%s/tls\n' "$DIR"; }
password_file() { printf '%s/tls/sasl-password\n' "$DIR"; }
# SASL_SSL is on for a dir once its tls/ exists (first `start --sasl-ssl`), so it survives restarts.
sasl_wanted() { ((SASL_SSL)) || [[ -d "$(tls_dir)" ]]; }

# The password ends up in Kafka's bracketed SCRAM syntax (split at ',', '[...]') and in
# clients' JAAS strings (password="..."); refuse what either would mangle.
valid_password() {
  [[ -n "$1" && "$1" != *[[:space:]]* && "$1" != *[],[\"\\]* ]]
}

# The CA, the broker certificate and its PEM keystore are one set: all present, the broker
# certificate signed by ca.pem and valid for at least another day, or the set is made anew.
tls_certs_ok() {
  local t; t="$(tls_dir)"
  [[ -s "$t/ca.pem" && -s "$t/ca.key" && -s "$t/broker.pem" && -s "$t/broker.key" && -s "$t/broker-keystore.pem" ]] || return 1
  openssl verify -CAfile "$t/ca.pem" "$t/broker.pem" >/dev/null 2>&1 || return 1
  openssl x509 -noout -checkend 86400 -in "$t/broker.pem" >/dev/null 2>&1
}

generate_tls_certs() {
  local t tmp
  t="$(tls_dir)"; tmp="$t/.new.$$"
  command -v openssl >/dev/null || die "openssl not found (needed for --sasl-ssl certificates)"
  log "creating a test CA and the broker certificate (IP:127.0.0.1, DNS:localhost) in $t"
  rm -rf "$tmp"
  # umask 077: keys are 0600 from the moment they exist; the certificates are opened up below.
  if ! (
    umask 077
    mkdir -p "$tmp" && cd "$tmp" || exit 1
    openssl req -x509 -new -newkey rsa:2048 -nodes -sha256 -days 3650 \
        -subj "/CN=statefold test CA ($(hostname -s 2>/dev/null || echo localhost))" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -keyout ca.key -out ca.pem &&
    # genpkey writes PKCS#8 ("BEGIN PRIVATE KEY"), unencrypted: what Kafka's PEM keystore reads.
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out broker.key &&
    openssl req -new -key broker.key -subj "/CN=localhost" -out broker.csr &&
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >broker.ext &&
    openssl x509 -req -in broker.csr -CA ca.pem -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
        -sha256 -days 3650 -extfile broker.ext -out broker.pem &&
    # Kafka's PEM keystore (KIP-651): the private key, then the certificate chain, in one file.
    cat broker.key broker.pem ca.pem >broker-keystore.pem &&
    chmod 0644 ca.pem broker.pem &&
    rm -f broker.csr broker.ext
  ) >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log"
    die "openssl failed to create the test certificates"
  fi
  rm -f "$tmp.log"
  # The keystore last: a set interrupted half-way fails tls_certs_ok and is made again.
  local f
  for f in ca.key ca.pem broker.key broker.pem broker-keystore.pem; do mv -f "$tmp/$f" "$t/$f"; done
  rmdir "$tmp"
}

# Sets up DIR/tls: the certificates (unless regen=0, i.e. a broker is running on them)
# and the password file, from $STATEFOLD_KAFKA_SASL_PASSWORD or made up once.
ensure_tls() {
  local regen="$1" t pwf pw
  t="$(tls_dir)"; pwf="$(password_file)"
  mkdir -p "$t"
  if ((regen)) && ! tls_certs_ok; then generate_tls_certs; fi
  if [[ -n "${STATEFOLD_KAFKA_SASL_PASSWORD:-}" ]]; then
    pw="$STATEFOLD_KAFKA_SASL_PASSWORD"
    valid_password "$pw" || die "STATEFOLD_KAFKA_SASL_PASSWORD must not contain whitespace or any of , [ ] \" \\"
    [[ -f "$pwf" && "$(cat "$pwf")" == "$pw" ]] && return 0
  elif [[ -s "$pwf" ]]; then
    return 0
  else
    pw="$(head -c 16 /dev/urandom | od -An -tx1 -v | tr -d ' \n')"  # 128 bits as 32 hex digits
  fi
  (umask 077; printf '%s' "$pw" >"$pwf.tmp.$$") && mv -f "$pwf.tmp.$$" "$pwf"
  chmod 0600 "$pwf"
}

sasl_password() {
  local pw; pw="$(cat "$(password_file)")"
  valid_password "$pw" || die "$(password_file) holds an unusable password (empty, whitespace, or one of , [ ] \" \\)"
  printf '%s\n' "$pw"
}

# The broker's credential for SASL_USER is known to match the password file when this
# marker holds the file's hash: set when formatting with --add-scram, or after an update.
scram_marker() { printf '%s/tls/.scram-applied\n' "$DIR"; }
password_hash() { sha256sum "$(password_file)" | cut -d' ' -f1; }
mark_scram_applied() {
  local h m; h="$(password_hash)"; m="$(scram_marker)"
  rm -f "$m"; (umask 077; printf '%s\n' "$h" >"$m")
}
scram_applied() { [[ -f "$(scram_marker)" && "$(cat "$(scram_marker)")" == "$(password_hash)" ]]; }

# Storage formatted without the user (or the password changed): create/update it through
# the Admin API on the PLAINTEXT listener (ConfigCommand is what bin/kafka-configs.sh runs).
apply_scram_credential() {
  local port="$1" java cfg pw
  scram_applied && return 0
  java="$(java_bin)"
  pw="$(sasl_password)"
  log "setting the $SASL_MECHANISM credential of user $SASL_USER through 127.0.0.1:$port"
  # The value goes in a properties file rather than on the command line (visible in ps).
  cfg="$(tls_dir)/.scram-config.$$"
  (umask 077; printf '%s=password=%s\n' "$SASL_MECHANISM" "$pw" >"$cfg")
  if ! "$java" -Xmx256m -cp "$LIBS/*" -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$DIR/log4j2.yaml" -Dkafka.logs.dir="$DIR/logs" \
      kafka.admin.ConfigCommand --bootstrap-server "127.0.0.1:$port" --alter \
      --entity-type users --entity-name "$SASL_USER" --add-config-file "$cfg" \
      >>"$DIR/logs/console.log" 2>&1 9>&-; then
    rm -f "$cfg"
    tail -n 20 "$DIR/logs/console.log" >&2
    die "could not set the SASL credential of $SASL_USER (the broker is left running); or start over with a fresh --dir"
  fi
  rm -f "$cfg"
  mark_scram_applied
  # The controller has committed it; give the broker's metadata cache a moment to catch up
  # so a client connecting right after this script returns authenticates.
  sleep 1
}

write_config() {  # port, sasl (0/1)
  local port="$1" sasl="$2" cport=$(($1 + 1)) sport=$(($1 + 2))
  local listeners="PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport"
  local advertised="PLAINTEXT://127.0.0.1:$port" protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if ((sasl)); then
    listeners+=",SASL_SSL://127.0.0.1:$sport"
    advertised+=",SASL_SSL://127.0.0.1:$sport"
    protocols+=",SASL_SSL:SASL_SSL"
  fi
  # Written on every start (not only the first) so a changed port takes effect; the static
  # voter list below makes that safe, since the controller address is not stored in the log.
  cat >"$DIR/server.properties" <<EOF
# Generated by tools/kafka.sh on every start; edits are overwritten.
# Single node, KRaft, broker and controller in one process, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$cport
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$DIR/data

# One broker: every internal topic must make do with one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Fewer internal partitions than the 50 default: first group join / first transaction is
# much faster on a 2-core machine, and nothing here needs more.
offsets.topic.num.partitions=8
transaction.state.log.num.partitions=4

# Tests: no 3 s wait before the first rebalance; topics spring into being with 4 partitions.
group.initial.rebalance.delay.ms=0
num.partitions=4
auto.create.topics.enable=true
# statefold.events is the source of truth: infinite retention.
log.retention.ms=-1
log.retention.bytes=-1
EOF
  ((sasl)) || return 0
  local pw; pw="$(sasl_password)"
  chmod 0600 "$DIR/server.properties"  # it holds the PLAIN password below
  cat >>"$DIR/server.properties" <<EOF

# --sasl-ssl (tools/kafka.sh): clients on SASL_SSL://127.0.0.1:$sport authenticate with
# SASL/$SASL_MECHANISM (user $SASL_USER, credential stored in the KRaft metadata) or SASL/PLAIN
# (same user and password) over TLS with the test CA's certificate in $(tls_dir). No client
# certificates, no authorizer: an authenticated client may do anything. Broker and controller
# traffic stays PLAINTEXT. PLAIN is there because librdkafka before 2.6.1 (Debian 12 has
# 2.0.2) cannot log in with SCRAM to Kafka 4.x (librdkafka#4895).
sasl.enabled.mechanisms=$SASL_MECHANISM,PLAIN
listener.name.sasl_ssl.${SASL_MECHANISM,,}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$pw";
# PEM keystore (KIP-651): unencrypted PKCS#8 key + certificate chain in one file.
listener.name.sasl_ssl.ssl.keystore.type=PEM
listener.name.sasl_ssl.ssl.keystore.location=$(tls_dir)/broker-keystore.pem
EOF
}

# ---------------------------------------------------------------- commands

lock_dir() {
  # One start/stop at a time per dir. The broker itself must not inherit fd 9 (see start),
  # or it would hold this lock for its whole life.
  mkdir -p "$DIR"
  exec 9>"$DIR/.lock"
  flock 9
}

cmd_start() {
  parse_opts "$@"
  [[ ${#EXTRA[@]} -eq 0 ]] || die "start: unexpected argument ${EXTRA[0]}"
  lock_dir
  local port pid sasl=0
  port="${PORT:-$(configured_port)}"; port="${port:-$DEFAULT_PORT}"
  if sasl_wanted; then sasl=1; fi

  if pid="$(broker_pid)"; then
    local running_port; running_port="$(configured_port)"
    [[ -z "$PORT" || "$PORT" == "$running_port" ]] \
      || die "a broker from $DIR is already running on port $running_port (pid $pid); stop it first to change port"
    if ((sasl)) && ! configured_sasl; then
      die "the broker from $DIR (pid $pid) is running without the SASL_SSL listener; to add it: $0 restart --dir $DIR --sasl-ssl"
    fi
    # Keep the running broker's certificates; only the password may change (env).
    if ((sasl)); then ensure_tls 0; fi
    if serves "$running_port"; then
      log "already running and serving (pid $pid, dir $DIR)"
      if ((sasl)); then apply_scram_credential "$running_port"; log_sasl_info "$running_port"; fi
      printf '127.0.0.1:%s\n' "$running_port"
      return 0
    fi
    log "broker pid $pid is running but not serving yet; waiting"
    port="$running_port"
  else
    rm -f "$(pid_file)"
    ((port + 1 + sasl <= 65535)) || die "port $port is too high: ports up to $((port + 1 + sasl)) are needed"
    # Someone else (another dir's broker, another service) on our ports would make the
    # broker die with a bind error after a long JVM start; fail fast and clearly instead.
    port_open "$port" && die "port $port on 127.0.0.1 is already in use by another process"
    port_open $((port + 1)) && die "port $((port + 1)) (controller) on 127.0.0.1 is already in use"
    if ((sasl)); then
      port_open $((port + 2)) && die "port $((port + 2)) (SASL_SSL) on 127.0.0.1 is already in use"
    fi

    cmd_fetch
    local java; java="$(java_bin)"
    mkdir -p "$DIR/data" "$DIR/logs"
    if ((sasl)); then ensure_tls 1; fi
    write_config "$port" "$sasl"
    # Copy the logging config next to the data so a running broker does not depend on the
    # checkout it was started from (CI clones come and go).
    cp "$LOG4J_CONF" "$DIR/log4j2.yaml"
    local jvm_common=(-cp "$LIBS/*" -Djava.awt.headless=true
                      -Dlog4j2.configurationFile="$DIR/log4j2.yaml" -Dkafka.logs.dir="$DIR/logs")

    # Format only once: meta.properties in log.dirs marks formatted storage. Reformatting
    # would throw away every topic, which a restart must never do.
    if [[ ! -f "$DIR/data/meta.properties" ]]; then
      local cid scram=(); cid="$(random_cluster_id)"
      log "formatting KRaft storage in $DIR/data (cluster id $cid)"
      # --sasl-ssl: the SCRAM user goes into the bootstrap metadata, so it exists before any
      # client connects. (The password is briefly on this JVM's command line; local test broker.)
      if ((sasl)); then
        local pw; pw="$(sasl_password)"
        scram=(--add-scram "$SASL_MECHANISM=[name=$SASL_USER,password=$pw]")
      fi
      # kafka.tools.StorageTool is what bin/kafka-storage.sh runs. With the static
      # controller.quorum.voters above no --standalone/--initial-controllers is wanted.
      "$java" -Xmx256m "${jvm_common[@]}" kafka.tools.StorageTool format \
          -t "$cid" -c "$DIR/server.properties" "${scram[@]+"${scram[@]}"}" >>"$DIR/logs/console.log" 2>&1 9>&- \
        || { tail_log; die "kafka-storage format failed"; }
      if ((sasl)); then mark_scram_applied; fi
    fi

    log "starting Kafka $KAFKA_VERSION on 127.0.0.1:$port (controller :$((port + 1)), dir $DIR)"
    # setsid: the broker outlives this script and is not hit by signals sent to the caller's
    # process group (e.g. Ctrl-C on a test run); stop it with `tools/kafka.sh stop`.
    # 9>&-: do not leak the dir lock into the broker.
    # shellcheck disable=SC2086  # HEAP_OPTS is a list of flags
    setsid "$java" $HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
        "${jvm_common[@]}" kafka.Kafka "$DIR/server.properties" \
        </dev/null >>"$DIR/logs/console.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$(pid_file)"
  fi

  # Wait until it really serves; bail out early if the JVM dies.
  # With SASL_SSL, also wait for its port (all listeners open together at the end of startup).
  local deadline=$((SECONDS + START_TIMEOUT))
  until serves "$port" && { ((sasl == 0)) || port_open $((port + 2)); }; do
    # broker_pid rather than kill -0: a dead child we have not reaped yet is a zombie,
    # which kill -0 still reports as alive.
    if ! broker_pid >/dev/null; then
      rm -f "$(pid_file)"
      tail_log
      die "broker exited during startup (logs: $DIR/logs/server.log, $DIR/logs/console.log)"
    fi
    if ((SECONDS >= deadline)); then
      tail_log
      die "broker (pid $pid) did not serve on 127.0.0.1:$port within ${START_TIMEOUT}s; it is left running for inspection, stop it with: $0 stop --dir $DIR"
    fi
    sleep 0.5
  done
  log "serving (pid $pid) after $((SECONDS + START_TIMEOUT - deadline))s"
  if ((sasl)); then apply_scram_credential "$port"; log_sasl_info "$port"; fi
  log "bootstrap:"
  printf '127.0.0.1:%s\n' "$port"
}

log_sasl_info() {
  log "SASL_SSL ($SASL_MECHANISM) bootstrap: 127.0.0.1:$(($1 + 2)), user $SASL_USER," \
      "password in $(password_file), CA certificate $(tls_dir)/ca.pem (also: $0 sasl-info --dir $DIR)"
}

cmd_stop() {
  parse_opts "$@"
  [[ ${#EXTRA[@]} -eq 0 ]] || die "stop: unexpected argument ${EXTRA[0]}"
  no_sasl_opt
  [[ -d "$DIR" ]] || { log "not running (no $DIR)"; return 0; }
  lock_dir
  local pid
  if ! pid="$(broker_pid)"; then
    rm -f "$(pid_file)"
    log "not running (dir $DIR)"
    return 0
  fi
  # SIGTERM = Kafka's controlled shutdown: it flushes and closes the logs cleanly, so the
  # next start does not need log recovery.
  log "stopping broker pid $pid (dir $DIR)"
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "still alive after ${STOP_TIMEOUT}s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
  fi
  rm -f "$(pid_file)"
  log "stopped"
}

cmd_status() {
  parse_opts "$@"
  no_sasl_opt
  local pid port
  if ! pid="$(broker_pid)"; then log "not running (dir $DIR)"; return 1; fi
  port="$(configured_port)"
  if serves "$port"; then
    log "running and serving (pid $pid, dir $DIR)"
    printf '127.0.0.1:%s\n' "$port"
    return 0
  fi
  log "running (pid $pid) but not serving on 127.0.0.1:$port"
  return 1
}

cmd_sasl_info() {
  parse_opts "$@"
  [[ ${#EXTRA[@]} -eq 0 ]] || die "sasl-info: unexpected argument ${EXTRA[0]}"
  no_sasl_opt
  local port; port="$(configured_port)"
  [[ -n "$port" ]] || die "sasl-info: no broker configured in $DIR (start it with --sasl-ssl)"
  configured_sasl && [[ -s "$(password_file)" && -s "$(tls_dir)/ca.pem" ]] \
    || die "sasl-info: $DIR has no SASL_SSL listener (start it with --sasl-ssl)"
  printf 'bootstrap=127.0.0.1:%s\nca=%s\nusername=%s\npassword_file=%s\n' \
      $((port + 2)) "$(tls_dir)/ca.pem" "$SASL_USER" "$(password_file)"
}

cmd_check_logs() {
  parse_opts "$@"
  no_sasl_opt
  local files=() f hits=0
  # The broker's own log plus its console (JVM-level errors land there), then any extras.
  for f in "$DIR/logs/server.log" "$DIR/logs/console.log"; do [[ -f "$f" ]] && files+=("$f"); done
  for f in "${EXTRA[@]+"${EXTRA[@]}"}"; do
    [[ -f "$f" ]] || die "check-logs: no such file: $f"
    files+=("$f")
  done
  [[ ${#files[@]} -gt 0 ]] || die "check-logs: no broker log in $DIR/logs and no files given"
  # A broker or client without a codec reports it in one of these shapes.
  local pattern='UnsupportedCompressionType|UNSUPPORTED_COMPRESSION_TYPE|unsupported compression|compression[^[:cntrl:]]*not supported'
  for f in "${files[@]}"; do
    if grep -inE "$pattern" "$f" >&2; then
      log "^^ unsupported compression reported in $f"
      hits=1
    fi
  done
  if ((hits)); then return 1; fi
  log "no unsupported-compression errors in: ${files[*]}"
}

cmd_restart() {
  local args=("$@") dir_args=() i
  # stop takes only --dir; keep --port for start.
  for ((i = 0; i < ${#args[@]}; i++)); do
    case "${args[i]}" in
      --dir) dir_args+=(--dir "${args[i + 1]:-}"); i=$((i + 1)) ;;
      --dir=*) dir_args+=("${args[i]}") ;;
      -h|--help) usage; exit 0 ;;
    esac
  done
  ( cmd_stop "${dir_args[@]+"${dir_args[@]}"}" )  # subshell: releases stop's dir lock
  cmd_start "$@"
}

main() {
  [[ $# -gt 0 ]] || { usage >&2; exit 2; }
  local cmd="$1"; shift
  case "$cmd" in
    fetch)
      case "${1:-}" in
        "") cmd_fetch ;;
        -h|--help) usage ;;
        *) die "fetch takes no arguments" ;;
      esac ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    restart) cmd_restart "$@" ;;
    status) cmd_status "$@" ;;
    sasl-info) cmd_sasl_info "$@" ;;
    check-logs) cmd_check_logs "$@" ;;
    -h|--help|help) usage ;;
    *) log "unknown command: $cmd"; usage >&2; exit 2 ;;
  esac
}

main "$@"
