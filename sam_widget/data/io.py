"""Export and import of masks: COCO RLE, uncompressed RLE, PNG label maps, polygons, COCO JSON.

What round-trips exactly (export -> import gives the identical boolean masks):

- **RLE** (:func:`encode_rle`, :func:`encode_coco_rle`, :func:`decode_rle`): always. The
  compressed form is byte-for-byte what pycocotools writes (column-major counts, its ASCII
  string), stored as ``str`` so it can go straight into JSON; see :mod:`sam_widget.amg.rle`.
- **Label-map PNGs** (:func:`write_label_png`, :func:`read_label_png`): pixel value k is
  object k (1-based), 0 is background. A label map holds one object per pixel, so masks must
  not overlap (``overlap="error"``, the default) for an exact round trip; ``"first"`` /
  ``"last"`` resolve overlaps by letting the earlier / later mask win. The number of objects
  is stored in a ``tEXt`` chunk, so empty masks survive too. 8-bit PNGs hold up to 255
  objects, 16-bit ones up to 65535; ``bit_depth=None`` picks the smaller that fits.
- **Polygons** (:func:`mask_to_polygons`, :func:`polygons_to_mask`): we trace pixel *edges*,
  not pixel centres: pixel (row r, col c) is the unit square [c, c+1] x [r, r+1], and every
  ring runs along the integer grid between set and unset pixels. Outer outlines are
  clockwise as seen on screen (y down), holes counter-clockwise; diagonal-only neighbours
  get separate rings. Reading back fills the pixels whose centre is inside under the
  even-odd rule, which gives back the identical mask, holes included. Tools that rasterize
  COCO polygons differently (pycocotools fills each ring and unions them, so it fills holes
  and shifts edges by up to a pixel) will not reproduce the mask exactly: prefer RLE.
- **COCO JSON** (:func:`to_coco_json`, :func:`write_coco_json`, :func:`read_coco_json`): one
  image, its annotations and categories; segmentations as compressed RLE (default), or
  polygons as above. ``bbox`` is COCO's ``[x, y, width, height]`` with width =
  ``x_max - x_min + 1`` (pixels covered, as pycocotools computes it) and ``[0, 0, 0, 0]``
  for an empty mask; ``area`` is the pixel count; ``iscrowd`` is 0.

Every file written to a path goes through :mod:`sam_widget.data.atomic` (temp file in the same
folder, fsync, ``os.replace``): a write that fails part-way leaves an existing file untouched.

Masks given to the writers may be an (N, H, W) array, or a sequence of (H, W) arrays, RLE
dicts, or records from :class:`~sam_widget.SamAutomaticMaskGenerator` (any output_mode).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

import numpy as np
from PIL import Image, PngImagePlugin

from ..engine.amg.polygons import mask_to_polygons, polygons_to_mask
from ..engine.amg.rle import (
    check_mask,
    counts_from_string,
    counts_to_string,
    mask_to_rle,
    rle_area,
    rle_to_mask,
    rle_to_uncompressed,
)
from .atomic import atomic_write_text, atomic_write_with

__all__ = [
    "CocoMasks",
    "compress_rle",
    "counts_from_string",
    "counts_to_string",
    "decode_rle",
    "encode_coco_rle",
    "encode_rle",
    "label_map_to_masks",
    "mask_to_polygons",
    "masks_to_label_map",
    "polygons_to_mask",
    "read_coco_json",
    "read_label_png",
    "rle_area",
    "to_coco_json",
    "write_coco_json",
    "write_label_png",
]

_PathOrFile = str | os.PathLike[str] | IO[bytes]
_PNG_COUNT_KEY = "sam_widget:objects"


# ----------------------------------------------------------------------------------- RLE


def encode_rle(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) mask -> uncompressed RLE ``{"size": [H, W], "counts": [int, ...]}``."""
    return mask_to_rle(mask)


def encode_coco_rle(mask: np.ndarray) -> dict[str, Any]:
    """(H, W) mask -> compressed COCO RLE ``{"size": [H, W], "counts": str}``."""
    return compress_rle(mask_to_rle(mask))


def compress_rle(rle: dict[str, Any]) -> dict[str, Any]:
    """Uncompressed (or compressed) RLE -> ``{"size": [H, W], "counts": str}``."""
    plain = rle_to_uncompressed(rle)
    return {"size": plain["size"], "counts": counts_to_string(plain["counts"])}


