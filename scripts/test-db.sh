#!/usr/bin/env bash
# Runs a throw-away single-node Apache Cassandra 5.0 for firehose's tests (a stand-in for ScyllaDB:
# both speak CQL v4 on port 9042). Cassandra comes from Maven Central as the `cassandra-all` jar plus
# its transitive dependencies (the binary tarball is not on Maven Central), and runs on OpenJDK 17.
#
#   scripts/test-db.sh fetch    download cassandra-all and its deps into .cache/cassandra/lib/ (once)
#   scripts/test-db.sh start    start the node, wait until CQL answers, print FIREHOSE_SCYLLA_URI=...
#   scripts/test-db.sh stop     stop the node (SIGTERM, then SIGKILL) and delete its data
#   scripts/test-db.sh status   say whether the node runs, and where
#   scripts/test-db.sh kill     SIGKILL the node and keep its data (crash tests); `start` with
#                               CASSANDRA_KEEP_DATA=1 brings it back on the same ports and data
#
# If FIREHOSE_SCYLLA_URI is already set, `start` only echoes it: an external ScyllaDB/Cassandra is used
# (e.g. `docker run -p 9042:9042 scylladb/scylla --smp 1`). See docs/TEST-DATABASE.md.
#
# CASSANDRA_SECURE=1: the same commands act on a second node (its own run dir, .cache/cassandra/
# run-secure, and cluster name) that requires a login (PasswordAuthenticator, superuser
# cassandra/cassandra) and TLS with a client certificate on its CQL port, for the tests of
# store.scylla_username / scylla_tls (tests/store_secure.rs). Before it starts, the JDK's keytool
# makes a throw-away CA and the node's keystore (certificate for DNS firehose-test-db and IP
# 127.0.0.1, signed by that CA), openssl a self-signed client certificate the node trusts; all in
# <run dir>/tls: ca.pem, client.pem, client.key (PEM, what the driver reads). `start` prints
# FIREHOSE_SCYLLA_SECURE_URI=... and FIREHOSE_SCYLLA_SECURE_DIR=<run dir>/tls; if
# FIREHOSE_SCYLLA_SECURE_URI is already set, it only echoes both.
#
# Environment knobs: CASSANDRA_VERSION (default 5.0.8), CASSANDRA_JAVA_HOME (default OpenJDK 17),
# CASSANDRA_START_TIMEOUT (seconds, default 180), CASSANDRA_HEAP / CASSANDRA_HEAP_MIN (1g / 512m),
# CASSANDRA_RUN_DIR (where a node's config, data and log live; default .cache/cassandra/run: a
# second node needs its own), CASSANDRA_NATIVE_PORT (first CQL port tried, default 9042),
# CASSANDRA_KEEP_DATA=1 (start: reuse the run dir's data and ports, after `kill`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$(pwd)"

CASSANDRA_VERSION="${CASSANDRA_VERSION:-5.0.8}"
# Cassandra 5.0 supports Java 11 and 17 only; the machine's default `java` may be newer.
JAVA_HOME="${CASSANDRA_JAVA_HOME:-/usr/lib/jvm/java-17-openjdk-amd64}"
JAVA="$JAVA_HOME/bin/java"
START_TIMEOUT="${CASSANDRA_START_TIMEOUT:-180}"
STOP_TIMEOUT=30

CACHE="$ROOT/.cache/cassandra"
LIB="$CACHE/lib"                   # all jars (cassandra-all + transitive deps)
FETCH_DIR="$CACHE/fetch"           # the generated pom used to resolve them
MARKER="$LIB/.complete-$CASSANDRA_VERSION"
SECURE="${CASSANDRA_SECURE:-0}"
if [ "$SECURE" = 1 ]; then
  RUN="${CASSANDRA_RUN_DIR:-$CACHE/run-secure}"
else
  RUN="${CASSANDRA_RUN_DIR:-$CACHE/run}"  # config, data, logs, pid of the running node
fi
TLS="$RUN/tls"                     # the secure node's keys and certificates
CONF="$RUN/conf"
DATA="$RUN/data"
LOG="$RUN/cassandra.log"
PIDFILE="$RUN/cassandra.pid"
PORTFILE="$RUN/native_port"
PORTSFILE="$RUN/ports"             # "native storage jmx", for a restart on the same ports
LAST_LOG="$RUN.last-run.log"       # copy of the log kept after `stop` deletes the run dir

