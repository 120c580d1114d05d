#!/usr/bin/env bash
# One-shot, idempotent set-up of a development checkout of sam-widget.
#
#   bash scripts/setup.sh        (also run by `make setup`, `make lab`, `make test`)
#
# What it does, skipping every step that is already done:
#   1. .venv with python3 >= 3.10 (override the interpreter with PYTHON=/path/to/python3).
#   2. PyTorch, CPU build unless a GPU is present (torchvision is not needed):
#        - with an NVIDIA GPU (nvidia-smi works): the default `pip install torch`;
#        - else a local CPU torch wheel in pip's find-links (e.g. /opt/wheels), if there is one;
#        - else (Linux) the PyTorch CPU index (https://download.pytorch.org/whl/cpu), probed first
#          with a short timeout so pip never hangs on an unreachable index.
#      Override with TORCH_SPEC (e.g. "torch==2.6.0") and/or TORCH_INDEX_URL.
#   3. The frontend: `npm ci` in js/ (when package-lock.json changed) and `npm run build`
#      (-> sam_widget/static/widget.js).
#   4. `pip install -e ".[dev]"` (when pyproject.toml changed or the package does not import),
#      then the test-only SAM 2 oracle `sam2==1.1.0`: without its dependencies (it lists
#      torchvision and a CUDA-default torch; hydra-core and iopath come with ".[dev]"), without
#      build isolation (its build needs torch: the one in .venv, never a download) and with
#      SAM2_BUILD_CUDA=0 (no CUDA extension).
#   5. Chromium for the end-to-end tests: installed with apt-get when running as root (or with
#      passwordless sudo); otherwise the command to run is printed.
#
# Environment: SKIP_CHROMIUM=1 skips step 5 (the e2e tests will then fail, never skip).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="$ROOT/.venv"
STAMP_DIR="$VENV/.sam-widget-setup"
TORCH_CPU_INDEX="https://download.pytorch.org/whl/cpu"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }
warn() { printf '\033[1;33m[setup] WARNING:\033[0m %s\n' "$*" >&2; }
die() { printf '\033[1;31m[setup] ERROR:\033[0m %s\n' "$*" >&2; exit 1; }

sha() { sha256sum "$@" | cut -c1-16; }

# ---------------------------------------------------------------- 1. virtual environment
find_python() {
    local candidates=()
    if [[ -n "${PYTHON:-}" ]]; then candidates=("$PYTHON"); else
        candidates=(python3 python3.13 python3.12 python3.11 python3.10)
    fi
    local py
    for py in "${candidates[@]}"; do
        if command -v "$py" >/dev/null 2>&1 &&
            "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else 1)' 2>/dev/null; then
            command -v "$py"
            return 0
        fi
    done
    return 1
}

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null; then
    PY="$(find_python)" || die "need python3 >= 3.10 (set PYTHON=/path/to/python3)"
    log "creating .venv with $PY ($("$PY" --version 2>&1))"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" || die "'$PY -m venv' failed (on Debian/Ubuntu: apt-get install python3-venv)"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
fi
mkdir -p "$STAMP_DIR"
VPY="$VENV/bin/python"
PIP=("$VPY" -m pip)

# ---------------------------------------------------------------- 2. PyTorch (CPU unless GPU)
# Prints the path of a torch wheel for this interpreter found in pip's find-links, if any.
local_torch_wheel() {
    "$VPY" - <<'EOF'
import os, re, subprocess, sys
from pathlib import Path

links = os.environ.get("PIP_FIND_LINKS", "").split()
try:
    out = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True,
                         text=True, timeout=60).stdout
except Exception:
    out = ""
for line in out.splitlines():
    key, _, value = line.partition("=")
    if key.endswith("find-links"):
        links += value.strip().strip("'\"").split()
tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
import platform
arch = platform.machine()
found = []
for link in links:
    d = Path(link.removeprefix("file://"))
    if d.is_dir():
        for whl in d.glob(f"torch-*-{tag}-{tag}-*.whl"):
            # Linux: only CPU builds (+cpu); a plain Linux wheel pulls the CUDA packages.
            if sys.platform == "darwin" and "macosx" in whl.name:
                found.append(whl)
            elif arch in whl.name and "+cpu" in whl.name:
                found.append(whl)
if found:
    # Highest version first; a +cpu local build sorts after the plain one.
    def key(p):
        v = p.name.split("-")[1]
        return [int(x) if x.isdigit() else 0 for x in re.split(r"[.+]", v)]
    print(sorted(found, key=key)[-1])
EOF
}

has_nvidia_gpu() { command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q GPU; }

url_reachable() {
    "$VPY" -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=10)' "$1" >/dev/null 2>&1
}

if "$VPY" -c 'import torch' >/dev/null 2>&1; then
    log "torch $("$VPY" -c 'import torch; print(torch.__version__)') already installed"
