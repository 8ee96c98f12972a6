#!/usr/bin/env bash
# shellcheck shell=bash
# A private RabbitMQ broker with the management plugin, on loopback, for the
# queue autoscaler's tests. Sourced by scripts/test (rabbitmq_ensure) and run
# by the tests themselves (scripts/lib/rabbitmq.sh start DIR / stop DIR).
#
#   rabbitmq_ensure          install Debian's rabbitmq-server when missing
#   rabbitmq_start DIR       start a broker whose data, logs, config and
#                            Erlang cookie live in DIR; writes DIR/env with
#                            its AMQP and management ports and credentials;
#                            DIR/extra.conf, when present, is appended to
#                            its rabbitmq.conf
#   rabbitmq_stop DIR        stop it
#   rabbitmq_launch DIR      start it again, on the same ports
#   rabbitmq_watch DIR PID   stop it and remove DIR once PID has ended
#
# The Debian wrapper in /usr/sbin switches to the rabbitmq user; the tests
# run the scripts under /usr/lib/rabbitmq/bin directly, as themselves.

RABBITMQ_BIN=/usr/lib/rabbitmq/bin

rabbitmq_ensure() {
  if [ ! -x "$RABBITMQ_BIN/rabbitmq-server" ]; then
    echo "rabbitmq: installing rabbitmq-server from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q rabbitmq-server >/dev/null
  fi
}

# free_port: a TCP port of 127.0.0.1 nobody listens on.
rabbitmq_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

rabbitmq_start() {
  local dir=$1
  mkdir -p "$dir/mnesia" "$dir/log" "$dir/home"
  local amqp mgmt dist epmd
  amqp=$(rabbitmq_free_port)
  mgmt=$(rabbitmq_free_port)
  dist=$(rabbitmq_free_port)
  epmd=$(rabbitmq_free_port)
  cat >"$dir/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$amqp
management.tcp.ip = 127.0.0.1
management.tcp.port = $mgmt
default_user = clusterctl
default_pass = test-only-secret
loopback_users = none
collect_statistics_interval = 1000
management.rates_mode = basic
CONF
  # A test's own settings (TLS listeners, a slower statistics interval)
  # replace the defaults above with the same key.
  if [ -s "$dir/extra.conf" ]; then
    local key
    while IFS= read -r key; do
      grep -v -F "$key =" "$dir/rabbitmq.conf" >"$dir/rabbitmq.conf.new" || true
      mv "$dir/rabbitmq.conf.new" "$dir/rabbitmq.conf"
    done < <(sed -n 's/^\([a-z_.0-9]*\) *=.*/\1/p' "$dir/extra.conf")
    cat "$dir/extra.conf" >>"$dir/rabbitmq.conf"
  fi
  echo '[rabbitmq_management].' >"$dir/enabled_plugins"
  head -c 20 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/home/.erlang.cookie"
  chmod 0400 "$dir/home/.erlang.cookie"
  cat >"$dir/env" <<ENV
export HOME=$dir/home
export RABBITMQ_NODENAME=clusterctl-$$@localhost
export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf
export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
export RABBITMQ_MNESIA_BASE=$dir/mnesia
export RABBITMQ_LOG_BASE=$dir/log
export RABBITMQ_DIST_PORT=$dist
export ERL_EPMD_ADDRESS=127.0.0.1
export ERL_EPMD_PORT=$epmd
export RABBITMQ_AMQP_PORT=$amqp
export RABBITMQ_MANAGEMENT_PORT=$mgmt
export RABBITMQ_USER=clusterctl
export RABBITMQ_PASSWORD=test-only-secret
ENV
  rabbitmq_launch "$dir"
}

# rabbitmq_launch DIR: starts the broker configured in DIR (again, on the
# same ports after rabbitmq_stop) and waits for its management API.
rabbitmq_launch() {
  local dir=$1 mgmt
  # shellcheck disable=SC1091
  mgmt=$(. "$dir/env" && echo "$RABBITMQ_MANAGEMENT_PORT")
  # shellcheck disable=SC1091
  (. "$dir/env" && exec "$RABBITMQ_BIN/rabbitmq-server" >>"$dir/log/stdout" 2>&1) &
  echo $! >"$dir/pid"
  for _ in $(seq 1 240); do
    if curl -fs -u clusterctl:test-only-secret "http://127.0.0.1:$mgmt/api/overview" >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.5
  done
  echo "rabbitmq: the management API did not answer within 120 s; see $dir/log" >&2
  return 1
}

rabbitmq_stop() {
  local dir=$1
  # shellcheck disable=SC1091
  (. "$dir/env" && "$RABBITMQ_BIN/rabbitmqctl" stop >/dev/null 2>&1) || true
  if [ -f "$dir/pid" ]; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true
  fi
  # The Erlang VM outlives the wrapper script when rabbitmqctl could not
  # reach it: end every VM whose home is this broker's.
  pkill -f -- "-home $dir/home" 2>/dev/null || true
  # shellcheck disable=SC1091
  (. "$dir/env" && epmd -kill >/dev/null 2>&1) || true
}

# rabbitmq_watch DIR PID: in the background, stops the broker of DIR and
# removes DIR once process PID has ended (a broker shared by one test
# binary outlives its tests; it must not outlive the binary).
rabbitmq_watch() {
  local dir=$1 pid=$2
  (
    while kill -0 "$pid" 2>/dev/null; do sleep 1; done
    rabbitmq_stop "$dir"
    rm -rf "$dir"
  ) </dev/null >/dev/null 2>&1 &
  disown
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    start) rabbitmq_ensure && rabbitmq_start "$2" ;;
    stop) rabbitmq_stop "$2" ;;
    relaunch) rabbitmq_launch "$2" ;;
    watch) rabbitmq_watch "$2" "$3" ;;
    *) echo "usage: $0 start|stop|relaunch DIR | watch DIR PID" >&2; exit 2 ;;
  esac
fi