log() { echo "test-db: $*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------------------
# fetch: resolve org.apache.cassandra:cassandra-all and every runtime dependency into $LIB.
# ---------------------------------------------------------------------------------------------------
cmd_fetch() {
  if [ -f "$MARKER" ]; then
    log "cassandra-all $CASSANDRA_VERSION already cached in $LIB ($(ls "$LIB"/*.jar | wc -l) jars)"
    return 0
  fi
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  mkdir -p "$FETCH_DIR"
  # A throw-away project whose only dependency is cassandra-all; the dependency plugin version is
  # pinned so the result does not depend on Maven's built-in default.
  cat >"$FETCH_DIR/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>firehose.test</groupId>
  <artifactId>cassandra-fetch</artifactId>
  <version>0</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>$CASSANDRA_VERSION</version>
    </dependency>
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>3.6.1</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
EOF
  # Start from an empty lib dir so jars of another version never mix in.
  rm -rf "$LIB"
  mkdir -p "$LIB"
  log "resolving cassandra-all $CASSANDRA_VERSION and its dependencies with Maven..."
  # includeScope=runtime: compile + runtime deps, no test/provided ones.
  # Maven's output goes to stderr: stdout carries only the URI line of `start`.
  (cd "$FETCH_DIR" && mvn -q -B -Dstyle.color=never dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$LIB") >&2
  [ -f "$LIB/cassandra-all-$CASSANDRA_VERSION.jar" ] || die "cassandra-all-$CASSANDRA_VERSION.jar missing after fetch"
  touch "$MARKER"
  log "cached $(ls "$LIB"/*.jar | wc -l) jars, $(du -sh "$LIB" | cut -f1) in $LIB"
}

# ---------------------------------------------------------------------------------------------------
# Helpers for start/stop/status.
# ---------------------------------------------------------------------------------------------------

# True if something listens on 127.0.0.1:$1 (ss when present, else a bash /dev/tcp connect).
port_in_use() {
  if command -v ss >/dev/null; then
    ss -Htln "sport = :$1" 2>/dev/null | grep -q . && return 0
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# First free port at or after $1, skipping the ones given after it.
free_port() {
  local p="$1"; shift
  while port_in_use "$p" || [[ " $* " == *" $p "* ]]; do p=$((p + 1)); done
  echo "$p"
}

# Pid of our running node, or nothing.
running_pid() {
  [ -f "$PIDFILE" ] || return 0
  local pid; pid="$(cat "$PIDFILE")"
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

# The secure node's TLS material (see the header): a CA and the node's keystore from keytool, a
# self-signed client certificate from openssl, the truststore of client certificates.
make_tls() {
  local keytool="$JAVA_HOME/bin/keytool"
  [ -x "$keytool" ] || die "$keytool not found (it comes with the JDK/JRE)"
  command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"
  rm -rf "$TLS"
  mkdir -p "$TLS"
  local pass=firehose-test-keystore
  kt() { "$keytool" "$@" -storetype PKCS12 -storepass "$pass" -noprompt >/dev/null 2>&1; }
  kt -genkeypair -alias ca -keyalg EC -groupname secp256r1 -dname "CN=firehose test CA" \
    -ext bc:c -validity 7 -keystore "$TLS/ca.p12" || die "keytool: CA"
  kt -exportcert -rfc -alias ca -keystore "$TLS/ca.p12" -file "$TLS/ca.pem" || die "keytool: export CA"
  kt -genkeypair -alias node -keyalg EC -groupname secp256r1 -dname "CN=firehose-test-db" \
    -validity 7 -keystore "$TLS/node.p12" || die "keytool: node key"
  kt -certreq -alias node -keystore "$TLS/node.p12" -file "$TLS/node.csr" || die "keytool: node CSR"
  kt -gencert -alias ca -keystore "$TLS/ca.p12" -infile "$TLS/node.csr" -outfile "$TLS/node.pem" -rfc \
    -validity 7 -ext san=dns:firehose-test-db,ip:127.0.0.1 -ext ku:c=digitalSignature \
    -ext eku=serverAuth || die "keytool: sign node certificate"
  kt -importcert -alias ca -file "$TLS/ca.pem" -keystore "$TLS/node.p12" || die "keytool: CA into keystore"
  kt -importcert -alias node -file "$TLS/node.pem" -keystore "$TLS/node.p12" || die "keytool: node chain"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 7 \
    -subj "/CN=firehose-test-client" -addext "basicConstraints=critical,CA:FALSE" \
    -addext "extendedKeyUsage=clientAuth" -keyout "$TLS/client.key" -out "$TLS/client.pem" \
    >/dev/null 2>&1 || die "openssl: client certificate"
  kt -importcert -alias client -file "$TLS/client.pem" -keystore "$TLS/trust.p12" || die "keytool: truststore"
  rm -f "$TLS/node.csr"
}

write_config() {
  local native="$1" storage="$2"
  mkdir -p "$CONF" "$DATA"/{data,commitlog,hints,saved_caches,cdc_raw} "$RUN/triggers"
  local cluster=firehose-test auth=AllowAllAuthenticator
  if [ "$SECURE" = 1 ]; then cluster=firehose-test-secure; auth=PasswordAuthenticator; fi
  # Minimal single-node config; everything not named takes Cassandra's built-in default.
  cat >"$CONF/cassandra.yaml" <<EOF
cluster_name: $cluster
num_tokens: 1
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: $storage
start_native_transport: true
native_transport_port: $native
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "127.0.0.1:$storage"
data_file_directories:
  - $DATA/data
commitlog_directory: $DATA/commitlog
hints_directory: $DATA/hints
saved_caches_directory: $DATA/saved_caches
cdc_raw_directory: $DATA/cdc_raw
# batch: a write is in the commit log file before it is acknowledged, so a killed node (the
# crash test) loses nothing it acknowledged; -Dcassandra.skip_sync keeps that cheap (no fsync:
# the page cache outlives the process, not the machine). In periodic mode our kill test saw a
# SIGKILLed node lose a few acknowledged writes.
commitlog_sync: batch
# A test node: no snapshots on TRUNCATE/DROP, no auth (the secure node: logins only), small caches.
auto_snapshot: false
authenticator: $auth
authorizer: AllowAllAuthorizer
key_cache_size: 8MiB
counter_cache_size: 0MiB
EOF
  if [ "$SECURE" = 1 ]; then
    cat >>"$CONF/cassandra.yaml" <<EOF
# TLS only, and only with a client certificate the truststore holds.
client_encryption_options:
  enabled: true
  optional: false
  keystore: $TLS/node.p12
  keystore_password: firehose-test-keystore
  truststore: $TLS/trust.p12
  truststore_password: firehose-test-keystore
  store_type: PKCS12
  require_client_auth: true
EOF
  fi
  # Console-only logging at INFO (stdout/stderr go to $LOG); noisy loggers turned down.
  cat >"$CONF/logback.xml" <<'EOF'
<configuration scan="false">
  <appender name="STDOUT" class="ch.qos.logback.core.ConsoleAppender">
    <encoder><pattern>%-5level [%thread] %date{ISO8601} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.datastax" level="WARN"/>
  <logger name="io.netty" level="WARN"/>
  <root level="INFO"><appender-ref ref="STDOUT"/></root>
</configuration>
EOF
}

# ---------------------------------------------------------------------------------------------------
# start
# ---------------------------------------------------------------------------------------------------
# The lines `start` prints for the running node.
print_uri() {
  if [ "$SECURE" = 1 ]; then
    echo "FIREHOSE_SCYLLA_SECURE_URI=127.0.0.1:$1"
    echo "FIREHOSE_SCYLLA_SECURE_DIR=$TLS"
  else
    echo "FIREHOSE_SCYLLA_URI=127.0.0.1:$1"
  fi
}

cmd_start() {
  if [ "$SECURE" = 1 ] && [ -n "${FIREHOSE_SCYLLA_SECURE_URI:-}" ]; then
    log "FIREHOSE_SCYLLA_SECURE_URI is set; using the external secure database"
    echo "FIREHOSE_SCYLLA_SECURE_URI=$FIREHOSE_SCYLLA_SECURE_URI"
    echo "FIREHOSE_SCYLLA_SECURE_DIR=${FIREHOSE_SCYLLA_SECURE_DIR:-}"
    return 0
  fi
  # An external database was configured: nothing to start.
  if [ "$SECURE" != 1 ] && [ -n "${FIREHOSE_SCYLLA_URI:-}" ]; then
    log "FIREHOSE_SCYLLA_URI is set; using the external database"
    echo "FIREHOSE_SCYLLA_URI=$FIREHOSE_SCYLLA_URI"
    return 0
  fi
  local pid; pid="$(running_pid)"
  if [ -n "$pid" ]; then
    log "already running (pid $pid)"
    print_uri "$(cat "$PORTFILE")"
    return 0
  fi
  [ -x "$JAVA" ] || die "$JAVA not found (Cassandra 5.0 needs Java 11 or 17: apt-get install openjdk-17-jre-headless)"
  cmd_fetch

  local native storage jmx
  if [ "${CASSANDRA_KEEP_DATA:-0}" = 1 ] && [ -f "$PORTSFILE" ]; then
    # A restart after `kill`: same ports, same data.
    read -r native storage jmx <"$PORTSFILE"
  else
    # Fresh run dir each time: a test node keeps no state between runs.
    rm -rf "$RUN"
    mkdir -p "$RUN"
    # Ports: CQL on 9042 unless taken; storage (gossip) and local JMX on free ports distinct from it.
    local first=9042
    [ "$SECURE" = 1 ] && first=9242
    native="$(free_port "${CASSANDRA_NATIVE_PORT:-$first}")"
    storage="$(free_port 7000 "$native")"
    jmx="$(free_port 7199 "$native" "$storage")"
    [ "$SECURE" = 1 ] && make_tls
    write_config "$native" "$storage"
    echo "$native" >"$PORTFILE"
    echo "$native $storage $jmx" >"$PORTSFILE"
  fi
  # The log of this start only (readiness is read from it).
  : >"$LOG"

  # Java 17 module flags from Cassandra's conf/jvm17-server.options.
  local exports=(java.base/jdk.internal.misc java.base/jdk.internal.ref java.base/sun.nio.ch
    java.management.rmi/com.sun.jmx.remote.internal.rmi java.rmi/sun.rmi.registry java.rmi/sun.rmi.server
    java.sql/java.sql java.base/java.lang.ref jdk.unsupported/sun.misc
    jdk.compiler/com.sun.tools.javac.file jdk.attach/sun.tools.attach)
  local opens=(java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref
    java.base/jdk.internal.reflect java.base/jdk.internal.math java.base/jdk.internal.module
    java.base/jdk.internal.util.jar jdk.management/com.sun.management.internal java.base/sun.nio.ch
    java.base/java.io java.base/java.nio java.base/java.lang.reflect jdk.compiler/com.sun.tools.javac
    java.base/java.lang java.base/java.util)
  local jvm=()
  for m in "${exports[@]}"; do jvm+=(--add-exports "$m=ALL-UNNAMED"); done
  for m in "${opens[@]}"; do jvm+=(--add-opens "$m=ALL-UNNAMED"); done
  jvm+=(-Djdk.attach.allowAttachSelf=true -Dio.netty.tryReflectionSetAccessible=true
    -Djava.net.preferIPv4Stack=true)
  # Small heap, no AlwaysPreTouch (the stock option touches the whole heap at start).
  jvm+=(-Xms"${CASSANDRA_HEAP_MIN:-512m}" -Xmx"${CASSANDRA_HEAP:-1g}" -Xss256k -XX:+UseG1GC
    -XX:+ExitOnOutOfMemoryError)
  # The jamm agent lets Cassandra measure object sizes exactly (as the stock launcher does).
  local jamm; jamm="$(ls "$LIB"/jamm-*.jar 2>/dev/null | head -n1 || true)"
  [ -n "$jamm" ] && jvm+=(-javaagent:"$jamm")
  # Launcher properties: config, storage/log dirs, foreground, local-only JMX.
  jvm+=(-Dcassandra.config="file://$CONF/cassandra.yaml"
    -Dlogback.configurationFile="file://$CONF/logback.xml"
    -Dcassandra.storagedir="$DATA" -Dcassandra.logdir="$RUN" -Dcassandra.triggers_dir="$RUN/triggers"
    -Dcassandra-foreground=yes -Dcassandra.jmx.local.port="$jmx")
  # Fast single-node start: no gossip settling, no ring delay, no superuser setup delay, no fsync.
  jvm+=(-Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.ring_delay_ms=0
    -Dcassandra.superuser_setup_delay_ms=0 -Dcassandra.skip_sync=true)

  log "starting Cassandra $CASSANDRA_VERSION (CQL 127.0.0.1:$native, storage $storage, JMX $jmx), log $LOG"
  local t0; t0="$(date +%s)"
  # In its own session (setsid) so it outlives this script and a Ctrl-C in the caller's terminal;
  # setsid execs java, so $! is java's pid.
  setsid "$JAVA" "${jvm[@]}" -cp "$CONF:$LIB/*" org.apache.cassandra.service.CassandraDaemon \
    </dev/null >"$LOG" 2>&1 &
  pid=$!
  echo "$pid" >"$PIDFILE"

  # Ready = the log says the CQL server listens AND the port accepts a TCP connection.
  local deadline=$((t0 + START_TIMEOUT))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      log "Cassandra exited during start-up; last 50 log lines:"
      tail -n 50 "$LOG" >&2
      cp "$LOG" "$LAST_LOG" 2>/dev/null || true
      rm -rf "$RUN"
      exit 1
    fi
    if grep -q "listening for CQL clients" "$LOG" && (exec 3<>"/dev/tcp/127.0.0.1/$native") 2>/dev/null; then
      # With logins, the default superuser must exist before anyone can log in.
      if [ "$SECURE" != 1 ] || grep -q "Created default superuser role" "$LOG"; then
        break
      fi
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "Cassandra not ready after ${START_TIMEOUT}s; last 50 log lines:"
      tail -n 50 "$LOG" >&2
      cmd_stop >/dev/null 2>&1 || true
      exit 1
    fi
    sleep 1
  done
  log "CQL ready after $(( $(date +%s) - t0 ))s (pid $pid)"
  print_uri "$native"
}

# ---------------------------------------------------------------------------------------------------
# stop
# ---------------------------------------------------------------------------------------------------
cmd_stop() {
  local pid; pid="$(running_pid)"
  if [ -n "$pid" ]; then
    log "stopping Cassandra (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    local i=0
    while kill -0 "$pid" 2>/dev/null && [ "$i" -lt "$STOP_TIMEOUT" ]; do sleep 1; i=$((i + 1)); done
    if kill -0 "$pid" 2>/dev/null; then
      log "still alive after ${STOP_TIMEOUT}s; SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 1
    fi
  else
    log "not running"
  fi
  # Keep the last log for post-mortems, then drop config + data.
  [ -f "$LOG" ] && cp "$LOG" "$LAST_LOG"
  rm -rf "$RUN"
}

# ---------------------------------------------------------------------------------------------------
# kill: a crash (SIGKILL), data kept
# ---------------------------------------------------------------------------------------------------
cmd_kill() {
  local pid; pid="$(running_pid)"
  [ -n "$pid" ] || die "not running"
  log "killing Cassandra (pid $pid) with SIGKILL; data kept in $RUN"
  kill -KILL "$pid"
  while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
}

# ---------------------------------------------------------------------------------------------------
# status
# ---------------------------------------------------------------------------------------------------
cmd_status() {
  if [ "$SECURE" != 1 ] && [ -n "${FIREHOSE_SCYLLA_URI:-}" ]; then
    echo "external database: FIREHOSE_SCYLLA_URI=$FIREHOSE_SCYLLA_URI"
    return 0
  fi
  local pid; pid="$(running_pid)"
  if [ -z "$pid" ]; then echo "stopped"; return 1; fi
  local port; port="$(cat "$PORTFILE")"
  local rss; rss="$(awk '/VmRSS/ {print $2 " " $3}' "/proc/$pid/status" 2>/dev/null || echo '?')"
  if grep -q "listening for CQL clients" "$LOG" 2>/dev/null; then
    echo "running: pid $pid, RSS $rss, $(print_uri "$port" | head -n1)"
  else
    echo "starting: pid $pid, RSS $rss, CQL port $port not ready yet"
  fi
}

case "${1:-}" in
  fetch) cmd_fetch ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  kill) cmd_kill ;;
  *) echo "usage: $0 fetch|start|stop|status|kill" >&2; exit 2 ;;
esac
