import { describe, expect, it } from "vitest";
import {
  backingSize,
  backingTransform,
  clampToImage,
  clampView,
  fitStage,
  imageToScreen,
  imageToStage,
  MAX_ZOOM,
  panBy,
  resetView,
  type ScreenRect,
  screenToImage,
  stageSize,
  VIEWPORT_SHARE,
  type View,
  viewScale,
  zoomAt,
} from "../src/coords";

function fitted(iw: number, ih: number, sw: number, sh: number): View {
  return { imageWidth: iw, imageHeight: ih, stageWidth: sw, stageHeight: sh, zoom: 1, panX: 0, panY: 0 };
}
const rectOf = (v: View, left = 37, top = 211): ScreenRect => ({ left, top, width: v.stageWidth, height: v.stageHeight });

describe("screenToImage / imageToScreen", () => {
  it("maps the stage corners onto the image corners when fitted", () => {
    // 1200 x 800 image shown at 600 x 400 CSS px, stage at (37, 211) on screen.
    const v = fitted(1200, 800, 600, 400);
    const r = rectOf(v);
    expect(screenToImage(v, r, 37, 211)).toEqual([0, 0]);
    expect(screenToImage(v, r, 637, 611)).toEqual([1200, 800]);
    expect(screenToImage(v, r, 337, 411)).toEqual([600, 400]);
    expect(imageToScreen(v, r, 1200, 0)).toEqual([637, 211]);
    expect(imageToScreen(v, r, 0, 800)).toEqual([37, 611]);
  });

  it("round-trips at many zooms, pans and stage sizes (non-square images)", () => {
    const cases: [number, number, number, number][] = [
      [640, 480, 320, 240],
      [333, 1001, 120, 360.7],
      [4000, 17, 900, 3.825],
      [1, 1, 50, 50],
    ];
    for (const [iw, ih, sw, sh] of cases) {
      for (const zoom of [1, 1.7, 4, 31]) {
        const v = clampView({ ...fitted(iw, ih, sw, sh), zoom, panX: 13.5, panY: -7.25 });
        const r = rectOf(v, -20.5, 1000);
        for (const [x, y] of [
          [0, 0],
          [iw, ih],
          [iw / 3, ih * 0.9],
          [0.5, ih - 0.5],
        ]) {
          const [cx, cy] = imageToScreen(v, r, x, y);
          const [bx, by] = screenToImage(v, r, cx, cy);
          expect(bx).toBeCloseTo(x, 6);
          expect(by).toBeCloseTo(y, 6);
        }
      }
    }
  });

  it("keeps the image point under the pointer fixed when zooming there", () => {
    const v0 = fitted(1000, 500, 500, 250);
    const r = rectOf(v0, 10, 20);
    const clientX = 10 + 400;
    const clientY = 20 + 60;
    const before = screenToImage(v0, r, clientX, clientY); // (800, 120)
    expect(before).toEqual([800, 120]);
    const v1 = zoomAt(v0, 3, 400, 60);
    expect(v1.zoom).toBe(3);
    const after = screenToImage(v1, r, clientX, clientY);
    expect(after[0]).toBeCloseTo(800, 9);
    expect(after[1]).toBeCloseTo(120, 9);
    // and the scale really changed: one CSS px now spans a third of the image px it did
    const next = screenToImage(v1, r, clientX + 1, clientY);
    expect(next[0] - after[0]).toBeCloseTo(2 / 3, 9); // 1000/500 image px per CSS px / 3
  });

  it("pans by whole stage pixels when zoomed and clamps at the image edges", () => {
    const v = zoomAt(fitted(200, 100, 200, 100), 2, 0, 0); // top-left corner pinned
    const r = rectOf(v, 0, 0);
    expect(screenToImage(v, r, 0, 0)).toEqual([0, 0]);
    const moved = panBy(v, -50, -20); // drag the image left/up by 50/20 CSS px
    const [x, y] = screenToImage(moved, r, 0, 0);
    expect(x).toBeCloseTo(25, 9); // 2 CSS px per image px at zoom 2
    expect(y).toBeCloseTo(10, 9);
    const far = panBy(moved, -10000, -10000);
    expect(screenToImage(far, r, 200, 100)).toEqual([200, 100]); // bottom-right edge, no further
    expect(panBy(resetView(v), 30, 30)).toMatchObject({ panX: 0, panY: 0 }); // nothing to pan at fit
  });

  it("accounts for a CSS transform scaling the stage on screen", () => {
    const v = fitted(800, 600, 400, 300);
    const r: ScreenRect = { left: 100, top: 50, width: 200, height: 150 }; // shown at half size
    expect(screenToImage(v, r, 300, 200)).toEqual([800, 600]);
    const [cx, cy] = imageToScreen(v, r, 400, 300);
    expect([cx, cy]).toEqual([200, 125]);
  });

  it("is independent of devicePixelRatio; the backing transform agrees with it at DPR 1, 2, 3", () => {
    const v = clampView({ ...fitted(1280, 720, 640.5, 360.3), zoom: 2.5, panX: 40, panY: -12 });
    const r = rectOf(v, 5, 7);
    for (const dpr of [1, 2, 3, 1.25]) {
      const [bw, bh] = backingSize(v, dpr);
      expect(bw).toBe(Math.round(640.5 * dpr));
      expect(bh).toBe(Math.round(360.3 * dpr));
      const t = backingTransform(v, bw, bh);
      for (const [x, y] of [
        [0, 0],
        [1280, 720],
        [300.25, 611],
      ]) {
        // image px -> backing px via the transform, then backing px -> screen px by CSS size
        const devX = t.a * x + t.e;
        const devY = t.d * y + t.f;
        const screenX = r.left + (devX * v.stageWidth) / bw;
        const screenY = r.top + (devY * v.stageHeight) / bh;
        const [ex, ey] = imageToScreen(v, r, x, y);
        expect(screenX).toBeCloseTo(ex, 9);
        expect(screenY).toBeCloseTo(ey, 9);
        const [ix, iy] = screenToImage(v, r, screenX, screenY);
        expect(ix).toBeCloseTo(x, 6);
        expect(iy).toBeCloseTo(y, 6);
      }
    }
  });
});

