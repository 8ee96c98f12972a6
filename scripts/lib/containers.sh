#!/usr/bin/env bash
# shellcheck shell=bash
# Private container runtimes for node cleanup's tests, and the compiler the
# build needs (containerd-client generates its gRPC code with protoc).
# Sourced by scripts/test, scripts/demo and scripts/bench; run by the tests
# themselves:
#
#   protoc_ensure            install Debian's protobuf-compiler when missing
#   containers_ensure        install Debian's docker.io and containerd
#   docker_start DIR         dockerd with its socket, data and exec roots in
#                            DIR (vfs storage, no iptables, no bridge)
#   docker_stop DIR
#   containerd_start DIR     containerd with its own config, root, state and
#                            socket in DIR (the CRI plugin off)
#   containerd_stop DIR
#   watch DIR PID            stop both and remove DIR once PID has ended

protoc_ensure() {
  if ! command -v protoc >/dev/null 2>&1; then
    echo "containers: installing protobuf-compiler from Debian (the build needs protoc)" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q protobuf-compiler >/dev/null
  fi
}

containers_ensure() {
  local need=()
  command -v dockerd >/dev/null 2>&1 || need+=(docker.io)
  command -v containerd >/dev/null 2>&1 || need+=(containerd)
  command -v gcc >/dev/null 2>&1 || need+=(gcc libc6-dev)
  if ((${#need[@]})); then
    echo "containers: installing ${need[*]} from Debian" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q "${need[@]}" >/dev/null
  fi
}

# wait_for CMD...: retries CMD for up to 60 s.
containers_wait_for() {
  for _ in $(seq 1 240); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.25
  done
  return 1
}

docker_start() {
  local dir=$1
  mkdir -p "$dir/root" "$dir/exec"
  dockerd --host "unix://$dir/docker.sock" --data-root "$dir/root" --exec-root "$dir/exec" \
    --pidfile "$dir/docker.pid" --storage-driver=vfs --iptables=false --bridge=none \
    >"$dir/dockerd.log" 2>&1 &
  if ! containers_wait_for curl -fs --unix-socket "$dir/docker.sock" http://docker/_ping; then
    echo "containers: dockerd did not answer within 60 s; see $dir/dockerd.log" >&2
    return 1
  fi
}

docker_stop() {
  local dir=$1 pid
  [ -f "$dir/docker.pid" ] || return 0
  pid=$(cat "$dir/docker.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
}

containerd_start() {
  local dir=$1
  mkdir -p "$dir/root" "$dir/state"
  cat >"$dir/config.toml" <<CONF
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
CONF
  containerd --config "$dir/config.toml" >"$dir/containerd.log" 2>&1 &
  echo $! >"$dir/containerd.pid"
  if ! containers_wait_for ctr --address "$dir/containerd.sock" version; then
    echo "containers: containerd did not answer within 60 s; see $dir/containerd.log" >&2
    return 1
  fi
}

containerd_stop() {
  local dir=$1 pid
  [ -f "$dir/containerd.pid" ] || return 0
  pid=$(cat "$dir/containerd.pid")
  kill "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  kill -9 "$pid" 2>/dev/null || true
}

containers_watch() {
  local dir=$1 pid=$2
  (
    while kill -0 "$pid" 2>/dev/null; do sleep 1; done
    docker_stop "$dir"
    containerd_stop "$dir"
    rm -rf "$dir"
  ) </dev/null >/dev/null 2>&1 &
  disown
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  set -euo pipefail
  case "${1:-}" in
    docker-start) containers_ensure && docker_start "$2" ;;
    docker-stop) docker_stop "$2" ;;
    containerd-start) containers_ensure && containerd_start "$2" ;;
    containerd-stop) containerd_stop "$2" ;;
    watch) containers_watch "$2" "$3" ;;
    *) echo "usage: $0 docker-start|docker-stop|containerd-start|containerd-stop DIR | watch DIR PID" >&2; exit 2 ;;
  esac
fi
