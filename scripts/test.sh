#!/usr/bin/env bash
# The one test command (README: "Test it").
#
# Installs and starts what the tests need, runs every test, stops what it
# started, also on failure:
#   - PostgreSQL: the server on 127.0.0.1:5432 if it answers, otherwise a
#     throwaway cluster (initdb/pg_ctl) under target/pg on a free port;
#     each test creates and drops its own database;
#   - tansu (Kafka-compatible broker) for the end-to-end and fault tests:
#     installed once into ~/.cache/pci-scope-guard/tools (cargo install,
#     ~12 min), reused after;
#   - unit tests, in-process tests on librdkafka's mock cluster, PostgreSQL
#     tests, the end-to-end test (four processes, tansu, PostgreSQL) and the
#     fault tests (broker, database and process failures, rebalances).
#
#   - moto (an S3-compatible server with Object Lock, from PyPI) for the
#     evidence object-storage tests: installed once into a virtualenv in
#     the tool cache;
#   - TimescaleDB: built from ../shared/vendor (PSG_VENDOR_DIR) into the
#     local PostgreSQL when missing (~3 min, once), and a cluster of its own
#     under target/pg-timescale with it preloaded; the storage, evidence and
#     end-to-end tests run on it too;
#
# Environment: TANSU_BIN (use this tansu), MOTO_SERVER_BIN (use this moto_server), TEST_DATABASE_ADMIN_URL (use this
# server), TEST_TIMESCALE_ADMIN_URL (use this server with TimescaleDB preloaded), FORCE_THROWAWAY_PG=1 (start a throwaway cluster even when 5432
# answers), SCOPE_GUARD_TOOLS (tool cache directory), PSG_SKIP_TLS_TESTS=1
# (skip the PostgreSQL TLS tests when the server serves no TLS; set for the
# throwaway cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
TANSU_VERSION=0.6.0
# memory storage for most tests; SQLite (libsql) for the broker-restart test
TANSU_FEATURES=dynostore,libsql
TOOLS="${SCOPE_GUARD_TOOLS:-$HOME/.cache/pci-scope-guard/tools}"

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

PG_STARTED=""
TS_STARTED=""
cleanup() {
  if [ -n "$PG_STARTED" ]; then
    step "stopping the throwaway PostgreSQL cluster"
    as_pg "$PG_BIN/pg_ctl" -D "$PG_STARTED" -m fast -w stop >/dev/null 2>&1 || true
  fi
  if [ -n "$TS_STARTED" ]; then
    step "stopping the TimescaleDB cluster"
    as_pg "$TS_BIN/pg_ctl" -D "$TS_STARTED" -m fast -w stop >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

command -v cargo >/dev/null || die "cargo is missing: install the Rust toolchain (https://rustup.rs)"
command -v cc >/dev/null || command -v gcc >/dev/null || die "a C compiler is missing (librdkafka is built from source): install gcc"

# --- PostgreSQL -------------------------------------------------------------
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo "$1"
}
# start_cluster BIN DIR PORT [server options...]: initdb DIR/data and start
# it on 127.0.0.1:PORT (socket and log in DIR).
start_cluster() {
  local bin=$1 dir=$2 port=$3
  shift 3
  rm -rf "$dir" && mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown -R postgres "$dir"
  as_pg "$bin/initdb" -D "$dir/data" -U postgres --auth=trust >/dev/null
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-p $port -c listen_addresses=127.0.0.1 -k $dir $*" start >/dev/null
}

if [ -n "${TEST_DATABASE_ADMIN_URL:-}" ]; then
  step "PostgreSQL: using TEST_DATABASE_ADMIN_URL"
elif [ -z "${FORCE_THROWAWAY_PG:-}" ] && port_open 5432; then
  step "PostgreSQL: using the server on 127.0.0.1:5432"
  export TEST_DATABASE_ADMIN_URL="postgres://postgres@127.0.0.1:5432/postgres"
