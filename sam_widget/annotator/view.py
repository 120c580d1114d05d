"""The annotator's view: an ipywidgets navigator around the current image's ``SamWidget``.

Layout (all standard ipywidgets, so it renders wherever ipywidgets do)::

    [< Prev] [Next >] [jump: __] [Go] [Done (d)] [Skip]  "3 of 10 done · image 4 / 10: a.png"
    category: [cell v] [Propose] accept >= [0.8] [Accept] [Reject]  "5 proposal(s)"
                                                   [x] unfinished only
    +------------------------------+  +--------------------------+
    |          SamWidget           |  | 1  done      2 obj a.png |
    |                              |  | 2  ...                   |
    +------------------------------+  +--------------------------+
    message line (changed files, save problems)

Keys (after a click inside the annotator): ``n`` next, ``p`` previous, ``d`` done and next,
``1``-``9`` the category of that number. Every control calls the annotator's Python API, so
the view and the API always agree.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from .keys import KeyListener

if TYPE_CHECKING:
    from .annotator import SamAnnotator

__all__ = ["NavigatorView"]

_MARK = {"todo": "·", "in_progress": "…", "done": "✓", "skipped": "–"}


class NavigatorView:
    """Navigator widgets bound to one :class:`SamAnnotator` (see the module docstring)."""

    def __init__(self, annotator: SamAnnotator) -> None:
        self.a = annotator
        self._updating = False
        b = widgets.Button
        self.prev = b(description="< Prev", tooltip="previous image (p)")
        self.next = b(description="Next >", tooltip="next image (n)")
        self.done = b(description="Done", tooltip="mark done and go to the next image (d)")
        self.skip = b(description="Skip", tooltip="mark skipped and go to the next image")
        self.jump = widgets.BoundedIntText(value=1, min=1, max=max(len(annotator), 1),
                                           layout=widgets.Layout(width="6em"))  # fmt: skip
        self.go = b(description="Go", layout=widgets.Layout(width="4em"))
        self.progress = widgets.HTML()
        self.category = widgets.Dropdown(description="category")
        self.propose = b(description="Propose", tooltip="automatic masks not overlapping objects")
        self.min_iou = widgets.BoundedFloatText(value=0.8, min=0.0, max=1.0, step=0.05,
                                                description="accept ≥",
                                                layout=widgets.Layout(width="11em"))  # fmt: skip
        self.accept = b(description="Accept", tooltip="accept proposals with this predicted IoU")
        self.reject = b(description="Reject", tooltip="drop the proposals")
        self.proposal_info = widgets.HTML()
        self.unfinished = widgets.Checkbox(value=False, description="unfinished only")
        self.list = widgets.Select(rows=14, layout=widgets.Layout(width="22em"))
        self.message = widgets.HTML()
        self.keys = KeyListener(self._key)
        self.prev.on_click(lambda _b: self._safely(annotator.prev))
        self.next.on_click(lambda _b: self._safely(annotator.next))
        self.done.on_click(lambda _b: self._safely(self._done_next))
        self.skip.on_click(lambda _b: self._safely(self._skip_next))
        self.go.on_click(lambda _b: self._safely(lambda: annotator.goto(self.jump.value - 1)))
        self.propose.on_click(lambda _b: self._safely(self._propose))
        self.accept.on_click(
            lambda _b: self._safely(lambda: annotator.accept_all(self.min_iou.value))
        )
        self.reject.on_click(lambda _b: self._safely(annotator.reject))
        self.category.observe(self._category_picked, names="value")
        self.unfinished.observe(lambda _c: self.refresh(full=True), names="value")
        self.list.observe(self._picked, names="value")
        top = widgets.HBox(
            [self.prev, self.next, self.jump, self.go, self.done, self.skip, self.progress]
        )
        side = widgets.VBox([self.unfinished, self.list])
        wrap = widgets.Layout(flex_flow="row wrap")  # the list goes below when narrow
        tools = widgets.HBox([self.category, self.propose, self.min_iou, self.accept,
                              self.reject, self.proposal_info])  # fmt: skip
        self.body = widgets.HBox([annotator.widget, side], layout=wrap)
        self.box = widgets.VBox([top, tools, self.body, self.message, self.keys])
        self.box.add_class("sam-annotator")
        self.refresh(full=True)

    # ------------------------------------------------------------------------ actions

    def _safely(self, action: Any) -> None:
        try:
            action()
        except Exception as exc:  # a bad file must not break the buttons
            self.show_message(f"{type(exc).__name__}: {exc}")

    def _done_next(self) -> None:
        self.a.mark_done()
        self.a.next()

    def _skip_next(self) -> None:
        self.a.set_status("skipped")
        self.a.next()

    def _propose(self) -> None:
        self.proposal_info.value = "proposing…"
        self.a.propose()

    def _key(self, key: str) -> None:
        if key == "n":
            self._safely(self.a.next)
        elif key == "p":
            self._safely(self.a.prev)
        elif key == "d":
            self._safely(self._done_next)
        elif key.isdigit():
            names = self.a.categories()
            k = int(key) - 1
            if 0 <= k < len(names):
                self._safely(lambda: self.a.set_category(names[k]))

    def _category_picked(self, change: Any) -> None:
        if not self._updating:
            self._safely(lambda: self.a.set_category(change["new"]))

    def _picked(self, change: Any) -> None:
        if not self._updating and change["new"] is not None and change["new"] != self.a.index:
            self._safely(lambda: self.a.goto(int(change["new"])))

    def set_widget(self, widget: Any) -> None:
        """Show another SamWidget (after the annotator changed its model)."""
        self.body.children = (widget, *self.body.children[1:])

    def show_message(self, text: str) -> None:
        self.message.value = f"<span style='color:#b00'>{html.escape(text)}</span>"

    # ------------------------------------------------------------------------ refresh

    def refresh(self, full: bool = False) -> None:
        """Update the labels, the list and the pickers from the project."""
        s = self.a.project.summary()
        i, n = self.a.index, s["total"]
        rows = s["images"]
        cur = rows[i] if i < len(rows) else None
        flag = self.a.flags.get(i)
        self._updating = True
        try:
            name = html.escape(cur["path"]) if cur else ""
            extra = f" <b>({flag} on disk)</b>" if flag else ""
            self.progress.value = (
                f"<b>{s['done']} of {n} done</b> · image {i + 1} / {n}: {name}"
                f" · {cur['status'] if cur else ''}{extra}"
            )
            self.jump.max = max(n, 1)
            self.jump.value = i + 1
            options = [
                (f"{r['index'] + 1:>4} {_MARK.get(r['status'], '?')} {r['objects']:>3} obj  "
                 f"{r['path']}", r["index"])
                for r in rows
                if not self.unfinished.value or r["status"] not in ("done", "skipped")
                or r["index"] == i
            ]  # fmt: skip
            self.list.options = options
            self.list.value = i
            names = self.a.categories()
            choices = [("(none)", None)] + [(f"{k + 1}: {c}", c) for k, c in enumerate(names)]
            if list(self.category.options) != choices:
                self.category.options = choices
            self.category.value = self.a.category
            if not flag:
                self.message.value = ""
            n_prop = len(self.a.proposals)
            self.proposal_info.value = f"{n_prop} proposal(s)" if n_prop else ""
        finally:
            self._updating = False

    def close(self) -> None:
        self.keys.close()
        for w in (self.prev, self.next, self.done, self.skip, self.jump, self.go, self.progress,
                  self.category, self.propose, self.min_iou, self.accept, self.reject,
                  self.proposal_info, self.unfinished, self.list, self.message):  # fmt: skip
            w.close()
        self.box.close()
