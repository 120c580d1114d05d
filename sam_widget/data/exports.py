"""Exports of an annotation project to training formats, and the COCO import.

Every function takes an open :class:`~sam_widget.data.store.Project`; every file is written
atomically (:mod:`sam_widget.data.atomic`). The class list of the exports is the project's
categories in order, plus ``"object"`` at the end when some object has no category (or the
existing ``"object"`` category). Objects with an empty mask are left out (counted in the
returned ``"skipped"``). Per-image files are named after the image's stored path with ``/``
replaced by ``__`` (unique within a project).

- :func:`export_coco`: one COCO instances JSON: ``images`` (id, file_name, height, width),
  ``categories`` (id = class index + 1, name, color), ``annotations`` (segmentation as
  compressed RLE or pixel-edge polygons, ``bbox`` XYWH, ``area`` in pixels, ``iscrowd`` 0,
  ``score`` = predicted IoU when known, and a ``"sam_widget"`` dict with the source, prompts,
  strokes, scores and weights id so :func:`import_coco` restores them).
- :func:`export_sa1b`: one JSON per image in SA-1B's layout (``image``, ``annotations`` with
  COCO RLE, bbox, area, predicted_iou, stability_score, point_coords, crop_box).
- :func:`export_yolo`: Ultralytics' segmentation layout: ``images/`` (copies), ``labels/``
  (one line per outer outline: class index, then x y pairs normalised to [0, 1]; a mask in
  several parts gives several lines, holes are not representable) and ``data.yaml``.
- :func:`export_masks`: per image a 16-bit instance label PNG (object k in
  :meth:`Project.objects` order has value k; later objects win on overlaps) and a 16-bit
  semantic PNG (class index + 1; 0 is background), plus ``classes.json``.
- :func:`import_coco`: adds a COCO file's images (found under ``root``) and annotations;
  annotations whose mask is already stored on that image are not added twice.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
from PIL import Image

from ..engine.amg.polygons import mask_to_polygons
from .atomic import atomic_write_bytes, atomic_write_text, atomic_write_with
from .io import encode_coco_rle, read_coco_json, write_label_png
from .store import Project
from .store_records import ImageRecord, ObjectRecord

__all__ = [
    "class_names",
    "export_coco",
    "export_masks",
    "export_sa1b",
    "export_yolo",
    "import_coco",
]

_DEFAULT_CLASS = "object"


def class_names(project: Project) -> list[str]:
    """The class list of the exports: the categories, then ``"object"`` if needed."""
    names = [c.name for c in project.categories()]
    unlabelled = project._read("SELECT 1 FROM objects WHERE category_id IS NULL LIMIT 1")
    if unlabelled and _DEFAULT_CLASS not in names:
        names.append(_DEFAULT_CLASS)
    return names


def _class_index(obj: ObjectRecord, names: list[str]) -> int:
    return names.index(obj.category if obj.category is not None else _DEFAULT_CLASS)


def _flat_name(image: ImageRecord) -> str:
    return image.path.lstrip("/").replace("/", "__")


def _folder(folder: str | os.PathLike[str], name: str = "folder") -> Path:
    if not isinstance(folder, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or path, got {type(folder).__name__}")
    out = Path(os.fspath(folder))
    out.mkdir(parents=True, exist_ok=True)
    return out


def _objects(project: Project, image: ImageRecord) -> tuple[list[ObjectRecord], int]:
    objs = project.objects(image.id)
    kept = [o for o in objs if o.area > 0]
    return kept, len(objs) - len(kept)


def export_coco(
    project: Project,
    path: str | os.PathLike[str],
    segmentation: Literal["rle", "polygon"] = "rle",
) -> dict[str, int]:
    """Write the project as one COCO instances JSON; returns the counts written."""
    if segmentation not in ("rle", "polygon"):
        raise ValueError(f"segmentation must be 'rle' or 'polygon', got {segmentation!r}")
    names = class_names(project)
    colors = {c.name: c.color for c in project.categories()}
    images, annotations, skipped = [], [], 0
    for img in project.images():
        images.append({"id": img.id, "file_name": img.path, "height": img.height,
                       "width": img.width, "sha256": img.sha256, "status": img.status})  # fmt: skip
        objs, n_empty = _objects(project, img)
        skipped += n_empty
        for o in objs:
            seg: Any = o.rle if segmentation == "rle" else mask_to_polygons(o.mask)
            ann: dict[str, Any] = {
                "id": o.id, "image_id": img.id, "category_id": _class_index(o, names) + 1,
                "segmentation": seg, "area": o.area, "bbox": o.bbox, "iscrowd": 0,
                "sam_widget": {"category": o.category, "source": o.source,
                               "prompts": o.prompts, "strokes": o.strokes,
                               "predicted_iou": o.predicted_iou,
                               "stability_score": o.stability_score,
                               "weights_id": o.weights_id, "extra": o.extra},
            }  # fmt: skip
            if o.predicted_iou is not None:
                ann["score"] = o.predicted_iou
            annotations.append(ann)
    categories = [
        {"id": k + 1, "name": n, "supercategory": "", "color": colors.get(n, "#ffffff")}
        for k, n in enumerate(names)
    ]
    for cat in categories:
        if cat["name"] not in colors:  # the class of objects with no category
            cat["sam_widget_unlabelled"] = True
    data = {"images": images, "annotations": annotations, "categories": categories}
    atomic_write_text(path, json.dumps(data))
    return {"images": len(images), "annotations": len(annotations), "skipped": skipped}


def export_sa1b(project: Project, folder: str | os.PathLike[str]) -> dict[str, int]:
    """Write one SA-1B-style JSON per image into ``folder``; returns the counts written."""
    out = _folder(folder)
    n_ann = skipped = 0
    for img in project.images():
        objs, n_empty = _objects(project, img)
        skipped += n_empty
        anns = []
        for o in objs:
            points = o.extra.get("point_coords")
            if points is None:
                pts, labels = o.prompts.get("points") or [], o.prompts.get("labels") or []
                points = [p for k, p in enumerate(pts) if k >= len(labels) or labels[k] == 1]
            crop = o.extra.get("crop_box", [0, 0, img.width, img.height])
            anns.append({"id": o.id, "segmentation": o.rle, "bbox": o.bbox, "area": o.area,
                         "predicted_iou": o.predicted_iou, "stability_score": o.stability_score,
                         "point_coords": points, "crop_box": crop})  # fmt: skip
        record = {
            "image": {"image_id": img.id, "width": img.width, "height": img.height,
                      "file_name": img.path},
            "annotations": anns,
        }  # fmt: skip
        atomic_write_text(out / f"{_flat_name(img)}.json", json.dumps(record))
        n_ann += len(anns)
    return {"images": len(project.images()), "annotations": n_ann, "skipped": skipped}


def _outer_rings(mask: np.ndarray) -> list[list[int]]:
    """Outer outlines (positive shoelace area with y down: clockwise on screen)."""
    rings = []
    for ring in mask_to_polygons(mask):
        x = np.asarray(ring[0::2], dtype=np.float64)
        y = np.asarray(ring[1::2], dtype=np.float64)
        if float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y)) > 0:
            rings.append(ring)
    return rings


def export_yolo(project: Project, folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Write the Ultralytics YOLO segmentation layout into ``folder``; returns counts and
    ``failed``: (path, reason) of images left out because their file is missing or changed
    since it was added (its masks belong to other pixels)."""
    out = _folder(folder)
    (out / "images").mkdir(exist_ok=True)
    (out / "labels").mkdir(exist_ok=True)
    names = class_names(project)
    n_lines = skipped = 0
    failed: list[tuple[str, str]] = []
    for img in project.images():
        src = project.resolve(img)
        stem = _flat_name(img)
        try:
            data = src.read_bytes()
        except OSError as err:
            failed.append((img.path, f"cannot read the image file: {err}"))
            continue
        if hashlib.sha256(data).hexdigest() != img.sha256:
            failed.append((img.path, "the image file changed since it was added"))
            continue
        atomic_write_bytes(out / "images" / stem, data)
        objs, n_empty = _objects(project, img)
        skipped += n_empty
        lines = []
        for o in objs:
            cls = _class_index(o, names)
            for ring in _outer_rings(o.mask):
                xs = np.asarray(ring[0::2], dtype=np.float64) / img.width
                ys = np.asarray(ring[1::2], dtype=np.float64) / img.height
                # (N,) x, (N,) y -> N x 2 -> (2N,) x0 y0 x1 y1 ...
                coords = np.stack([xs, ys], axis=1).reshape(-1)
                lines.append(" ".join([str(cls), *(f"{v:.6f}" for v in coords)]))
        n_lines += len(lines)
        text = "".join(line + "\n" for line in lines)
        atomic_write_text(out / "labels" / (Path(stem).stem + ".txt"), text)
    yaml = [f"path: {json.dumps(str(out.absolute()))}", "train: images", "val: images",
            f"nc: {len(names)}", "names:"]  # fmt: skip
    yaml += [f"  {k}: {json.dumps(n)}" for k, n in enumerate(names)]
    atomic_write_text(out / "data.yaml", "\n".join(yaml) + "\n")
    n_images = len(project.images()) - len(failed)
    return {"images": n_images, "lines": n_lines, "skipped": skipped, "failed": failed}