def decode_rle(rle: dict[str, Any]) -> np.ndarray:
    """Any RLE (counts as list, str or bytes) -> (H, W) bool mask."""
    return rle_to_mask(rle)


def _to_mask(item: Any, name: str) -> np.ndarray:
    if isinstance(item, dict) and "segmentation" in item:  # an automatic-mask record
        item = item["segmentation"]
    if isinstance(item, dict):
        return rle_to_mask(item)
    return check_mask(item, name)


def _mask_stack(masks: Any, height: int | None = None, width: int | None = None) -> np.ndarray:
    """Normalize the accepted mask containers to an (N, H, W) bool array."""
    if isinstance(masks, np.ndarray):
        if masks.ndim != 3:
            raise ValueError(f"masks must be an (N, H, W) array, got shape {masks.shape}")
        stack = (
            np.stack([_to_mask(m, f"masks[{i}]") for i, m in enumerate(masks)])
            if len(masks)
            else np.zeros(masks.shape, dtype=bool)
        )
    elif isinstance(masks, Sequence) and not isinstance(masks, (str, bytes)):
        items = [_to_mask(m, f"masks[{i}]") for i, m in enumerate(masks)]
        shapes = {m.shape for m in items}
        if len(shapes) > 1:
            raise ValueError(f"all masks must have the same shape, got {sorted(shapes)}")
        if items:
            stack = np.stack(items)
        elif height is None or width is None:
            raise ValueError("with no masks, pass height and width to give the image size")
        else:
            stack = np.zeros((0, height, width), dtype=bool)
    else:
        raise TypeError(
            "masks must be an (N, H, W) array or a sequence of masks, RLEs or mask records, "
            f"got {type(masks).__name__}"
        )
    if height is not None and stack.shape[1] != height:
        raise ValueError(f"masks have height {stack.shape[1]}, but height={height}")
    if width is not None and stack.shape[2] != width:
        raise ValueError(f"masks have width {stack.shape[2]}, but width={width}")
    return stack


# ---------------------------------------------------------------------------- label maps


def masks_to_label_map(
    masks: Any,
    *,
    overlap: Literal["error", "first", "last"] = "error",
    height: int | None = None,
    width: int | None = None,
) -> np.ndarray:
    """Masks -> (H, W) label map (uint8 if it fits, else uint16; 0 = none, k = mask k-1).

    overlap: "error" refuses masks that share a pixel; "first" / "last" let the earlier /
    later mask keep the shared pixels.
    """
    if overlap not in ("error", "first", "last"):
        raise ValueError(f"overlap must be 'error', 'first' or 'last', got {overlap!r}")
    stack = _mask_stack(masks, height, width)
    n = stack.shape[0]
    if n > 65535:
        raise ValueError(f"a label map holds at most 65535 objects, got {n}")
    labels = np.zeros(stack.shape[1:], dtype=np.uint8 if n <= 255 else np.uint16)
    if overlap == "error" and n > 1:
        cover = stack.sum(axis=0, dtype=np.int32)
        if (cover > 1).any():
            r, c = (int(v[0]) for v in np.nonzero(cover > 1))
            both = np.flatnonzero(stack[:, r, c])[:2].tolist()
            raise ValueError(
                f"masks {both[0]} and {both[1]} overlap (e.g. at row {r}, col {c}); a label "
                "map holds one object per pixel: pass overlap='first' or 'last' to choose"
            )
    order = range(n - 1, -1, -1) if overlap == "first" else range(n)
    for k in order:  # later writes win
        labels[stack[k]] = k + 1
    return labels


def label_map_to_masks(label_map: np.ndarray, num_objects: int | None = None) -> np.ndarray:
    """(H, W) integer label map -> (N, H, W) bool masks, mask k-1 = pixels labelled k.

    N = ``num_objects`` if given (must cover every label present), else the largest label.
    """
    labels = np.asarray(label_map)
    if labels.ndim != 2 or labels.dtype.kind not in "iu":
        raise ValueError(
            f"label_map must be a 2-D integer array, got {labels.dtype} {labels.shape}"
        )
    top = int(labels.max()) if labels.size else 0
    if labels.size and int(labels.min()) < 0:
        raise ValueError("label_map must not contain negative labels")
    n = top if num_objects is None else int(num_objects)
    if n < top:
        raise ValueError(f"label_map contains label {top}, but num_objects={n}")
    ids = np.arange(1, n + 1, dtype=np.int64)
    # (N, 1, 1) == (H, W) -> N x H x W
    return labels[None, :, :] == ids[:, None, None]


