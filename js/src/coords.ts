/**
 * Geometry between the three pixel spaces the widget deals with.
 *
 * - image px: the contract's unit (docs/ARCHITECTURE.md, "Widget protocol"): continuous
 *   coordinates over the ORIGINAL image, (0, 0) = its top-left corner, (W, H) = its
 *   bottom-right corner; the centre of pixel column i is x = i + 0.5.
 * - stage px: CSS pixels inside the stage element's layout box (what `View.stageWidth`
 *   and `View.stageHeight` describe).
 * - screen px: `clientX`/`clientY` of pointer events. The stage's on-screen box is
 *   `getBoundingClientRect()`; it differs from the layout box when a CSS transform scales
 *   the page (e.g. a zoomed presentation), so screen -> stage divides by that ratio.
 *
 * Canvas backing stores are stage size x devicePixelRatio; `backingTransform` gives the
 * `setTransform` that lets drawing code work in image px.
 *
 * The widget converts pointer positions with exactly one pair: `screenToImage` /
 * `imageToScreen`.
 */

export interface View {
  /** Original image size (image px). */
  imageWidth: number;
  imageHeight: number;
  /** Stage layout size (CSS px). */
  stageWidth: number;
  stageHeight: number;
  /** 1 = whole image fitted into the stage; larger zooms in. */
  zoom: number;
  /** Offset (stage px) of the image from its centred position. */
  panX: number;
  panY: number;
}

/** The part of a DOMRect we use: the stage's box on screen. */
export interface ScreenRect {
  left: number;
  top: number;
  width: number;
  height: number;
}

export const MIN_ZOOM = 1;
export const MAX_ZOOM = 32;

/** Image px -> stage px scale factor. */
export function viewScale(view: View): number {
  if (view.imageWidth <= 0 || view.imageHeight <= 0) return 1;
  const fit = Math.min(view.stageWidth / view.imageWidth, view.stageHeight / view.imageHeight);
  return fit * view.zoom;
}

/** Stage-px position of the image's top-left corner. */
export function viewOrigin(view: View): [number, number] {
  const s = viewScale(view);
  return [
    (view.stageWidth - view.imageWidth * s) / 2 + view.panX,
    (view.stageHeight - view.imageHeight * s) / 2 + view.panY,
  ];
}

/** Screen (client) px -> image px. Independent of devicePixelRatio by construction. */
export function screenToImage(
  view: View,
  rect: ScreenRect,
  clientX: number,
  clientY: number,
): [number, number] {
  const [sx, sy] = screenToStage(view, rect, clientX, clientY);
  const s = viewScale(view);
  const [ox, oy] = viewOrigin(view);
  return [(sx - ox) / s, (sy - oy) / s];
}

/** Image px -> screen (client) px; the inverse of `screenToImage`. */
export function imageToScreen(
  view: View,
  rect: ScreenRect,
  x: number,
  y: number,
): [number, number] {
  const [sx, sy] = imageToStage(view, x, y);
  const [kx, ky] = cssTransformRatio(view, rect);
  return [rect.left + sx * kx, rect.top + sy * ky];
}

/** Image px -> stage px (for drawing markers at a constant on-screen size). */
export function imageToStage(view: View, x: number, y: number): [number, number] {
  const s = viewScale(view);
  const [ox, oy] = viewOrigin(view);
  return [ox + x * s, oy + y * s];
}

/** Screen px -> stage px. */
export function screenToStage(
  view: View,
  rect: ScreenRect,
  clientX: number,
  clientY: number,
): [number, number] {
  const [kx, ky] = cssTransformRatio(view, rect);
  return [(clientX - rect.left) / kx, (clientY - rect.top) / ky];
}

/** On-screen size / layout size of the stage (1 unless a CSS transform scales it). */
function cssTransformRatio(view: View, rect: ScreenRect): [number, number] {
  const kx = rect.width > 0 && view.stageWidth > 0 ? rect.width / view.stageWidth : 1;
  const ky = rect.height > 0 && view.stageHeight > 0 ? rect.height / view.stageHeight : 1;
  return [kx, ky];
}

/** Backing-store size (device px) of a canvas that covers the stage. */
export function backingSize(view: View, dpr: number): [number, number] {
  return [
    Math.max(1, Math.round(view.stageWidth * dpr)),
    Math.max(1, Math.round(view.stageHeight * dpr)),
  ];
}

/**
 * `ctx.setTransform(a, 0, 0, d, e, f)` arguments that map image px onto a canvas whose
 * backing store is `backingWidth x backingHeight` and whose CSS size is the stage size.
 * Uses the exact backing/CSS ratio (the backing size is rounded), so drawing stays aligned
 * with `imageToStage` at any devicePixelRatio.
 */
export function backingTransform(
  view: View,
  backingWidth: number,
  backingHeight: number,
): { a: number; d: number; e: number; f: number } {
  const bx = view.stageWidth > 0 ? backingWidth / view.stageWidth : 1;
  const by = view.stageHeight > 0 ? backingHeight / view.stageHeight : 1;
  const s = viewScale(view);
  const [ox, oy] = viewOrigin(view);
  return { a: s * bx, d: s * by, e: ox * bx, f: oy * by };
}