describe("view helpers", () => {
  it("fits the container width keeping the aspect ratio, capped in height", () => {
    expect(fitStage(800, 1600, 1200, 10000)).toEqual([800, 600]);
    expect(fitStage(800, 100, 1000, 500)).toEqual([50, 500]);
    expect(fitStage(333.9, 640, 480, 1000)).toEqual([333, 250]);
  });

  it("never enlarges the image by default and keeps the stage within a share of the window", () => {
    // The first-use trial: a 512 x 512 image in an 850 px wide cell was blown up to 850 x 850.
    expect(stageSize(512, 512, { containerWidth: 850, viewportHeight: 1000 })).toEqual([512, 512]);
    // A large photo on a 1000 px screen: at most VIEWPORT_SHARE of the height.
    const [w, h] = stageSize(2048, 1536, { containerWidth: 1000, viewportHeight: 1000 });
    expect(h).toBe(Math.round(1000 * VIEWPORT_SHARE));
    expect(w).toBe(Math.round((h * 2048) / 1536));
    expect(h + 200).toBeLessThanOrEqual(1000); // room for toolbar, candidates, objects, status
    // A narrow cell still wins over the height cap.
    expect(stageSize(2048, 1536, { containerWidth: 400, viewportHeight: 1000 })).toEqual([400, 300]);
    // A tiny window keeps a usable minimum.
    expect(stageSize(2000, 2000, { containerWidth: 900, viewportHeight: 100 })[1]).toBe(200);
  });

  it("takes width/height options, which may enlarge a small image", () => {
    expect(stageSize(512, 512, { containerWidth: 850, viewportHeight: 1000, width: 800 })).toEqual([800, 800]);
    expect(stageSize(512, 256, { containerWidth: 850, viewportHeight: 1000, height: 128 })).toEqual([256, 128]);
    // never wider than the cell
    expect(stageSize(512, 512, { containerWidth: 300, viewportHeight: 1000, width: 800 })).toEqual([300, 300]);
    // 0 means automatic
    expect(stageSize(512, 512, { containerWidth: 850, viewportHeight: 1000, width: 0, height: 0 })).toEqual([512, 512]);
  });

  it("zoom and pan reach every pixel of a downscaled image", () => {
    const [sw, sh] = stageSize(4000, 3000, { containerWidth: 900, viewportHeight: 900 });
    const base = fitted(4000, 3000, sw, sh);
    // At full zoom an image pixel is larger than a stage pixel...
    expect(viewScale({ ...base, zoom: MAX_ZOOM })).toBeGreaterThan(1);
    // ...and every pixel, corners included, can be brought under the pointer.
    for (const [x, y] of [[0.5, 0.5], [3999.5, 2999.5], [3999.5, 0.5], [1234.5, 2345.5]]) {
      let v = base;
      for (let i = 0; i < 20; i++) {
        const [sx, sy] = imageToStage(v, x, y);
        v = zoomAt(v, 1.5, Math.min(sw, Math.max(0, sx)), Math.min(sh, Math.max(0, sy)));
      }
      expect(v.zoom).toBe(MAX_ZOOM);
      const [sx, sy] = imageToStage(v, x, y);
      expect(sx).toBeGreaterThanOrEqual(0);
      expect(sx).toBeLessThanOrEqual(sw);
      expect(sy).toBeGreaterThanOrEqual(0);
      expect(sy).toBeLessThanOrEqual(sh);
      const r = rectOf(v);
      const [ix, iy] = screenToImage(v, r, ...imageToScreen(v, r, x, y));
      expect(ix).toBeCloseTo(x, 6);
      expect(iy).toBeCloseTo(y, 6);
    }
  });

  it("clamps the zoom range and centres an image smaller than the stage", () => {
    expect(clampView({ ...fitted(10, 10, 100, 100), zoom: 0.1 }).zoom).toBe(1);
    expect(clampView({ ...fitted(10, 10, 100, 100), zoom: 1e6 }).zoom).toBe(MAX_ZOOM);
    // A 100 x 10 image in a 100 x 100 stage: letterboxed, centred vertically.
    const v = fitted(100, 10, 100, 100);
    expect(imageToStage(v, 0, 0)).toEqual([0, 45]);
    expect(clampView({ ...v, panY: 30 }).panY).toBe(0);
  });

  it("clamps points onto the image", () => {
    const v = fitted(50, 40, 50, 40);
    expect(clampToImage(v, -3, 41)).toEqual([0, 40]);
    expect(clampToImage(v, 12.5, 7)).toEqual([12.5, 7]);
  });
});
