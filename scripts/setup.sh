#!/usr/bin/env bash
# Installs everything tandem needs on a fresh Debian 12 / Ubuntu 24.04 machine and builds it.
# Idempotent: packages, the Python venv and the model are only fetched when missing, and the
# build is incremental. Run as root or with sudo available.
#
#   scripts/setup.sh            install + build (build dir: $TANDEM_BUILD_DIR or ./build)
#   scripts/setup.sh --no-build install only
#   scripts/setup.sh --no-venv  install + build without the Python test tools (container images)
# TANDEM_CUDA=ON|OFF|AUTO (default AUTO) chooses the CUDA backend.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${TANDEM_BUILD_DIR:-$ROOT/build}"
VENV="${TANDEM_VENV:-$ROOT/.venv}"
DO_BUILD=1
DO_VENV=1
for arg in "$@"; do
  case "$arg" in
    --no-build) DO_BUILD=0 ;;
    --no-venv) DO_VENV=0 ;;
    *) echo "error: unknown argument '$arg' (expected --no-build or --no-venv)" >&2; exit 2 ;;
  esac
done

log() { printf '\033[1m[setup]\033[0m %s\n' "$*" >&2; }

# The distribution packages: one list, shared with docker/Dockerfile (which runs this script).
PACKAGES_FILE="$ROOT/scripts/packages-debian.txt"
read_packages() {
  local line
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%%#*}"
    line="${line//[[:space:]]/}"
    [[ -n "$line" ]] && APT_PACKAGES+=("$line")
  done < "$PACKAGES_FILE"
  if ((${#APT_PACKAGES[@]} == 0)); then
    echo "error: $PACKAGES_FILE lists no packages" >&2
    exit 1
  fi
}
APT_PACKAGES=()
read_packages

install_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]} == 0)); then
    log "apt packages: all ${#APT_PACKAGES[@]} present"
    return
  fi
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  log "apt packages: installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

find_cuda() {
  if ! command -v nvcc >/dev/null 2>&1 && [[ -x /usr/local/cuda/bin/nvcc ]]; then
    export PATH="/usr/local/cuda/bin:$PATH"
  fi
  if command -v nvcc >/dev/null 2>&1; then
    log "CUDA: $(nvcc --version | tail -1)"
  else
    log "CUDA: nvcc not found; building the CPU backend only (install the CUDA Toolkit 13 for GPU kernels)"
  fi
}

setup_venv() {
  local req="$ROOT/scripts/requirements-test.txt"
  local stamp="$VENV/.tandem-requirements.sha256"
  local want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    log "python venv: up to date ($VENV)"
    return
  fi
  log "python venv: installing test tools into $VENV"
  [[ -x "$VENV/bin/python" ]] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q -r "$req"
  echo "$want" > "$stamp"
}

build() {
  local werror=OFF
  [[ "${CI:-}" == "true" ]] && werror=ON
  if [[ ! -f "$BUILD_DIR/build.ninja" ]]; then
    log "configuring $BUILD_DIR"
    cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DTANDEM_WERROR="$werror" \
      -DTANDEM_CUDA="${TANDEM_CUDA:-AUTO}" >/dev/null
  else
    cmake "$BUILD_DIR" -DTANDEM_WERROR="$werror" -DTANDEM_CUDA="${TANDEM_CUDA:-AUTO}" >/dev/null
  fi
  log "building (jobs: $(nproc))"
  cmake --build "$BUILD_DIR" -j"$(nproc)"
  # The libFuzzer targets (fuzz/) need clang; ctest runs them when they are built.
  if command -v clang++ >/dev/null 2>&1; then
    if [[ ! -f "$BUILD_DIR/fuzz/build.ninja" ]]; then
      log "configuring the fuzz targets in $BUILD_DIR/fuzz (clang)"
      CXX=clang++ cmake -S "$ROOT/fuzz" -B "$BUILD_DIR/fuzz" -G Ninja -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null
    fi
    cmake --build "$BUILD_DIR/fuzz" -j"$(nproc)"
  fi
}

install_packages
find_cuda
if ((DO_VENV)); then setup_venv; fi
"$ROOT/scripts/fetch_model.sh" >/dev/null
# The CUDA build's attention kernels use FlashInfer's headers (pinned wheel, hash-checked, unpacked
# into the tandem cache; never installed).
if [[ "${TANDEM_CUDA:-AUTO}" != "OFF" ]] && command -v nvcc >/dev/null 2>&1; then
  "$ROOT/scripts/fetch_flashinfer.sh" >/dev/null
  # UCX 1.22 with its CUDA transports (libucx-cu13 wheel, pinned and hash-checked, unpacked into the
  # tandem cache; cmake/Ucx.cmake links it).
  "$ROOT/scripts/fetch_ucx.sh" >/dev/null
fi
if ((DO_BUILD)); then build; fi
log "done"