/**
 * Keep the image covering the stage along every axis where it is larger than the stage,
 * and centred along an axis where it is smaller.
 */
export function clampView(view: View): View {
  const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, Number.isFinite(view.zoom) ? view.zoom : 1));
  const v = { ...view, zoom };
  const s = viewScale(v);
  const slackX = (v.imageWidth * s - v.stageWidth) / 2;
  const slackY = (v.imageHeight * s - v.stageHeight) / 2;
  v.panX = slackX > 0 ? Math.min(slackX, Math.max(-slackX, v.panX)) : 0;
  v.panY = slackY > 0 ? Math.min(slackY, Math.max(-slackY, v.panY)) : 0;
  return v;
}

/** Zoom by `factor` keeping the image point under stage position (sx, sy) fixed. */
export function zoomAt(view: View, factor: number, sx: number, sy: number): View {
  const s0 = viewScale(view);
  const [ox, oy] = viewOrigin(view);
  const ix = (sx - ox) / s0;
  const iy = (sy - oy) / s0;
  const zoom = Math.min(MAX_ZOOM, Math.max(MIN_ZOOM, view.zoom * factor));
  const next = { ...view, zoom, panX: 0, panY: 0 };
  const s1 = viewScale(next);
  const [cx, cy] = viewOrigin(next); // centred origin at the new zoom
  next.panX = sx - ix * s1 - cx;
  next.panY = sy - iy * s1 - cy;
  return clampView(next);
}

/** Pan by (dx, dy) stage px. */
export function panBy(view: View, dx: number, dy: number): View {
  return clampView({ ...view, panX: view.panX + dx, panY: view.panY + dy });
}

/** Back to the fitted, centred view. */
export function resetView(view: View): View {
  return { ...view, zoom: 1, panX: 0, panY: 0 };
}

/**
 * Stage size (integer CSS px) for an image shown at most `maxWidth` wide and `maxHeight`
 * tall, keeping the aspect ratio and never enlarged past `maxScale` CSS px per image px.
 */
export function fitStage(
  maxWidth: number,
  imageWidth: number,
  imageHeight: number,
  maxHeight: number,
  maxScale = Infinity,
): [number, number] {
  const cw = Math.max(1, Math.floor(maxWidth));
  if (imageWidth <= 0 || imageHeight <= 0) return [cw, Math.min(Math.round(cw * 0.5), maxHeight)];
  const s = Math.min(cw / imageWidth, maxHeight / imageHeight, maxScale);
  return [Math.max(1, Math.round(imageWidth * s)), Math.max(1, Math.round(imageHeight * s))];
}

/** Share of the viewport's height the image may take by default (the rest: the controls). */
export const VIEWPORT_SHARE = 0.55;
/** The default height cap never goes below this (CSS px), even in a tiny window. */
export const MIN_AUTO_HEIGHT = 200;

export interface StageLimits {
  /** Width available in the cell (CSS px). */
  containerWidth: number;
  /** The browser window's inner height (CSS px). */
  viewportHeight: number;
  /** The user's size options (CSS px; 0 or less: automatic). */
  width?: number;
  height?: number;
}

/**
 * The stage size the widget uses. Automatic: the image at its own size (1 CSS px per image
 * px, never enlarged) or smaller to fit the cell's width and `VIEWPORT_SHARE` of the
 * window's height, so the toolbar, candidates, object list and status line fit on screen
 * with it. `width`/`height` options replace those bounds (and may enlarge the image; with
 * one of them only, the other side follows the aspect ratio; never wider than the cell). Zoom
 * (1..MAX_ZOOM, relative to this size) and pan then reach every pixel.
 */
export function stageSize(imageWidth: number, imageHeight: number, limits: StageLimits): [number, number] {
  const userW = limits.width !== undefined && limits.width > 0 ? limits.width : 0;
  const userH = limits.height !== undefined && limits.height > 0 ? limits.height : 0;
  const maxW = userW > 0 ? Math.min(userW, limits.containerWidth) : limits.containerWidth;
  const autoH = Math.max(MIN_AUTO_HEIGHT, Math.round(limits.viewportHeight * VIEWPORT_SHARE));
  // One option given: that one bounds the size (the other side follows the aspect ratio).
  const maxH = userH > 0 ? userH : userW > 0 ? Infinity : autoH;
  const maxScale = userW > 0 || userH > 0 ? Infinity : 1;
  return fitStage(maxW, imageWidth, imageHeight, maxH, maxScale);
}

/** Whether an image-px point lies on the image. */
export function insideImage(view: View, x: number, y: number): boolean {
  return x >= 0 && y >= 0 && x <= view.imageWidth && y <= view.imageHeight;
}

/** Clamp an image-px point onto the image. */
export function clampToImage(view: View, x: number, y: number): [number, number] {
  return [
    Math.min(view.imageWidth, Math.max(0, x)),
    Math.min(view.imageHeight, Math.max(0, y)),
  ];
}
