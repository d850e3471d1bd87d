#!/usr/bin/env bash
# Makes sure Postgres (127.0.0.1:5432, user postgres, trust auth) and Redis
# (127.0.0.1:6379) answer. Reuses them when they already run; otherwise installs
# them from Debian packages (when absent) and starts them. Also installs the client
# tools the tests use (psql, redis-cli) and Python's venv module.
set -euo pipefail

as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

apt_updated=""
apt_install() {
  if [[ -z "$apt_updated" ]]; then
    as_root apt-get update -qq
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 60); do
    port_open "$1" && return 0
    sleep 0.5
  done
  echo "nothing answers on 127.0.0.1:$1" >&2
  return 1
}

# ---- Postgres
if ! port_open 5432; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    echo "installing PostgreSQL from Debian packages..."
    apt_install postgresql postgresql-client
  fi
  version="$(ls /etc/postgresql | sort -V | tail -n 1)"
  hba="/etc/postgresql/$version/main/pg_hba.conf"
  # Local development and CI: trust connections from this machine only.
  if ! grep -qE '^host\s+all\s+all\s+127\.0\.0\.1/32\s+trust' "$hba"; then
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  echo "starting PostgreSQL $version..."
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432
fi
command -v psql >/dev/null || apt_install postgresql-client

# ---- Redis
if ! port_open 6379; then
  if ! command -v redis-server >/dev/null; then
    echo "installing Redis from Debian packages..."
    apt_install redis-server
  fi
  echo "starting Redis..."
  mkdir -p /tmp/idic-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir /tmp/idic-redis \
    --logfile /tmp/idic-redis/redis.log
  wait_port 6379
fi
command -v redis-cli >/dev/null || apt_install redis-tools

# ---- Python venv (for the outside-client test)
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt_install python3-venv
fi

psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'SELECT 1' >/dev/null
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
echo "Postgres and Redis are ready."
