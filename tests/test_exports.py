"""Project exports (COCO, SA-1B, YOLO, label PNGs) and the COCO import."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from scipy import ndimage

from sam_widget.data.exports import (
    export_coco,
    export_masks,
    export_sa1b,
    export_yolo,
    import_coco,
)
from sam_widget.data.io import read_coco_json, read_label_png
from sam_widget.data.store import Project
from sam_widget.engine.amg.polygons import polygons_to_mask


def _rect(h: int, w: int, y0: int, x0: int, y1: int, x1: int) -> np.ndarray:
    m = np.zeros((h, w), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


@pytest.fixture
def project(tmp_path: Path) -> Project:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = [data / "a.png", data / "sub" / "b.jpg", data / "c.png"]
    for f, (h, w) in zip(files, [(24, 32), (30, 20), (16, 16)], strict=True):
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(f)
    p = Project.open(tmp_path / "labels.sqlite", root=data)
    a, b, _ = p.add_images(files).added
    p.add_category("cell", "#00ff00")
    p.add_category("nucleus")
    ring = _rect(24, 32, 2, 2, 12, 14) & ~_rect(24, 32, 5, 5, 8, 9)  # a hole
    p.add_object(a.id, _rect(24, 32, 14, 16, 22, 30), category="cell",
                 prompts={"points": [[20, 18], [2, 2]], "labels": [1, 0]})  # fmt: skip
    p.add_object(a.id, ring, category="nucleus", strokes=[{"points": [[3, 3]], "radius": 1.0,
                                                           "erase": True}])  # fmt: skip
    two_parts = _rect(30, 20, 1, 1, 5, 6) | _rect(30, 20, 20, 10, 28, 18)
    p.add_object(b.id, two_parts)  # no category -> "object"
    record = {
        "segmentation": _rect(30, 20, 10, 2, 14, 9),
        "predicted_iou": 0.91,
        "stability_score": 0.97,
        "point_coords": [[5.0, 12.0]],
        "crop_box": [0, 0, 20, 30],
    }
    p.put_automatic(b.sha256, "w", "k", [record], category="cell")
    p.add_object(b.id, np.zeros((30, 20), bool))  # empty: left out of exports
    yield p
    p.close()


def _stored(p: Project) -> dict[str, list[tuple[str | None, bytes]]]:
    """Per image SHA: (category, mask bytes) of its non-empty objects, in order."""
    return {
        img.sha256: [
            (o.category, np.packbits(o.mask).tobytes()) for o in p.objects(img.id) if o.area
        ]
        for img in p.images()
    }


def test_coco_rle_export_loads_in_pycocotools_and_gives_back_the_masks(
    tmp_path: Path, project: Project
) -> None:
    out = tmp_path / "coco.json"
    counts = export_coco(project, out)
    assert counts == {"images": 3, "annotations": 4, "skipped": 1}
    coco = COCO(str(out))
    names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
    assert sorted(names.values()) == ["cell", "nucleus", "object"]
    for img in project.images():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img.id]))
        objs = [o for o in project.objects(img.id) if o.area]
        assert [a["id"] for a in anns] == [o.id for o in objs]
        for ann, obj in zip(anns, objs, strict=True):
            np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), obj.mask)
            assert ann["iscrowd"] == 0 and ann["area"] == int(obj.mask.sum())
            rle = coco.annToRLE(ann)
            assert ann["bbox"] == mask_utils.toBbox(rle).tolist()
            assert names[ann["category_id"]] == (obj.category or "object")


def test_coco_polygon_export_is_exact_with_our_reader_and_close_in_pycocotools(
    tmp_path: Path, project: Project
) -> None:
    out = tmp_path / "coco_poly.json"
    export_coco(project, out, segmentation="polygon")
    data = json.loads(out.read_text())
    assert all(isinstance(a["segmentation"], list) for a in data["annotations"])
    coco = COCO(str(out))
    for img in project.images():
        objs = [o for o in project.objects(img.id) if o.area]
        if not objs:
            continue
        ours = read_coco_json(data, image_id=img.id).masks
        np.testing.assert_array_equal(ours, np.stack([o.mask for o in objs]))
        for ann, obj in zip(coco.loadAnns(coco.getAnnIds(imgIds=[img.id])), objs, strict=True):
            theirs = coco.annToMask(ann).astype(bool)
            filled = ndimage.binary_fill_holes(obj.mask)  # pycocotools fills every ring
            iou = (theirs & filled).sum() / (theirs | filled).sum()
            assert iou > 0.6, iou
    with pytest.raises(ValueError, match="segmentation"):
        export_coco(project, out, segmentation="mask")


def test_export_import_export_gives_the_same_masks(tmp_path: Path, project: Project) -> None:
    first = tmp_path / "first.json"
    export_coco(project, first)
    with Project.open(tmp_path / "copy.sqlite", root=project.root) as other:
        res = import_coco(other, first)
        assert (res["images"], res["annotations"], res["failed"]) == (3, 4, [])
        assert _stored(other) == _stored(project)
        auto = [o for o in other.objects(other.images()[1].id) if o.source == "automatic"]
        assert [(o.predicted_iou, o.stability_score, o.extra["point_coords"]) for o in auto] == [
            (0.91, 0.97, [[5.0, 12.0]])
        ]
        a0 = other.objects(other.images()[0].id)
        assert a0[0].prompts["labels"] == [1, 0] and a0[1].strokes[0]["erase"] is True
        assert {c.name: c.color for c in other.categories()}["cell"] == "#00ff00"
        second = tmp_path / "second.json"
        export_coco(other, second)
        again = import_coco(other, second)  # importing again adds nothing
        assert (again["annotations"], again["duplicates"]) == (0, 4)
    d1, d2 = json.loads(first.read_text()), json.loads(second.read_text())
    assert [a["segmentation"] for a in d1["annotations"]] == [
        a["segmentation"] for a in d2["annotations"]
    ]
    assert d1["categories"] == d2["categories"]


def test_import_lists_missing_and_mismatched_images(tmp_path: Path, project: Project) -> None:
    coco = {
        "images": [
            {"id": 1, "file_name": "nowhere.png", "height": 24, "width": 32},
            {"id": 2, "file_name": "a.png", "height": 99, "width": 32},
        ],
        "annotations": [],
        "categories": [],
    }
    path = tmp_path / "in.json"
    path.write_text(json.dumps(coco))
    res = import_coco(project, path)
    assert [f[0] for f in res["failed"]] == ["nowhere.png", "a.png"]
    assert "not found" in res["failed"][0][1] and "99" in res["failed"][1][1]
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="in.json.*not a COCO"):
        import_coco(project, path)


def test_yolo_export_layout_and_polygon_format(tmp_path: Path, project: Project) -> None:
    out = tmp_path / "yolo"
    counts = export_yolo(project, out)
    meta = yaml.safe_load((out / "data.yaml").read_text())
    names = [meta["names"][k] for k in range(meta["nc"])]
    assert names == ["cell", "nucleus", "object"]
    assert (out / meta["train"]).is_dir()
    n_lines = 0
    for img in project.images():
        stem = img.path.replace("/", "__")
        assert (out / "images" / stem).read_bytes() == project.resolve(img).read_bytes()
        lines = (out / "labels" / (Path(stem).stem + ".txt")).read_text().splitlines()
        n_lines += len(lines)
        per_class: dict[int, np.ndarray] = {}
        for line in lines:
            cls, *vals = line.split()
            coords = np.array([float(v) for v in vals])
            assert int(cls) == float(cls) and 0 <= int(cls) < meta["nc"]
            assert coords.size % 2 == 0 and coords.size >= 6
            assert (coords >= 0).all() and (coords <= 1).all()
            # Normalised x, y pairs back to pixels: (2N,) -> N x 2 -> scale -> (2N,)
            pix = (coords.reshape(-1, 2) * [img.width, img.height]).reshape(-1)
            ring = polygons_to_mask([pix.tolist()], img.height, img.width)
            per_class[int(cls)] = per_class.get(int(cls), False) | ring
        expected: dict[int, np.ndarray] = {}
        for o in project.objects(img.id):
            if o.area:
                k = names.index(o.category or "object")
                expected[k] = expected.get(k, False) | ndimage.binary_fill_holes(o.mask)
        assert per_class.keys() == expected.keys()
        for k in expected:
            np.testing.assert_array_equal(per_class[k], expected[k])
    assert n_lines == counts["lines"] == 5  # the two-part mask gives two lines
    assert counts["failed"] == []


def test_yolo_export_leaves_out_changed_and_missing_images(
    tmp_path: Path, project: Project
) -> None:
    a, b, c = project.images()
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(project.resolve(a))  # new pixels
    project.resolve(c).unlink()
    counts = export_yolo(project, tmp_path / "yolo")
    assert [f[0] for f in counts["failed"]] == [a.path, c.path]
    assert "changed" in counts["failed"][0][1]
    assert counts["images"] == 1
    assert sorted(p.name for p in (tmp_path / "yolo" / "images").iterdir()) == ["sub__b.jpg"]
    assert sorted(p.name for p in (tmp_path / "yolo" / "labels").iterdir()) == ["sub__b.txt"]


def test_label_png_export(tmp_path: Path, project: Project) -> None:
    out = tmp_path / "masks"
    export_masks(project, out)
    classes = json.loads((out / "classes.json").read_text())
    assert classes == {"0": "background", "1": "cell", "2": "nucleus", "3": "object"}
    for img in project.images():
        stem = img.path.replace("/", "__")
        objs = project.objects(img.id)
        with Image.open(out / f"{stem}.instances.png") as im:
            assert im.mode.startswith("I;16") or im.mode == "I"
        inst = read_label_png(out / f"{stem}.instances.png")
        assert inst.shape == (len(objs), img.height, img.width)
        for k, o in enumerate(objs):  # these objects do not overlap
            np.testing.assert_array_equal(inst[k], o.mask)
        sem = np.array(Image.open(out / f"{stem}.semantic.png"))
        expected = np.zeros((img.height, img.width), np.int64)
        for o in objs:
            expected[o.mask] = ["cell", "nucleus", "object"].index(o.category or "object") + 1
        np.testing.assert_array_equal(sem, expected)


def test_sa1b_export(tmp_path: Path, project: Project) -> None:
    out = tmp_path / "sa1b"
    export_sa1b(project, out)
    b = project.images()[1]
    rec = json.loads((out / "sub__b.jpg.json").read_text())
    assert rec["image"] == {"image_id": b.id, "width": 20, "height": 30, "file_name": "sub/b.jpg"}
    objs = [o for o in project.objects(b.id) if o.area]
    assert len(rec["annotations"]) == len(objs)
    for ann, o in zip(rec["annotations"], objs, strict=True):
        assert set(ann) >= {"segmentation", "bbox", "area", "predicted_iou", "stability_score",
                            "point_coords", "crop_box"}  # fmt: skip
        ann["segmentation"]["counts"] = ann["segmentation"]["counts"].encode()
        np.testing.assert_array_equal(mask_utils.decode(ann["segmentation"]).astype(bool), o.mask)
    auto = rec["annotations"][1]
    assert (auto["point_coords"], auto["crop_box"], auto["predicted_iou"]) == (
        [[5.0, 12.0]], [0, 0, 20, 30], 0.91)  # fmt: skip
    a = json.loads((out / "a.png.json").read_text())
    assert a["annotations"][0]["point_coords"] == [[20, 18]]  # the positive click only
    assert a["annotations"][0]["crop_box"] == [0, 0, 32, 24]
