#!/usr/bin/env bash
# Installs PostgreSQL 15 from Debian, builds pgvector from Debian's own source package (bookworm has
# no binary package), and starts a server on 127.0.0.1:5432 with a superuser face/face.
# The Debian mirror is read from this machine's apt sources: no registry host is written here.
set -euo pipefail
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
export DEBIAN_FRONTEND=noninteractive
PG=15

if ! command -v /usr/lib/postgresql/$PG/bin/postgres >/dev/null || [ ! -d /usr/include/postgresql/$PG/server ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq postgresql-$PG postgresql-server-dev-$PG build-essential dpkg-dev >/dev/null
fi

if [ ! -f "/usr/share/postgresql/$PG/extension/vector.control" ]; then
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$mirror" ] || mirror=$(awk '/^deb / {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
  [ -n "$mirror" ] || { echo "no Debian mirror found in the apt sources" >&2; exit 1; }
  work=$(mktemp -d)
  mkdir -p "$work/apt/lists/partial" "$work/src"
  echo "deb-src [trusted=yes] $mirror trixie main" > "$work/apt/sources.list"
  apt_opts=(-o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=-" -o "Dir::State::Lists=$work/apt/lists" -o "APT::Sandbox::User=root")
  $SUDO apt-get "${apt_opts[@]}" update -qq
  (cd "$work/src" && $SUDO apt-get "${apt_opts[@]}" source --download-only -qq pgvector >/dev/null && dpkg-source -x --no-check ./*.dsc pgvector >/dev/null)
  (cd "$work/src/pgvector" && make -s with_llvm=no PG_CONFIG=/usr/lib/postgresql/$PG/bin/pg_config && $SUDO make -s install with_llvm=no PG_CONFIG=/usr/lib/postgresql/$PG/bin/pg_config)
  rm -rf "$work"
fi

if ! pg_isready -h 127.0.0.1 -p 5432 -q 2>/dev/null; then
  data=/tmp/face-ci-pgdata
  if [ ! -f "$data/PG_VERSION" ]; then
    $SUDO rm -rf "$data"; $SUDO mkdir -p "$data"; $SUDO chown postgres:postgres "$data"
    as_postgres /usr/lib/postgresql/$PG/bin/initdb -D "$data" -A trust -U postgres >/dev/null
  fi
  as_postgres /usr/lib/postgresql/$PG/bin/pg_ctl -D "$data" -l /tmp/face-ci-postgres.log \
    -o "-c listen_addresses=127.0.0.1 -c port=5432 -c unix_socket_directories=/tmp -c max_connections=300 -c fsync=off" -w start >/dev/null
fi
psql -h 127.0.0.1 -U postgres -d postgres -qtAc \
  "DO \$\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'face') THEN CREATE ROLE face LOGIN SUPERUSER PASSWORD 'face'; END IF; END \$\$;"
psql -h 127.0.0.1 -U face -d postgres -qtAc "CREATE EXTENSION IF NOT EXISTS vector; SELECT extversion FROM pg_extension WHERE extname = 'vector';"
