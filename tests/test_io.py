"""Round trips and cross-checks for sam_widget.data.io (RLE, label PNGs, polygons, COCO JSON)."""

from __future__ import annotations

import io as _io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from sam_widget.data import io


def _case_masks() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    cases: dict[str, np.ndarray] = {}
    cases["empty"] = np.zeros((7, 9), bool)
    cases["full"] = np.ones((7, 9), bool)
    cases["pixel_on"] = np.ones((1, 1), bool)
    cases["pixel_off"] = np.zeros((1, 1), bool)
    cases["row"] = np.array([[0, 1, 1, 0, 1]], bool)
    cases["column"] = np.array([[1], [1], [0], [1]], bool)
    borders = np.zeros((6, 8), bool)
    borders[0, :] = True
    borders[:, -1] = True
    borders[-1, 2:5] = True
    cases["borders"] = borders
    ring = np.zeros((9, 9), bool)
    ring[1:8, 1:8] = True
    ring[3:6, 3:6] = False
    ring[4, 4] = True  # an island inside the hole
    cases["hole_with_island"] = ring
    diag = np.eye(6, dtype=bool) | np.eye(6, dtype=bool)[::-1]
    cases["diagonal_touches"] = diag
    checker = (np.indices((5, 7)).sum(0) % 2).astype(bool)
    cases["checkerboard"] = checker
    cases["random_dense"] = rng.random((23, 17)) < 0.6
    cases["random_sparse"] = rng.random((17, 23)) < 0.1
    return cases


CASES = _case_masks()


def _reference_rle(mask: np.ndarray) -> dict:
    return coco_mask.encode(np.asfortranarray(mask.astype(np.uint8)))


@pytest.mark.parametrize("name", sorted(CASES))
def test_rle_round_trip_and_matches_pycocotools(name: str) -> None:
    mask = CASES[name]
    plain = io.encode_rle(mask)
    assert plain["size"] == list(mask.shape)
    assert all(isinstance(c, int) for c in plain["counts"])
    assert sum(plain["counts"]) == mask.size
    np.testing.assert_array_equal(io.decode_rle(plain), mask)

    ours = io.encode_coco_rle(mask)
    assert isinstance(ours["counts"], str)
    json.dumps(ours)  # serializable as is
    ref = _reference_rle(mask)
    assert ours["counts"].encode() == ref["counts"]
    # pycocotools reads our string and our uncompressed counts
    np.testing.assert_array_equal(
        coco_mask.decode({"size": ours["size"], "counts": ours["counts"].encode()}), mask
    )
    from_plain = coco_mask.frPyObjects(plain, *mask.shape)
    assert from_plain["counts"] == ref["counts"]
    # we read pycocotools' bytes and its str form
    np.testing.assert_array_equal(io.decode_rle(ref), mask)
    np.testing.assert_array_equal(io.decode_rle(dict(ref, counts=ref["counts"].decode())), mask)
    assert io.rle_area(plain) == io.rle_area(ours) == int(coco_mask.area(ref)) == mask.sum()


def test_rle_large_counts_and_negative_deltas_match_pycocotools() -> None:
    # Long runs (multi-group counts) and runs shorter than two places before (negative
    # deltas in the compressed string).
    mask = np.zeros((700, 900), bool)
    mask[3:690, 5:600] = True
    mask[100:101, :] = False
    mask[:, 700:702] = True
    ours = io.encode_coco_rle(mask)
    assert ours["counts"].encode() == _reference_rle(mask)["counts"]
    np.testing.assert_array_equal(io.decode_rle(ours), mask)


def test_rle_rejects_inconsistent_input() -> None:
    with pytest.raises(ValueError, match="sum to"):
        io.decode_rle({"size": [2, 2], "counts": [1, 2]})
    with pytest.raises(ValueError, match="invalid character"):
        io.decode_rle({"size": [2, 2], "counts": "1 2"})
    with pytest.raises(ValueError, match="negative"):
        io.decode_rle({"size": [1, 2], "counts": [3, -1]})
    with pytest.raises(ValueError, match="2-D"):
        io.encode_rle(np.zeros((2, 2, 2), bool))
    with pytest.raises(ValueError, match="0 and 1"):
        io.encode_rle(np.full((2, 2), 2))


def test_zero_pixel_mask_rle() -> None:
    mask = np.zeros((0, 4), bool)
    assert io.encode_rle(mask)["counts"] == [0]
    assert io.decode_rle(io.encode_coco_rle(mask)).shape == (0, 4)


@pytest.mark.parametrize("name", sorted(CASES))
def test_polygon_round_trip(name: str) -> None:
    mask = CASES[name]
    rings = io.mask_to_polygons(mask)
    np.testing.assert_array_equal(io.polygons_to_mask(rings, *mask.shape), mask)
    for ring in rings:
        assert len(ring) % 2 == 0 and len(ring) >= 8
        assert all(isinstance(v, int) for v in ring)


