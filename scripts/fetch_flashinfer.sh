#!/usr/bin/env bash
# Fetches FlashInfer's header-only C++ library (and the CCCL and CUTLASS headers it was built
# against) from the flashinfer-python wheel into the tandem cache:
#   ${TANDEM_CACHE:-$HOME/.cache/tandem}/flashinfer-0.7.2.post1/flashinfer/data/{include,cccl,cutlass/...}
# Only headers are unpacked: the wheel is never installed and its sources are never built (its
# csrc/ needs tvm-ffi; tandem calls the templates directly, see kernels/attention/).
# Idempotent: does nothing when the headers are already there. The last line of stdout is the path
# that cmake/FlashInfer.cmake expects (TANDEM_FLASHINFER_DIR).
set -euo pipefail

PACKAGE="flashinfer-python"
VERSION="0.7.2.post1"
WHEEL="flashinfer_python-${VERSION}-py3-none-any.whl"
WHEEL_SHA256="bfdc18b9e1e4d8d0730fe4343dc0e284cd0c160086de80f99888bc4867922d49"
MEMBERS=(
  flashinfer/data/include/
  flashinfer/data/cccl/
  flashinfer/data/cutlass/include/
  flashinfer/data/cutlass/tools/util/include/
)

CACHE="${TANDEM_CACHE:-$HOME/.cache/tandem}"
WHEELS="${CACHE}/wheels"
OUT="${CACHE}/flashinfer-${VERSION}"
STAMP="${OUT}/.tandem-unpacked"  # holds the wheel's sha256 once every member is unpacked

if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${WHEEL_SHA256}" ]]; then
  echo "${OUT}"
  exit 0
fi

# shellcheck source=wheel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wheel_lib.sh"
fetch_wheel "${PACKAGE}" "${VERSION}" "${WHEEL}" "${WHEEL_SHA256}"

# Unpack into a temporary directory next to the destination, then rename, so an interrupted run
# never leaves a partial tree behind.
TMP="${OUT}.tmp.$$"
trap 'rm -rf "${TMP}"' EXIT
rm -rf "${TMP}"
mkdir -p "${TMP}"
echo "unpacking FlashInfer headers into ${OUT}" >&2
python3 - "${WHEELS}/${WHEEL}" "${TMP}" "${MEMBERS[@]}" <<'PY'
import os, shutil, sys, zipfile
wheel, out, prefixes = sys.argv[1], sys.argv[2], sys.argv[3:]
counts = dict.fromkeys(prefixes, 0)
root = os.path.realpath(out)
with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        prefix = next((p for p in prefixes if info.filename.startswith(p)), None)
        if prefix is None or info.is_dir():
            continue
        dest = os.path.realpath(os.path.join(out, info.filename))
        if not dest.startswith(root + os.sep):
            sys.exit(f"error: wheel member {info.filename!r} points outside the destination")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(info) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        counts[prefix] += 1
missing = [p for p, n in counts.items() if n == 0]
if missing:
    sys.exit(f"error: the wheel has no files under {', '.join(missing)}")
for p, n in counts.items():
    print(f"  {p}: {n} files", file=sys.stderr)
PY
echo "${WHEEL_SHA256}" > "${TMP}/.tandem-unpacked"
rm -rf "${OUT}"
mv "${TMP}" "${OUT}"
trap - EXIT
echo "${OUT}"