else
  step "PostgreSQL: starting a throwaway cluster (nothing on 127.0.0.1:5432, or FORCE_THROWAWAY_PG)"
  PG_BIN=""
  if command -v pg_config >/dev/null && [ -x "$(pg_config --bindir)/initdb" ]; then PG_BIN=$(pg_config --bindir); fi
  [ -z "$PG_BIN" ] && PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
      step "installing PostgreSQL (apt-get)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null
      PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    else
      die "PostgreSQL is not installed and cannot be installed here: install it, or set TEST_DATABASE_ADMIN_URL"
    fi
  fi
  PGDATA="$ROOT/target/pg/data"
  PGPORT=$(free_port 55432)
  start_cluster "$PG_BIN" "$ROOT/target/pg" "$PGPORT"
  PG_STARTED="$PGDATA"
  export TEST_DATABASE_ADMIN_URL="postgres://postgres@127.0.0.1:$PGPORT/postgres"
  echo "started PostgreSQL on 127.0.0.1:$PGPORT (data in $PGDATA)"
  # It serves no TLS: the two PostgreSQL TLS tests of tests/security.rs are
  # skipped, explicitly (they fail without this).
  export PSG_SKIP_TLS_TESTS=1
  echo "note: the throwaway cluster serves no TLS: the PostgreSQL TLS tests are SKIPPED (PSG_SKIP_TLS_TESTS=1)"
fi

# --- TimescaleDB --------------------------------------------------------------
# Built once from the vendored source into the local PostgreSQL when its
# library is missing (no package registry here ships it); then a cluster of
# our own with it preloaded. The server on 5432 keeps it unloaded: the tests
# cover both (installed-but-not-preloaded must fall back to native partitions).
TS_VERSION=2.28.3
if [ -n "${TEST_TIMESCALE_ADMIN_URL:-}" ]; then
  step "TimescaleDB: using TEST_TIMESCALE_ADMIN_URL"
else
  PG_CONFIG=$(command -v pg_config || true)
  TS_PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
  [ -n "$TS_PG_BIN" ] && [ -x "$TS_PG_BIN/pg_config" ] && PG_CONFIG="$TS_PG_BIN/pg_config"
  [ -n "$PG_CONFIG" ] || die "pg_config is missing: install PostgreSQL's server development files (postgresql-server-dev-15)"
  TS_LIB="$("$PG_CONFIG" --pkglibdir)/timescaledb-$TS_VERSION.so"
  if [ -f "$TS_LIB" ]; then
    step "TimescaleDB: $TS_VERSION is installed ($TS_LIB)"
  else
    step "TimescaleDB: building $TS_VERSION from the vendored source (one time, about 3 minutes)"
    TS_TARBALL=""
    for d in "${PSG_VENDOR_DIR:-}" "$ROOT/../shared/vendor" /work/shared/vendor; do
      if [ -n "$d" ] && [ -f "$d/timescaledb-$TS_VERSION.tar.gz" ]; then TS_TARBALL="$d/timescaledb-$TS_VERSION.tar.gz"; break; fi
    done
    [ -n "$TS_TARBALL" ] || die "timescaledb-$TS_VERSION.tar.gz not found: set PSG_VENDOR_DIR to the directory that holds it"
    echo "ec2f7de0ba53a473c01e0a57e09053898c6b1f7487228caff0f1d31c8cb2dedb  $TS_TARBALL" | sha256sum -c --quiet \
      || die "$TS_TARBALL does not have the SHA-256 of the upstream 2.28.3 archive"
    PG_MAJOR=$("$PG_CONFIG" --version | sed -E 's/[^0-9]*([0-9]+).*/\1/')
    if ! command -v cmake >/dev/null || [ ! -d "/usr/include/postgresql/$PG_MAJOR/server" ]; then
      if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        step "installing cmake and postgresql-server-dev-$PG_MAJOR (apt-get)"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q cmake "postgresql-server-dev-$PG_MAJOR" >/dev/null
      else
        die "building TimescaleDB needs cmake and postgresql-server-dev-$PG_MAJOR: install them (or set TEST_TIMESCALE_ADMIN_URL)"
      fi
    fi
    rm -rf "$ROOT/target/timescaledb" && mkdir -p "$ROOT/target/timescaledb"
    tar xzf "$TS_TARBALL" -C "$ROOT/target/timescaledb"
    (
      cd "$ROOT/target/timescaledb/timescaledb-$TS_VERSION"
      ./bootstrap -DPG_CONFIG="$PG_CONFIG" -DREGRESS_CHECKS=OFF -DTAP_CHECKS=OFF -DWARNINGS_AS_ERRORS=OFF \
        -DCMAKE_BUILD_TYPE=Release >"$ROOT/target/timescaledb/bootstrap.log" 2>&1 \
        || { tail -n 30 "$ROOT/target/timescaledb/bootstrap.log"; exit 1; }
      make -C build -j2 >"$ROOT/target/timescaledb/make.log" 2>&1 || { tail -n 30 "$ROOT/target/timescaledb/make.log"; exit 1; }
      make -C build install >>"$ROOT/target/timescaledb/make.log" 2>&1
    ) || die "building TimescaleDB failed (logs in target/timescaledb/)"
    [ -f "$TS_LIB" ] || die "TimescaleDB was built but $TS_LIB is missing"
    echo "installed $TS_LIB"
  fi
  TS_BIN=$(dirname "$PG_CONFIG")
  [ -x "$TS_BIN/initdb" ] || TS_BIN=$("$PG_CONFIG" --bindir)
  TSDATA="$ROOT/target/pg-timescale/data"
  TSPORT=$(free_port 55433)
  start_cluster "$TS_BIN" "$ROOT/target/pg-timescale" "$TSPORT" \
    -c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off -c max_connections=200
  TS_STARTED="$TSDATA"
  export TEST_TIMESCALE_ADMIN_URL="postgres://postgres@127.0.0.1:$TSPORT/postgres"
  echo "started PostgreSQL with TimescaleDB $TS_VERSION preloaded on 127.0.0.1:$TSPORT (data in $TSDATA)"
