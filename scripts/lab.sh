#!/usr/bin/env bash
# Launch JupyterLab on the quickstart notebook (after `bash scripts/setup.sh`).
# Extra arguments go to `jupyter lab`, e.g. --port=9999 or --ip=0.0.0.0.
#
# JupyterLab works on a copy of notebooks/ in the ignored folder .lab/ (or $SAM_WIDGET_LAB_DIR):
# opening, running and autosaving a notebook never modifies the checkout. A notebook is copied
# only when the copy does not exist yet, so work done in .lab/ is kept across runs; delete a
# copy to start that notebook afresh.
# `scripts/lab.sh --prepare` only makes the copies and prints the folder.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
LAB_DIR="${SAM_WIDGET_LAB_DIR:-$ROOT/.lab}"
mkdir -p "$LAB_DIR"
for nb in notebooks/*.ipynb; do
    target="$LAB_DIR/$(basename "$nb")"
    [[ -e "$target" ]] || cp "$nb" "$target"
done
if [[ "${1:-}" == "--prepare" ]]; then
    echo "$LAB_DIR"
    exit 0
fi
# shellcheck disable=SC1091
. "${SAM_WIDGET_VENV:-$ROOT/.venv}/bin/activate"
args=(--no-browser)
[[ -n "${DISPLAY:-}" || "$(uname -s)" == "Darwin" ]] && args=()
[[ "$(id -u)" == 0 ]] && args+=(--allow-root)
# Opens the quickstart right away, also from the URL printed for a browser elsewhere.
exec jupyter lab "${args[@]}" --ServerApp.root_dir="$LAB_DIR" \
    --LabApp.default_url=/lab/tree/quickstart.ipynb "$@"
