/**
 * anywidget entry point of sam_widget (served as sam_widget/static/widget.js).
 * `render` builds one view of the model inside `el` and returns its cleanup.
 */
import type { AnyModel } from "@anywidget/types";
import { SamView } from "./view";

function render({ model, el }: { model: AnyModel; el: HTMLElement }): () => void {
  const view = new SamView(model, el);
  return () => view.destroy();
}

export default { render };
