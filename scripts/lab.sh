#!/usr/bin/env bash
# Launch JupyterLab on the quickstart notebook (after `bash scripts/setup.sh`).
# Extra arguments go to `jupyter lab`, e.g. --port=9999 or --ip=0.0.0.0.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# shellcheck disable=SC1091
. .venv/bin/activate
args=(--no-browser)
[[ -n "${DISPLAY:-}" || "$(uname -s)" == "Darwin" ]] && args=()
[[ "$(id -u)" == 0 ]] && args+=(--allow-root)
# Opens the quickstart right away, also from the URL printed for a browser elsewhere.
exec jupyter lab "${args[@]}" --ServerApp.root_dir="$ROOT/notebooks" \
    --LabApp.default_url=/lab/tree/quickstart.ipynb "$@"