def write_label_png(
    file: _PathOrFile,
    masks: Any,
    *,
    bit_depth: Literal[8, 16] | None = None,
    overlap: Literal["error", "first", "last"] = "error",
    height: int | None = None,
    width: int | None = None,
) -> None:
    """Write masks as a grayscale label-map PNG (8- or 16-bit; see the module docstring)."""
    stack = _mask_stack(masks, height, width)
    n = stack.shape[0]
    if bit_depth is None:
        bit_depth = 8 if n <= 255 else 16
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8, 16 or None, got {bit_depth!r}")
    if bit_depth == 8 and n > 255:
        raise ValueError(f"an 8-bit label PNG holds at most 255 objects, got {n}; use bit_depth=16")
    if n > 65535:
        raise ValueError(f"a 16-bit label PNG holds at most 65535 objects, got {n}")
    labels = masks_to_label_map(stack, overlap=overlap)
    if stack.shape[1] == 0 or stack.shape[2] == 0:
        raise ValueError(f"cannot write a PNG of size {stack.shape[1]}x{stack.shape[2]}")
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    img = Image.fromarray(labels.astype(dtype))  # mode "L" or "I;16"
    info = PngImagePlugin.PngInfo()
    info.add_text(_PNG_COUNT_KEY, str(n))
    if isinstance(file, (str, os.PathLike)):
        # A path: atomically (a failed write leaves an existing file untouched).
        atomic_write_with(file, lambda fh: img.save(fh, format="PNG", pnginfo=info))
    else:
        img.save(file, format="PNG", pnginfo=info)


def read_label_png(file: _PathOrFile) -> np.ndarray:
    """Read a label-map PNG back as (N, H, W) bool masks.

    N is the object count stored by :func:`write_label_png`, or else the largest label.
    """
    with Image.open(file) as img:
        img.load()
        if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
            raise ValueError(f"a label PNG must be single-channel grayscale, got mode {img.mode}")
        text = getattr(img, "text", {}) or {}
        labels = np.array(img)  # palette images give their indices
    stored = text.get(_PNG_COUNT_KEY)
    num = None
    if stored is not None:
        if not str(stored).isdigit():
            raise ValueError(f"bad {_PNG_COUNT_KEY!r} text chunk in label PNG: {stored!r}")
        num = int(stored)
    return label_map_to_masks(labels.astype(np.int64), num)


# ----------------------------------------------------------------------------- COCO JSON


@dataclass
class CocoMasks:
    """One image read from a COCO JSON file.

    masks: (N, H, W) bool, in annotation order; annotations: the raw annotation dicts (same
    order); image: the ``images`` entry; categories: the file's ``categories`` list.
    """

    image: dict[str, Any]
    masks: np.ndarray
    annotations: list[dict[str, Any]] = field(default_factory=list)
    categories: list[dict[str, Any]] = field(default_factory=list)

    @property
    def category_ids(self) -> list[int]:
        return [int(a["category_id"]) for a in self.annotations]


