#!/bin/bash
# docker/run-docker.sh EXPORT_DIR BOARD OUT_DIR [options]: build a bitstream in the fracskip image, with the
# Xilinx tools mounted from the host, following FINN's run-docker.sh habits: --init, the host's user id,
# no interactive flags (safe in CI), the tools at the same path inside as outside.
set -euo pipefail
die() { echo "run-docker.sh: error: $*" >&2; exit 2; }
[ $# -ge 3 ] || die "usage: docker/run-docker.sh EXPORT_DIR BOARD OUT_DIR [fracskip build options]"
: "${FINN_XILINX_PATH:?set FINN_XILINX_PATH to your Xilinx install, e.g. /tools/Xilinx}"
: "${FINN_XILINX_VERSION:?set FINN_XILINX_VERSION, e.g. 2024.2}"
# docker -v creates a missing host folder (empty, owned by root): a mistyped path must stop here
[ -f "$1/manifest.json" ] || die "$1 is not an export folder (no manifest.json): pass a folder of \`fracskip export\`"
[ -d "$FINN_XILINX_PATH" ] || die "FINN_XILINX_PATH=$FINN_XILINX_PATH is not a folder: point it at your Xilinx install"
if [ -n "${PLATFORM_REPO_PATHS:-}" ] && [ ! -d "$PLATFORM_REPO_PATHS" ]; then
  die "PLATFORM_REPO_PATHS=$PLATFORM_REPO_PATHS is not a folder: point it at your Vitis platforms"
fi
IMAGE=${FRACSKIP_IMAGE:-fracskip:latest}
export_dir=$(realpath "$1"); board=$2; out=$(realpath -m "$3"); shift 3
mkdir -p "$(dirname "$out")"
args=(--rm --init -u "$(id -u):$(id -g)" -e HOME=/tmp
      -v "$FINN_XILINX_PATH:$FINN_XILINX_PATH:ro" -e FINN_XILINX_PATH -e FINN_XILINX_VERSION
      -v "$export_dir:/work/export:ro" -v "$(dirname "$out"):/work/out")
if [ -n "${PLATFORM_REPO_PATHS:-}" ]; then
  args+=(-v "$PLATFORM_REPO_PATHS:$PLATFORM_REPO_PATHS:ro" -e PLATFORM_REPO_PATHS)
fi
exec docker run "${args[@]}" "$IMAGE" /work/export "$board" "/work/out/$(basename "$out")" "$@"