fi

# --- tansu ------------------------------------------------------------------
if [ -n "${TANSU_BIN:-}" ]; then
  [ -x "$TANSU_BIN" ] || die "TANSU_BIN=$TANSU_BIN is not executable"
  step "tansu: using $TANSU_BIN"
elif [ -x "$TOOLS/bin/tansu" ] && "$TOOLS/bin/tansu" --version 2>/dev/null | grep -q "$TANSU_VERSION" \
    && [ "$(cat "$TOOLS/tansu.features" 2>/dev/null)" = "$TANSU_FEATURES" ]; then
  step "tansu: using $TOOLS/bin/tansu ($TANSU_VERSION, $TANSU_FEATURES, cached)"
  export TANSU_BIN="$TOOLS/bin/tansu"
else
  step "tansu: installing $TANSU_VERSION ($TANSU_FEATURES) into $TOOLS (one time, about 12 minutes)"
  cargo install tansu --version "$TANSU_VERSION" --locked --features "$TANSU_FEATURES" --root "$TOOLS" --force
  echo "$TANSU_FEATURES" > "$TOOLS/tansu.features"
  export TANSU_BIN="$TOOLS/bin/tansu"
fi

# --- moto (S3 with Object Lock) ----------------------------------------------
MOTO_VERSION=5.2.6
MOTO_DIR="$TOOLS/moto"
if [ -n "${MOTO_SERVER_BIN:-}" ]; then
  [ -x "$MOTO_SERVER_BIN" ] || die "MOTO_SERVER_BIN=$MOTO_SERVER_BIN is not executable"
  step "moto: using $MOTO_SERVER_BIN"
elif [ -x "$MOTO_DIR/bin/moto_server" ] && [ "$(cat "$MOTO_DIR/psg.version" 2>/dev/null)" = "$MOTO_VERSION" ]; then
  step "moto: using $MOTO_DIR/bin/moto_server ($MOTO_VERSION, cached)"
  export MOTO_SERVER_BIN="$MOTO_DIR/bin/moto_server"
else
  step "moto: installing $MOTO_VERSION (S3 server with Object Lock) into $MOTO_DIR (one time, under a minute)"
  command -v python3 >/dev/null || die "python3 is missing: the S3 tests run moto's server (PyPI); install Python 3"
  rm -rf "$MOTO_DIR"
  python3 -m venv "$MOTO_DIR" || die "python3 -m venv failed: install Python's venv module (Debian: python3-venv)"
  "$MOTO_DIR/bin/pip" install -q --disable-pip-version-check "moto[server]==$MOTO_VERSION" || die "installing moto from PyPI failed"
  echo "$MOTO_VERSION" > "$MOTO_DIR/psg.version"
  export MOTO_SERVER_BIN="$MOTO_DIR/bin/moto_server"
fi

# --- tests ------------------------------------------------------------------
step "unit, mock-cluster and PostgreSQL tests (every crate)"
cargo test --workspace --locked --exclude pci-scope-guard

step "end-to-end and fault tests: pci-scope-guard processes, tansu broker, PostgreSQL"
cargo test --locked -p pci-scope-guard -- --nocapture --test-threads=1

step "on TimescaleDB: the storage, evidence and end-to-end tests again (hypertables)"
TEST_DATABASE_ADMIN_URL="$TEST_TIMESCALE_ADMIN_URL" cargo test --locked -p psg-store -p psg-evidence
TEST_DATABASE_ADMIN_URL="$TEST_TIMESCALE_ADMIN_URL" cargo test --locked -p pci-scope-guard --test e2e --test report_as_of -- --nocapture

step "all tests passed"