else
    if [[ -n "${TORCH_SPEC:-}${TORCH_INDEX_URL:-}" ]]; then
        args=("${TORCH_SPEC:-torch}")
        [[ -n "${TORCH_INDEX_URL:-}" ]] && args+=(--index-url "$TORCH_INDEX_URL")
        log "installing ${args[*]} (from TORCH_SPEC/TORCH_INDEX_URL)"
        "${PIP[@]}" install "${args[@]}"
    elif has_nvidia_gpu; then
        log "NVIDIA GPU found: installing the default (CUDA) torch build"
        "${PIP[@]}" install torch
    elif wheel="$(local_torch_wheel)" && [[ -n "$wheel" ]]; then
        log "no GPU: installing torch from the local CPU wheel $wheel"
        "${PIP[@]}" install "$wheel"
    elif [[ "$(uname -s)" == "Darwin" ]]; then
        log "macOS: the default torch wheel is the CPU/MPS build"
        "${PIP[@]}" install torch
    elif url_reachable "$TORCH_CPU_INDEX/torch/"; then
        log "no GPU: installing the CPU build of torch from $TORCH_CPU_INDEX"
        "${PIP[@]}" install torch --index-url "$TORCH_CPU_INDEX"
    else
        die "no GPU, no local torch wheel, and $TORCH_CPU_INDEX is unreachable.
  An unpinned 'pip install torch' would pull several GB of CUDA packages. Either install a
  CPU torch (>=2.6) into .venv yourself, or set TORCH_SPEC/TORCH_INDEX_URL, e.g.
    TORCH_SPEC='torch==2.6.0' TORCH_INDEX_URL=https://my.mirror/whl/cpu bash scripts/setup.sh"
    fi
fi

# ---------------------------------------------------------------- 3. frontend (js/)
command -v npm >/dev/null 2>&1 || die "npm not found: install Node.js >= 18 (https://nodejs.org)"
if [[ -f js/package.json ]]; then
    # npm keeps its own record of what is installed in node_modules/.package-lock.json; it is
    # current when newer than both package.json and package-lock.json.
    hidden=js/node_modules/.package-lock.json
    if [[ ! -f "$hidden" || js/package-lock.json -nt "$hidden" || js/package.json -nt "$hidden" ]]; then
        log "npm ci (js/)"
        (cd js && npm ci --no-audit --no-fund)
    else
        log "js/node_modules up to date"
    fi
    log "npm run build (js/ -> sam_widget/static/widget.js)"
    (cd js && npm run build --silent)
    [[ -f sam_widget/static/widget.js ]] || die "npm run build did not produce sam_widget/static/widget.js"
else
    warn "js/package.json missing: frontend not built"
fi

# ---------------------------------------------------------------- 4. the package, editable
py_hash="$(sha pyproject.toml)"
if [[ "$(cat "$STAMP_DIR/pyproject" 2>/dev/null)" != "$py_hash" ]] ||
    ! "$VPY" -c 'import sam_widget, pytest, jupyterlab, playwright, skimage' >/dev/null 2>&1; then
    log "pip install -e '.[dev]'"
    # The JS bundle was built just above; the jupyter-builder hook need not run npm again.
    HATCH_JUPYTER_BUILDER_SKIP_NPM=1 "${PIP[@]}" install -e ".[dev]"
    echo "$py_hash" > "$STAMP_DIR/pyproject"
else
    log "python dependencies up to date"
fi
SAM2_ORACLE="1.1.0"
if [[ "$("$VPY" -c 'import importlib.metadata as m; print(m.version("sam2"))' 2>/dev/null)" == "$SAM2_ORACLE" ]]; then
    log "SAM 2 oracle sam2==$SAM2_ORACLE already installed"
else
    log "installing the test-only SAM 2 oracle sam2==$SAM2_ORACLE (no dependencies, no CUDA build)"
    SAM2_BUILD_CUDA=0 "${PIP[@]}" install --no-deps --no-build-isolation "sam2==$SAM2_ORACLE"
fi
if "$VPY" -m pip show torchvision >/dev/null 2>&1; then
    warn "torchvision is installed in .venv; sam_widget does not use it (tests shim it)"
fi

# ---------------------------------------------------------------- 5. Chromium (e2e tests)
find_chromium() {
    local c
    for c in "${SAM_WIDGET_CHROMIUM:-}" chromium chromium-browser google-chrome; do
        [[ -n "$c" ]] && command -v "$c" >/dev/null 2>&1 && { command -v "$c"; return 0; }
    done
    return 1
}
if [[ -n "${SKIP_CHROMIUM:-}" ]]; then
    log "SKIP_CHROMIUM set: not checking for Chromium"
elif chrome="$(find_chromium)"; then
    log "chromium: $chrome"
elif command -v apt-get >/dev/null 2>&1 && { [[ "$(id -u)" == 0 ]] || sudo -n true 2>/dev/null; }; then
    SUDO=""; [[ "$(id -u)" == 0 ]] || SUDO="sudo -n"
    log "installing chromium with apt-get (for the end-to-end tests)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
    chrome="$(find_chromium)" || die "apt-get install chromium did not provide a chromium binary"
    log "chromium: $chrome"
else
    warn "Chromium not found; the end-to-end tests (tests/e2e) need it and will FAIL without it.
  Install it with your package manager, e.g.  sudo apt-get install -y chromium
  or point SAM_WIDGET_CHROMIUM at a Chrome/Chromium binary. (No 'playwright install' needed.)"
fi

log "done: activate with '. .venv/bin/activate'"
