"""sam-widget: Segment Anything, live inside Jupyter."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "SamAnnotator",
    "SamAutomaticMaskGenerator",
    "SamPredictor",
    "SamWidget",
    "__version__",
    "build_sam",
    "sam_model_registry",
]

# A library logs, the application decides where logs go: without this, Python's last-resort
# handler prints a background thread's failure (with its traceback) into whichever notebook
# cell happens to run. The widget shows the failure itself (its error line).
logging.getLogger(__name__).addHandler(logging.NullHandler())

if TYPE_CHECKING:
    from .annotator import SamAnnotator
    from .compat import sam_model_registry
    from .engine.amg import SamAutomaticMaskGenerator
    from .engine.predictor import SamPredictor
    from .models.build import build_sam
    from .widget.widget import SamWidget

_LAZY = {
    "SamAnnotator": ".annotator",
    "build_sam": ".models.build",
    "SamPredictor": ".engine.predictor",
    "SamAutomaticMaskGenerator": ".engine.amg",
    "SamWidget": ".widget.widget",
    "sam_model_registry": ".compat",
}


def __getattr__(name: str) -> Any:
    # Lazy imports keep `import sam_widget` cheap and let each part import on its own.
    if name in _LAZY:
        import importlib

        module = importlib.import_module(_LAZY[name], __name__)
        return getattr(module, name)
    raise AttributeError(f"module 'sam_widget' has no attribute {name!r}")
