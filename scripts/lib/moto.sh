# shellcheck shell=bash
# Sourced by scripts/test and scripts/demo: makes `moto_server` (PyPI
# moto[server], the AWS emulator) available, installing it into a venv of
# our own when it is missing, and sets MOTO_PYTHON to a python with boto3.
moto_ensure() {
  if command -v moto_server >/dev/null 2>&1 && python3 -c 'import boto3, moto' >/dev/null 2>&1; then
    MOTO_PYTHON=python3
    return
  fi
  local venv="${CLUSTERCTL_MOTO_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/clusterctl/moto-venv}"
  if [ ! -x "$venv/bin/moto_server" ]; then
    echo "installing moto[server] into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'moto[server]==5.2.1'
  fi
  export PATH="$venv/bin:$PATH"
  MOTO_PYTHON="$venv/bin/python"
}

# moto_start: starts moto_server on a free port of 127.0.0.1 and exports
# AWS_ENDPOINT_URL and dummy credentials. Sets MOTO_PID.
moto_start() {
  local port
  port="$("$MOTO_PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
  # Canonical's Ubuntu images, which the specs' default image lookup finds.
  MOTO_AMIS_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/tests/fixtures/moto/amis.json" \
    moto_server -H 127.0.0.1 -p "$port" >/dev/null 2>&1 &
  MOTO_PID=$!
  export MOTO_PID
  export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
  export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
  local i
  for i in $(seq 1 100); do
    if "$MOTO_PYTHON" -c "import socket; socket.create_connection(('127.0.0.1', $port), 0.2)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  echo "moto_server did not start on port $port (after $i tries)" >&2
  return 1
}
