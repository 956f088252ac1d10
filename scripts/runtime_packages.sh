#!/usr/bin/env bash
# Prints the distribution packages a built binary needs at run time, one per line: the packages
# owning the shared libraries it loads (ldd, then dpkg -S). docker/Dockerfile's runtime stage
# installs exactly these, so the image carries no compiler or -dev package and no second package
# list exists beside scripts/packages-debian.txt. Libraries no package owns (UCX from the wheel in
# the tandem cache, the CUDA driver the container runtime mounts) are named on stderr and skipped.
#   scripts/runtime_packages.sh build/bin/tandem > runtime-packages.txt
set -euo pipefail
if (($# != 1)) || [[ ! -x "$1" ]]; then
  echo "usage: $0 BINARY (expected an executable file, found '${1:-}')" >&2
  exit 2
fi
declare -A packages=()
while read -r lib; do
  owner="$(dpkg -S "$(readlink -f "$lib")" 2>/dev/null | head -1 | cut -d: -f1 || true)"
  [[ -z "$owner" ]] && owner="$(dpkg -S "$lib" 2>/dev/null | head -1 | cut -d: -f1 || true)"
  if [[ -z "$owner" ]]; then
    echo "runtime_packages: $lib belongs to no package (shipped beside the binary or mounted)" >&2
    continue
  fi
  packages["$owner"]=1
done < <(ldd "$1" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
if ((${#packages[@]} == 0)); then
  echo "error: no package owns any library of $1 (is this a dpkg-based system?)" >&2
  exit 1
fi
printf '%s\n' "${!packages[@]}" | sort
