"""The harness itself, with a minimal anywidget: browser -> kernel and kernel -> browser sync.

If this fails, the SamWidget tests cannot be trusted either (server, Chromium, widget
manager, or the kernel link of the harness is broken).
"""

from __future__ import annotations

COUNTER = '''
import anywidget
import traitlets


class Counter(anywidget.AnyWidget):
    _esm = """
    function render({ model, el }) {
      const btn = document.createElement("button");
      btn.className = "e2e-counter";
      const show = () => { btn.textContent = `count is ${model.get("value")}`; };
      btn.addEventListener("click", () => {
        model.set("value", model.get("value") + 1);
        model.save_changes();
      });
      model.on("change:value", show);
      show();
      el.appendChild(btn);
    }
    export default { render };
    """
    value = traitlets.Int(0).tag(sync=True)


c = Counter()
c
'''


def test_counter_widget_round_trip(open_notebook):
    nb = open_notebook([COUNTER])
    button = nb.page.locator("button.e2e-counter")
    button.wait_for(state="visible")
    assert button.inner_text() == "count is 0"

    for _ in range(3):
        button.click()
    nb.page.wait_for_function(
        "() => document.querySelector('button.e2e-counter').textContent === 'count is 3'"
    )
    # The browser's clicks reached the kernel's object.
    nb.wait_kernel_true("c.value == 3", timeout=30)

    # And a kernel-side change reaches the browser.
    nb.kernel("c.value = 41")
    nb.page.wait_for_function(
        "() => document.querySelector('button.e2e-counter').textContent === 'count is 41'"
    )
    assert nb.kernel_json("c.value") == 41


def test_cell_error_is_reported(open_notebook):
    from .harness import HarnessError

    try:
        open_notebook(["x = 1", "raise ValueError('boom from a cell')"])
    except HarnessError as exc:
        assert "boom from a cell" in str(exc)
    else:
        raise AssertionError("run_all did not report the failing cell")