def export_masks(project: Project, folder: str | os.PathLike[str]) -> dict[str, int]:
    """Write per image ``<name>.instances.png`` and ``<name>.semantic.png`` (16-bit) into
    ``folder``, and ``classes.json`` (value -> class name); returns counts."""
    out = _folder(folder)
    names = class_names(project)
    n_img = 0
    for img in project.images():
        objs = project.objects(img.id)
        masks = [o.mask for o in objs]
        stem = _flat_name(img)

        def write_instances(
            fh: IO[bytes], m: list[np.ndarray] = masks, i: ImageRecord = img
        ) -> None:
            write_label_png(fh, m, bit_depth=16, overlap="last", height=i.height, width=i.width)

        atomic_write_with(out / f"{stem}.instances.png", write_instances)
        semantic = np.zeros((img.height, img.width), dtype=np.uint16)
        for o, m in zip(objs, masks, strict=True):  # later objects win, as in the instances
            semantic[m] = _class_index(o, names) + 1
        save = functools.partial(Image.fromarray(semantic).save, format="PNG")
        atomic_write_with(out / f"{stem}.semantic.png", save)
        n_img += 1
    classes = {"0": "background", **{str(k + 1): n for k, n in enumerate(names)}}
    atomic_write_text(out / "classes.json", json.dumps(classes, indent=1))
    return {"images": n_img, "classes": len(names)}