def _signed_area(ring: list[int]) -> float:
    x, y = np.array(ring[0::2], float), np.array(ring[1::2], float)
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def test_polygon_rings_outline_pixel_edges_with_holes_reversed() -> None:
    mask = np.zeros((5, 5), bool)
    mask[1:4, 1:4] = True
    mask[2, 2] = False
    rings = io.mask_to_polygons(mask)
    assert len(rings) == 2
    by_area = sorted(rings, key=lambda r: abs(_signed_area(r)))
    hole, outer = by_area
    # outer square [1,4]^2 and the one-pixel hole [2,3]^2, on the integer grid
    assert sorted(zip(outer[0::2], outer[1::2], strict=True)) == [(1, 1), (1, 4), (4, 1), (4, 4)]
    assert sorted(zip(hole[0::2], hole[1::2], strict=True)) == [(2, 2), (2, 3), (3, 2), (3, 3)]
    # y points down: clockwise on screen = positive shoelace area here
    assert _signed_area(outer) == 9 and _signed_area(hole) == -1
    # diagonal-only neighbours get a ring each
    assert len(io.mask_to_polygons(np.array([[1, 0], [0, 1]], bool))) == 2
    assert io.mask_to_polygons(np.zeros((3, 3), bool)) == []


def test_polygons_to_mask_fills_pixel_centres_inside() -> None:
    # A foreign (non-grid) polygon: compare with a direct even-odd test of every centre.
    tri = [1.2, 0.3, 9.7, 4.1, 2.5, 8.8]
    square_hole = [3.0, 3.0, 5.0, 3.0, 5.0, 5.0, 3.0, 5.0]
    h, w = 10, 12
    got = io.polygons_to_mask([tri, square_hole], h, w)

    def inside(px: float, py: float, poly: list[float]) -> bool:
        xs, ys = poly[0::2], poly[1::2]
        odd = False
        for i in range(len(xs)):
            xa, ya, xb, yb = xs[i], ys[i], xs[i - 1], ys[i - 1]
            if (ya > py) != (yb > py) and px < xa + (py - ya) * (xb - xa) / (yb - ya):
                odd = not odd
        return odd

    want = np.array(
        [
            [
                inside(c + 0.5, r + 0.5, tri) ^ inside(c + 0.5, r + 0.5, square_hole)
                for c in range(w)
            ]
            for r in range(h)
        ]
    )
    np.testing.assert_array_equal(got, want)
    assert got.sum() > 10 and not got[3:5, 3:5].any()
    with pytest.raises(ValueError, match="at least 3"):
        io.polygons_to_mask([[0, 0, 1, 1]], 3, 3)


def test_label_png_round_trip_8_and_16_bit() -> None:
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 5, size=(13, 11))
    masks = [labels == k for k in range(1, 5)] + [np.zeros((13, 11), bool)]  # last is empty
    for depth, mode in ((8, "L"), (16, "I;16")):
        buf = _io.BytesIO()
        io.write_label_png(buf, masks, bit_depth=depth)
        buf.seek(0)
        with Image.open(buf) as img:
            assert img.mode == mode
        buf.seek(0)
        back = io.read_label_png(buf)
        np.testing.assert_array_equal(back, np.stack(masks))


def test_label_png_many_objects_needs_16_bit(tmp_path) -> None:
    h, w = 20, 20
    masks = np.zeros((300, h, w), bool)
    for k in range(300):
        masks[k].flat[k] = True
    with pytest.raises(ValueError, match="at most 255 objects"):
        io.write_label_png(tmp_path / "a.png", masks, bit_depth=8)
    io.write_label_png(tmp_path / "a.png", masks)  # picks 16 bit
    with Image.open(tmp_path / "a.png") as img:
        assert img.mode.startswith("I")
    np.testing.assert_array_equal(io.read_label_png(tmp_path / "a.png"), masks)


def test_label_png_edge_cases(tmp_path) -> None:
    # an image without masks, and 1-pixel images
    io.write_label_png(tmp_path / "none.png", [], height=4, width=3)
    assert io.read_label_png(tmp_path / "none.png").shape == (0, 4, 3)
    for value in (False, True):
        io.write_label_png(tmp_path / "one.png", np.full((1, 1, 1), value))
        np.testing.assert_array_equal(io.read_label_png(tmp_path / "one.png"), [[[value]]])
    # a plain label PNG without our text chunk: N = largest label
    Image.fromarray(np.array([[0, 3], [1, 0]], np.uint8)).save(tmp_path / "plain.png")
    back = io.read_label_png(tmp_path / "plain.png")
    assert back.shape == (3, 2, 2) and back[0, 1, 0] and back[2, 0, 1] and not back[1].any()


