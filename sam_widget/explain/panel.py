"""``ExplainPanel``: a kernel-side companion view of a ``SamWidget`` that explains its last
decode as small images (ipywidgets ``Image``s, no frontend code of its own).

On every mask update of the widget's active object it re-runs that object's prompts through
:func:`sam_widget.explain.explain` on the widget's own predictor (same image embedding) and
shows: the 4 masks (mask 0 single output, 1-3 multimask) with their predicted IoU and which
one the widget shows and why; the final token -> image attention of that mask token; the
similarity of the first point's positional encoding with the dense encoding; the image
embedding's PCA. Images are PNGs of at most ``size`` pixels per side, so a click stays
responsive. The prompts are explained alone: with refinement on, the widget also feeds an
object's previous mask back as ``mask_input``, so after several clicks its mask can differ
from mask 0 here. The panel inside the widget (``SamWidget(explain=True)``, the Explain
toolbar toggle; :mod:`sam_widget.widget.explainer`) explains the decode the widget actually
ran, ``mask_input`` included.
"""

from __future__ import annotations

import threading
from typing import Any

import ipywidgets
import numpy as np

from ..widget.explain_message import heat_rgb, image_cells, pe_similarity, png
from ..widget.snapshot import render
from .decode import Explanation, explain
from .pca import embedding_pca

__all__ = ["ExplainPanel", "heat_rgb"]


class ExplainPanel(ipywidgets.VBox):
    """Explain the active object of ``widget`` (a ``SamWidget``) after every decode.

    ``ExplainPanel(w)`` subscribes to ``w.on_mask``; display it next to the widget.
    ``explanation`` holds the last :class:`Explanation` (None before the first click);
    ``refresh()`` recomputes it now; ``close()`` unsubscribes.
    """

    def __init__(self, widget: Any, *, size: int = 160) -> None:
        for attr in ("on_mask", "objects", "predictor", "image"):
            if not hasattr(widget, attr):
                raise TypeError(f"widget must be a SamWidget, got {type(widget).__name__}")
        if isinstance(size, bool) or not isinstance(size, int) or size < 16:
            raise ValueError(f"size must be an int >= 16 (pixels), got {size!r}")
        self.widget = widget
        self.size = size
        self.explanation: Explanation | None = None
        self._lock = threading.Lock()
        self.title = ipywidgets.HTML("<b>Explain</b>: click an object")
        self.candidates = [ipywidgets.Image(format="png") for _ in range(4)]
        self.captions = [ipywidgets.HTML() for _ in range(4)]
        self.attention = ipywidgets.Image(format="png")
        self.point_pe = ipywidgets.Image(format="png")
        self.pca = ipywidgets.Image(format="png")
        self.why = ipywidgets.HTML()

        def column(img: Any, caption: Any) -> Any:
            return ipywidgets.VBox([img, caption])

        masks_row = ipywidgets.HBox(
            [column(i, c) for i, c in zip(self.candidates, self.captions, strict=True)]
        )
        maps_row = ipywidgets.HBox(
            [
                column(self.attention, ipywidgets.HTML("final token&rarr;image attention")),
                column(self.point_pe, ipywidgets.HTML("point PE &middot; dense PE")),
                column(self.pca, ipywidgets.HTML("image embedding PCA")),
            ]
        )
        super().__init__([self.title, masks_row, self.why, maps_row])
        self.add_class("sam-explain")
        self._unsubscribe = widget.on_mask(self._on_mask)

    def _on_mask(self, object_id: int, update: Any) -> None:
        if object_id == self.widget.active:
            self.refresh(object_id)

    def refresh(self, object_id: int | None = None) -> Explanation | None:
        """Explain ``object_id`` (default: the active object) now; returns the explanation
        (None when it has no prompts or the model is not loaded yet)."""
        w = self.widget
        oid = w.active if object_id is None else object_id
        obj = next((o for o in w.objects if o["id"] == oid), None)
        predictor = w.predictor
        if obj is None or predictor is None or not (obj["points"] or obj["box"]):
            return None
        with self._lock:
            ex = explain(
                predictor,
                point_coords=np.asarray(obj["points"], float) if obj["points"] else None,
                point_labels=np.asarray(obj["labels"]) if obj["points"] else None,
                box=obj["box"],
            )
            self._show(obj, ex)
            self.explanation = ex
        return ex

    def _show(self, obj: dict[str, Any], ex: Explanation) -> None:
        image = np.asarray(self.widget.image)
        # The widget's rule (widget/chain.py): one point alone is ambiguous (3 candidates,
        # ``candidate`` 0..2 picks one, None the highest IoU); anything else is one mask.
        single = len(obj["points"]) + 2 * (obj["box"] is not None) > 1
        picked = obj.get("candidate")
        shown = 0 if single else (1 + int(picked) if picked is not None else ex.chosen)
        for k in range(4):
            colour = "#1e88e5" if k == shown else "#e69f00"
            self.candidates[k].value = png(render(image, [ex.masks[k]], [colour]), self.size)
            mark = " &#9664; shown" if k == shown else ""
            kind = "single" if k == 0 else "multi"
            self.captions[k].value = f"mask {k} ({kind})<br>IoU {ex.iou_predictions[k]:.3f}{mark}"
        if single:
            why = "several prompts are unambiguous: the single-mask output (mask 0) is used"
        elif picked is not None:
            why = f"one ambiguous prompt: you picked mask {shown}"
        else:
            why = f"one ambiguous prompt: the multimask output with the highest IoU ({shown})"
        self.why.value = f"<i>{why}</i>"
        self.title.value = f"<b>Explain</b>: {obj['name'] or 'object'} #{obj['id']}"
        self.attention.value = png(heat_rgb(image_cells(ex, ex.final_attention(shown))), self.size)
        self.point_pe.value = png(heat_rgb(image_cells(ex, pe_similarity(ex))), self.size)
        pca = embedding_pca(self.widget.predictor)
        self.pca.value = png(image_cells(ex, pca), self.size)

    def close(self) -> None:
        unsubscribe = getattr(self, "_unsubscribe", None)  # absent if __init__ failed
        if unsubscribe is not None:
            unsubscribe()
        super().close()