def _find_file(file_name: str, roots: list[Path]) -> Path | None:
    p = Path(file_name)
    if p.is_absolute():
        return p if p.is_file() else None
    for root in roots:
        if (root / p).is_file():
            return root / p
    return None


def import_coco(
    project: Project,
    path: str | os.PathLike[str],
    root: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Add a COCO instances file's images and annotations to the project.

    Image files are looked up by ``file_name`` under ``root``, then the project's root, then
    the COCO file's folder. Returns counts and ``failed``: (file_name, reason) pairs for
    images that could not be added (the rest are imported).
    """
    file = Path(os.fspath(path))
    with open(file, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict) or not isinstance(data.get("images"), list):
        raise ValueError(f"{str(file)!r} is not a COCO instances file (no 'images' list)")
    roots = [Path(os.fspath(root))] if root is not None else []
    roots += [project.root, file.parent]
    cat_names = {c["id"]: c["name"] for c in data.get("categories", [])}
    for c in data.get("categories", []):
        if c.get("sam_widget_unlabelled"):
            continue
        color = c.get("color")
        valid = isinstance(color, str) and len(color) == 7 and color.startswith("#")
        project.add_category(c["name"], color if valid else None)
    failed: list[tuple[str, str]] = []
    n_images = n_ann = n_dup = 0
    for im in data["images"]:
        name = str(im.get("file_name", ""))
        found = _find_file(name, roots)
        if found is None:
            failed.append((name, "image file not found"))
            continue
        res = project.add_images([found])
        if res.failed:
            failed.append((name, res.failed[0][1]))
            continue
        rec = (res.added or res.existing)[0]
        if (rec.height, rec.width) != (int(im["height"]), int(im["width"])):
            failed.append((name, f"file is {rec.width}x{rec.height}, COCO says "
                                 f"{im['width']}x{im['height']}"))  # fmt: skip
            continue
        n_images += 1
        coco = read_coco_json(data, image_id=im["id"])
        stored = {json.dumps(o.rle) for o in project.objects(rec.id)}
        for mask, ann in zip(coco.masks, coco.annotations, strict=True):
            key = json.dumps(encode_coco_rle(mask))
            if key in stored:  # already in the project (an earlier import or export source)
                n_dup += 1
                continue
            meta = ann.get("sam_widget") or {}
            project.add_object(
                rec.id, mask,
                category=meta["category"] if "category" in meta
                else cat_names.get(ann.get("category_id")),
                prompts=meta.get("prompts"), strokes=meta.get("strokes"),
                source=meta.get("source", "manual"),
                predicted_iou=meta.get("predicted_iou", ann.get("score")),
                stability_score=meta.get("stability_score"),
                weights_id=meta.get("weights_id"), extra=meta.get("extra"),
            )  # fmt: skip
            stored.add(key)
            n_ann += 1
    return {"images": n_images, "annotations": n_ann, "duplicates": n_dup, "failed": failed}
