#!/usr/bin/env bash
# Build the wheel into dist/ and check that the JS bundle is inside it.
# The build hook (hatch-jupyter-builder) runs `npm install` + `npm run build` in js/ when
# sam_widget/static/widget.js is missing or older than js/src.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PY="${PYTHON:-.venv/bin/python}"
rm -rf dist
"$PY" -m pip wheel . --no-deps --wheel-dir dist --quiet
"$PY" - <<'PYEOF'
import sys, zipfile
from pathlib import Path

dist = Path("dist")
wheels = sorted(dist.glob("sam_widget-*.whl"))
if not wheels:
    sys.exit("no wheel built")
built = Path("sam_widget/static/widget.js").read_bytes()
with zipfile.ZipFile(wheels[-1]) as z:
    names = z.namelist()
    if "sam_widget/static/widget.js" not in names:
        sys.exit(f"{wheels[-1].name}: sam_widget/static/widget.js missing")
    js = z.read("sam_widget/static/widget.js")
if js != built or len(js) < 1000:
    sys.exit(f"{wheels[-1].name}: widget.js differs from the built bundle ({len(js)} bytes)")
bad = [n for n in names if "node_modules" in n or n.startswith(("tests/", "js/"))]
if bad:
    sys.exit(f"{wheels[-1].name}: unexpected files {bad[:5]}")
print(f"ok: {wheels[-1].name} has sam_widget/static/widget.js ({len(js)} bytes), {len(names)} files")
PYEOF
