/**
 * The widget's CSS, injected as a <style> element inside the widget's root (so there is no
 * separate .css file and the rules leave with the view). Every rule is scoped under
 * `.sam-widget`. Colours come from JupyterLab's theme variables (also defined by
 * Notebook 7) with CSS system colours as fallbacks, so dark themes work.
 */
export const CSS = `
.sam-widget {
  --sam-fg: var(--jp-ui-font-color1, CanvasText);
  --sam-fg-dim: var(--jp-ui-font-color2, GrayText);
  --sam-bg: var(--jp-layout-color1, Canvas);
  --sam-bg2: var(--jp-layout-color2, Canvas);
  --sam-border: var(--jp-border-color1, GrayText);
  --sam-accent: var(--jp-brand-color1, #1976d2);
  --sam-error: var(--jp-error-color1, #d32f2f);
  --sam-warn-bg: var(--jp-warn-color3, #fff3cd);
  --sam-warn-fg: var(--jp-warn-color0, #664d03);
  display: flex;
  flex-direction: column;
  gap: 4px;
  width: 100%;
  min-width: 0;
  box-sizing: border-box;
  color: var(--sam-fg);
  font-family: var(--jp-ui-font-family, system-ui, sans-serif);
  font-size: var(--jp-ui-font-size1, 13px);
  outline: none;
  position: relative;
}
.sam-widget:focus-visible { box-shadow: 0 0 0 2px var(--sam-accent); }
.sam-widget *, .sam-widget *::before, .sam-widget *::after { box-sizing: border-box; }
.sam-widget .sam-toolbar, .sam-widget .sam-objects, .sam-widget .sam-candidates {
  display: flex; flex-wrap: wrap; align-items: center; gap: 4px;
}
.sam-widget .sam-group { display: inline-flex; gap: 2px; align-items: center; }
.sam-widget .sam-group + .sam-group { margin-left: 6px; }
.sam-widget button {
  font: inherit; color: var(--sam-fg); background: var(--sam-bg2);
  border: 1px solid var(--sam-border); border-radius: 3px;
  padding: 2px 7px; min-height: 26px; cursor: pointer; line-height: 1.2;
  touch-action: manipulation;
}
.sam-widget button:hover:not(:disabled) { border-color: var(--sam-accent); }
.sam-widget button:disabled { opacity: 0.45; cursor: default; }
.sam-widget button[aria-pressed="true"] {
  background: var(--sam-accent); border-color: var(--sam-accent); color: #fff;
}
.sam-widget .sam-opacity { display: inline-flex; align-items: center; gap: 4px; color: var(--sam-fg-dim); }
.sam-widget .sam-opacity input { width: 80px; }
.sam-widget .sam-stage {
  position: relative; overflow: hidden; align-self: flex-start;
  background: var(--sam-bg2); outline: 1px solid var(--sam-border); margin: 1px;
  cursor: crosshair; touch-action: none; user-select: none; -webkit-user-select: none;
  /* no border/padding: the stage's client rect must be exactly the canvases' box */
  border: 0; padding: 0;
}
.sam-widget .sam-stage.sam-pan { cursor: grab; }
.sam-widget .sam-stage.sam-panning { cursor: grabbing; }
.sam-widget .sam-stage canvas {
  position: absolute; left: 0; top: 0; display: block; pointer-events: none;
}
.sam-widget .sam-placeholder {
  position: absolute; inset: 0; display: flex; align-items: center; justify-content: center;
  color: var(--sam-fg-dim); pointer-events: none;
}
.sam-widget .sam-objects button { display: inline-flex; align-items: center; gap: 4px; }
.sam-widget .sam-swatch {
  width: 11px; height: 11px; border-radius: 2px; border: 1px solid rgba(0,0,0,0.4); flex: none;
}
.sam-widget .sam-objects input { font: inherit; width: 9em; }
.sam-widget .sam-candidates:empty, .sam-widget .sam-objects:empty { display: none; }
.sam-widget .sam-candidates .sam-label { color: var(--sam-fg-dim); }
.sam-widget .sam-status { display: flex; align-items: center; gap: 8px; color: var(--sam-fg-dim); min-height: 18px; }
.sam-widget .sam-status progress { width: 160px; height: 8px; }
.sam-widget .sam-status[data-status="error"] { color: var(--sam-error); }
.sam-widget .sam-notice {
  padding: 3px 8px; border-radius: 3px; background: var(--sam-warn-bg); color: var(--sam-warn-fg);
}
.sam-widget .sam-error {
  display: flex; align-items: center; gap: 8px; padding: 3px 8px; border-radius: 3px;
  color: var(--sam-error); border: 1px solid var(--sam-error);
}
.sam-widget .sam-error button { margin-left: auto; min-height: 20px; padding: 0 6px; }
.sam-widget .sam-status-note { color: var(--sam-fg); }
.sam-widget .sam-status-note:empty { display: none; }
/* Controls that apply only sometimes keep their place: invisible, never display:none. */
.sam-widget .sam-reserved:not(.sam-shown) { visibility: hidden; }
.sam-widget .sam-settings {
  position: absolute; z-index: 10; top: 34px; left: 0; padding: 8px; min-width: 260px;
  background: var(--sam-bg); border: 1px solid var(--sam-border); border-radius: 4px;
  box-shadow: 0 2px 8px rgba(0,0,0,0.25);
}
.sam-widget .sam-settings form { display: grid; gap: 4px; }
.sam-widget .sam-settings label { display: flex; justify-content: space-between; gap: 8px; align-items: center; }
.sam-widget .sam-settings input { font: inherit; width: 7em; }
.sam-widget .sam-settings-error { color: var(--sam-error); min-height: 1em; }
.sam-widget .sam-settings-buttons { display: flex; gap: 4px; justify-content: flex-end; }
.sam-widget .sam-explain { display: grid; gap: 4px; padding: 4px 0; }
.sam-widget .sam-explain-masks, .sam-widget .sam-explain-maps { display: flex; flex-wrap: wrap; gap: 6px; }
.sam-widget .sam-explain figure { margin: 0; display: flex; flex-direction: column; gap: 2px; }
.sam-widget .sam-explain-tile { width: 132px; }
.sam-widget .sam-explain figcaption { font-size: 11px; color: var(--sam-fg-dim); }
.sam-widget .sam-explain-tile img { width: 128px; height: auto; image-rendering: pixelated; border: 2px solid transparent; }
.sam-widget .sam-explain-shown img { border-color: var(--sam-accent, #1e88e5); }
.sam-widget .sam-explain-pe img { width: 512px; max-width: 100%; height: 16px; image-rendering: pixelated; }
.sam-widget .sam-explain-why { font-style: italic; }
.sam-widget [hidden] { display: none !important; }
`;