def test_label_map_overlap_rules() -> None:
    a = np.array([[1, 1, 0]], bool)
    b = np.array([[0, 1, 1]], bool)
    with pytest.raises(ValueError, match="masks 0 and 1 overlap"):
        io.masks_to_label_map([a, b])
    np.testing.assert_array_equal(io.masks_to_label_map([a, b], overlap="first"), [[1, 1, 2]])
    np.testing.assert_array_equal(io.masks_to_label_map([a, b], overlap="last"), [[1, 2, 2]])
    with pytest.raises(ValueError, match="overlap must be"):
        io.masks_to_label_map([a, b], overlap="max")  # type: ignore[arg-type]


@pytest.mark.parametrize("segmentation", ["rle", "polygon"])
def test_coco_json_round_trip(tmp_path, segmentation: str) -> None:
    h, w = CASES["hole_with_island"].shape
    rng = np.random.default_rng(2)
    masks = [
        CASES["hole_with_island"],
        np.zeros((h, w), bool),
        np.ones((h, w), bool),
        rng.random((h, w)) < 0.5,
    ]
    path = tmp_path / "coco.json"
    io.write_coco_json(
        path,
        masks,
        file_name="img.png",
        segmentation=segmentation,
        scores=[0.9, 0.8, 0.7, 0.6],
        category_name="thing",
    )
    got = io.read_coco_json(path)
    np.testing.assert_array_equal(got.masks, np.stack(masks))
    assert got.image == {"id": 1, "file_name": "img.png", "height": h, "width": w}
    assert got.categories == [{"id": 1, "name": "thing"}]
    assert got.category_ids == [1, 1, 1, 1]
    for ann, m in zip(got.annotations, masks, strict=True):
        assert ann["iscrowd"] == 0 and ann["area"] == int(m.sum())
        ref_box = coco_mask.toBbox(_reference_rle(m)).tolist()
        assert ann["bbox"] == ref_box
    assert [a["score"] for a in got.annotations] == [0.9, 0.8, 0.7, 0.6]


def test_coco_json_readable_by_pycocotools(tmp_path) -> None:
    from pycocotools.coco import COCO

    rng = np.random.default_rng(3)
    masks = rng.random((3, 15, 20)) < 0.4
    path = tmp_path / "coco.json"
    io.write_coco_json(path, masks)
    coco = COCO(str(path))
    anns = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert len(anns) == 3
    for ann, m in zip(anns, masks, strict=True):
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), m)


def test_coco_categories_default_and_per_mask(tmp_path) -> None:
    from pycocotools.coco import COCO

    masks = np.random.default_rng(4).random((4, 12, 10)) < 0.5
    plain = io.to_coco_json(masks)
    # No categories given: one "object" category, every mask an instance of it.
    assert plain["categories"] == [{"id": 1, "name": "object"}]
    assert {a["category_id"] for a in plain["annotations"]} == {1}
    data = io.to_coco_json(masks, categories=["cat", None, "dog", "cat"])
    by_name = {c["name"]: c["id"] for c in data["categories"]}
    assert sorted(by_name) == ["cat", "dog", "object"] and len(set(by_name.values())) == 3
    got = [a["category_id"] for a in data["annotations"]]
    assert got == [by_name["cat"], by_name["object"], by_name["dog"], by_name["cat"]]
    path = tmp_path / "cats.json"
    path.write_text(json.dumps(data))
    coco = COCO(str(path))
    assert len(coco.getAnnIds(catIds=[by_name["cat"]])) == 2
    with pytest.raises(ValueError, match="one name per mask"):
        io.to_coco_json(masks, categories=["cat"])
    with pytest.raises(ValueError, match=r"categories\[1\]"):
        io.to_coco_json(masks, categories=["cat", "  ", None, None])
    with pytest.raises(TypeError, match="categories must be a sequence"):
        io.to_coco_json(masks, categories="cat")