def _coco_bbox(mask: np.ndarray) -> list[int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return [0, 0, 0, 0]
    x, y = int(cols[0]), int(rows[0])
    return [x, y, int(cols[-1]) - x + 1, int(rows[-1]) - y + 1]


def to_coco_json(
    masks: Any,
    *,
    image_id: int = 1,
    file_name: str = "",
    height: int | None = None,
    width: int | None = None,
    category_id: int = 1,
    category_name: str = "object",
    segmentation: Literal["rle", "polygon"] = "rle",
    scores: Sequence[float] | None = None,
    categories: Sequence[str | None] | None = None,
) -> dict[str, Any]:
    """A COCO dataset dict ``{"images", "annotations", "categories"}`` for one image.

    Every mask becomes one annotation (ids 1..N, instances of one category). Without
    ``categories`` all are of category ``category_id`` / ``category_name``. ``categories``
    (one name or ``None`` per mask) gives each mask its category: one COCO category per
    distinct name, ids from ``category_id`` up in order of first use; ``None`` means
    ``category_name``. ``scores`` (one per mask) are stored as each annotation's ``"score"``.
    """
    if segmentation not in ("rle", "polygon"):
        raise ValueError(f"segmentation must be 'rle' or 'polygon', got {segmentation!r}")
    stack = _mask_stack(masks, height, width)
    n, h, w = stack.shape
    if scores is not None and len(scores) != n:
        raise ValueError(f"scores must have one value per mask ({n}), got {len(scores)}")
    names = _category_names(categories, n, category_name)
    cat_ids = {name: int(category_id) + i for i, name in enumerate(dict.fromkeys(names))}
    annotations = []
    for k in range(n):
        m = stack[k]
        seg: Any = encode_coco_rle(m) if segmentation == "rle" else mask_to_polygons(m)
        ann: dict[str, Any] = {
            "id": k + 1,
            "image_id": int(image_id),
            "category_id": cat_ids[names[k]],
            "segmentation": seg,
            "area": int(m.sum()),
            "bbox": _coco_bbox(m),
            "iscrowd": 0,
        }
        if scores is not None:
            ann["score"] = float(scores[k])
        annotations.append(ann)
    return {
        "images": [{"id": int(image_id), "file_name": file_name, "height": h, "width": w}],
        "annotations": annotations,
        "categories": [{"id": i, "name": name} for name, i in cat_ids.items()],
    }


def _category_names(categories: Any, n: int, default: str) -> list[str]:
    """One category name per mask (``None`` entries and no list at all: ``default``)."""
    if categories is None:
        return [default] * n
    if isinstance(categories, (str, bytes)) or not isinstance(categories, Sequence):
        raise TypeError(
            f"categories must be a sequence of one name (str or None) per mask, "
            f"got {type(categories).__name__}"
        )
    if len(categories) != n:
        raise ValueError(f"categories must have one name per mask ({n}), got {len(categories)}")
    names = []
    for k, c in enumerate(categories):
        if c is not None and (not isinstance(c, str) or not c.strip()):
            raise ValueError(f"categories[{k}] must be a non-empty str or None, got {c!r}")
        names.append(default if c is None else c.strip())
    return names


def write_coco_json(file: str | os.PathLike[str] | IO[str], masks: Any, **kwargs: Any) -> None:
    """Write :func:`to_coco_json` ``(masks, **kwargs)`` to a path or text file object."""
    data = to_coco_json(masks, **kwargs)
    if isinstance(file, (str, os.PathLike)):
        atomic_write_text(file, json.dumps(data))  # a failed write keeps an existing file
    else:
        json.dump(data, file)


def _decode_segmentation(seg: Any, h: int, w: int, where: str) -> np.ndarray:
    if isinstance(seg, dict):
        size = [int(v) for v in seg.get("size", [])]
        if size != [h, w]:
            raise ValueError(f"{where}: RLE size {seg.get('size')} != image size [{h}, {w}]")
        return rle_to_mask(seg)
    if isinstance(seg, list):
        return polygons_to_mask(seg, h, w)
    raise ValueError(f"{where}: segmentation must be an RLE dict or a list of polygons")


def read_coco_json(
    source: str | os.PathLike[str] | IO[str] | dict[str, Any], *, image_id: int | None = None
) -> CocoMasks:
    """Read the masks of one image from a COCO JSON file (path, text file or parsed dict).

    ``image_id`` picks the image; it may be left out when the file holds exactly one.
    """
    if isinstance(source, dict):
        data = source
    elif isinstance(source, (str, os.PathLike)):
        with open(source, encoding="utf-8") as fh:
            data = json.load(fh)
    else:
        data = json.load(source)
    images = data.get("images") if isinstance(data, dict) else None
    if not isinstance(images, list) or not images:
        raise ValueError("COCO JSON must have a non-empty 'images' list")
    if image_id is None:
        if len(images) != 1:
            raise ValueError(f"the file has {len(images)} images: pass image_id to pick one")
        image = images[0]
    else:
        found = [im for im in images if im.get("id") == image_id]
        if not found:
            raise ValueError(f"no image with id {image_id} in the file")
        image = found[0]
    h, w = int(image["height"]), int(image["width"])
    anns = [a for a in data.get("annotations", []) if a.get("image_id") == image["id"]]
    masks = np.zeros((len(anns), h, w), dtype=bool)
    for k, ann in enumerate(anns):
        masks[k] = _decode_segmentation(ann["segmentation"], h, w, f"annotation {ann.get('id')}")
    return CocoMasks(image, masks, anns, list(data.get("categories", [])))