def test_coco_json_edge_cases() -> None:
    empty = io.to_coco_json([], height=5, width=6)
    assert empty["annotations"] == [] and empty["images"][0]["height"] == 5
    assert io.read_coco_json(empty).masks.shape == (0, 5, 6)
    one = io.to_coco_json(np.ones((1, 1, 1), bool), segmentation="polygon")
    np.testing.assert_array_equal(io.read_coco_json(json.loads(json.dumps(one))).masks, [[[True]]])
    # mask records (as the automatic mask generator returns them) are accepted
    m = CASES["borders"]
    records = [{"segmentation": io.encode_rle(m), "area": int(m.sum())}, {"segmentation": m.copy()}]
    np.testing.assert_array_equal(
        io.read_coco_json(io.to_coco_json(records)).masks, np.stack([m, m])
    )

    two = {
        "images": [{"id": 1, "height": 2, "width": 2}, {"id": 2, "height": 3, "width": 3}],
        "annotations": [
            {
                "id": 1,
                "image_id": 2,
                "category_id": 1,
                "segmentation": io.encode_coco_rle(np.eye(3, dtype=bool)),
            }
        ],
    }
    with pytest.raises(ValueError, match="pass image_id"):
        io.read_coco_json(two)
    np.testing.assert_array_equal(io.read_coco_json(two, image_id=2).masks[0], np.eye(3))
    assert io.read_coco_json(two, image_id=1).masks.shape == (0, 2, 2)
    two["annotations"][0]["image_id"] = 1
    with pytest.raises(ValueError, match="RLE size"):
        io.read_coco_json(two, image_id=1)
    with pytest.raises(ValueError, match="same shape"):
        io.to_coco_json([np.zeros((2, 2), bool), np.zeros((3, 3), bool)])
    with pytest.raises(ValueError, match="height and width"):
        io.to_coco_json([])


# ------------------------------------------------------------- atomic writes (issue 16 #1)


def _file_writers() -> dict[str, Any]:
    """name -> (suffix, write(path, masks)) for every writer of a mask file."""
    from sam_widget.widget import persist

    def objects(n: int) -> list[dict[str, Any]]:
        return [{"id": i + 1, "name": f"o{i}", "color": "#e69f00"} for i in range(n)]

    return {
        "npz": (".npz", lambda p, m: persist.save_masks(p, m, objects(len(m)))),
        "widget_png": (".png", lambda p, m: persist.save_masks(p, m, objects(len(m)))),
        "coco": (".json", lambda p, m: persist.export_coco(p, m, objects(len(m)), [0.5] * len(m))),
        "label_png": (".png", lambda p, m: io.write_label_png(p, m, overlap="last")),
        "coco_json": (".json", lambda p, m: io.write_coco_json(p, m)),
    }


def _noise_masks(seed: int, n: int, side: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, side, side)) < 0.5


@pytest.mark.parametrize("name", sorted(_file_writers()))
def test_failed_write_keeps_the_old_file(name: str, tmp_path, monkeypatch) -> None:
    """An encoder that raises mid-stream (after writing part of the file): the old file is
    byte-identical and no temp file is left."""
    suffix, write = _file_writers()[name]
    target = tmp_path / f"out{suffix}"
    write(target, _noise_masks(0, 2, 32))
    before = target.read_bytes()

    def partial(file: Any) -> None:
        if isinstance(file, (str, Path)):
            with open(file, "wb") as fh:
                fh.write(b"partial")
        elif hasattr(file, "write"):
            file.write(b"partial" if not isinstance(file, _io.TextIOBase) else "partial")
        raise OSError(28, "No space left on device (simulated)")

    monkeypatch.setattr(np, "savez_compressed", lambda file, **kw: partial(file))
    monkeypatch.setattr(Image.Image, "save", lambda self, fp, *a, **kw: partial(fp))
    monkeypatch.setattr(json, "dump", lambda obj, fp, **kw: partial(fp))
    monkeypatch.setattr(json, "dumps", lambda obj, **kw: partial(None))
    with pytest.raises(OSError, match="simulated"):
        write(target, _noise_masks(1, 3, 64))
    monkeypatch.undo()
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [target.name]


def test_full_disk_keeps_every_old_file(tmp_path) -> None:
    """A real short write (RLIMIT_FSIZE in a subprocess: write() fails with EFBIG) for every
    mask-file writer: each old file stays byte-identical and no temp file is left."""
    import os
    import subprocess
    import sys
    import textwrap

    writers = sorted(_file_writers())
    targets = {}
    for name in writers:
        suffix, write = _file_writers()[name]
        target = tmp_path / f"{name}{suffix}"
        write(target, _noise_masks(0, 1, 16))
        targets[name] = target
    before = {n: t.read_bytes() for n, t in targets.items()}
    assert max(len(b) for b in before.values()) < 20_000
    code = textwrap.dedent(
        f"""
        import resource, signal, sys
        import numpy as np
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_io import _file_writers, _noise_masks
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))
        masks = _noise_masks(1, 3, 256)
        for name, path in {dict((n, str(t)) for n, t in targets.items())!r}.items():
            try:
                _file_writers()[name][1](path, masks)
            except OSError as e:
                print(name, "failed", e.errno)
            else:
                print(name, "wrote")
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    lines = out.stdout.split("\n")
    assert sorted(line.split()[0] for line in lines if line) == writers, out.stdout + out.stderr
    for line in filter(None, lines):
        assert line.split()[1] == "failed", out.stdout + out.stderr
    for name, target in targets.items():
        assert target.read_bytes() == before[name], name
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(t.name for t in targets.values())
