"""EmbeddingCache: keys, LRU byte budget, isolation, and the npz disk store."""

from __future__ import annotations

import os
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from sam_widget.engine import embedding_cache as ec
from sam_widget.engine.embedding_cache import EmbeddingCache, ImageEmbedding, embedding_key

FEAT_SHAPE = (1, 4, 8, 8)  # 1024 bytes of float32
FEAT_BYTES = 4 * 8 * 8 * 4


def _image(seed: int, shape: tuple[int, ...] = (6, 9, 3)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def _emb(seed: int, weights_id: str = "tiny:abc") -> ImageEmbedding:
    img = _image(seed)
    feats = torch.from_numpy(np.random.default_rng(seed + 100).standard_normal(FEAT_SHAPE))
    return ImageEmbedding(
        feats.float(), img.shape[:2], (683, 1024), weights_id, embedding_key(img, weights_id)
    )


def test_key_depends_on_pixels_shape_and_model() -> None:
    a = _image(0)
    assert embedding_key(a, "w1") == embedding_key(a.copy(), "w1")
    assert embedding_key(a[:, ::-1], "w1") == embedding_key(np.ascontiguousarray(a[:, ::-1]), "w1")
    assert embedding_key(a, "w1") != embedding_key(a, "w2")
    b = a.copy()
    b[3, 4, 1] ^= 1
    assert embedding_key(a, "w1") != embedding_key(b, "w1")
    # Same bytes, different shape -> different key.
    assert embedding_key(a, "w1") != embedding_key(a.reshape(9, 6, 3), "w1")
    key = embedding_key(a, "w1")
    assert len(key) == 64 and all(c in "0123456789abcdef" for c in key)


def test_embedding_repr_is_short() -> None:
    text = repr(_emb(1))
    assert "(1, 4, 8, 8)" in text and "tiny:abc" in text and len(text) < 300


def test_lru_eviction_by_byte_budget() -> None:
    cache = EmbeddingCache(max_bytes=2 * FEAT_BYTES + 10)
    e1, e2, e3 = _emb(1), _emb(2), _emb(3)
    cache.put(e1)
    cache.put(e2)
    assert len(cache) == 2 and cache.nbytes == 2 * FEAT_BYTES
    assert cache.get(e1.key) is not None  # e1 becomes most recently used
    cache.put(e3)  # evicts e2, the least recently used
    assert e1.key in cache and e3.key in cache and e2.key not in cache
    assert cache.get(e2.key) is None
    assert cache.keys() == [e1.key, e3.key]
    assert cache.nbytes == 2 * FEAT_BYTES


def test_entry_larger_than_budget_not_kept() -> None:
    cache = EmbeddingCache(max_bytes=FEAT_BYTES - 1)
    cache.put(_emb(1))
    assert len(cache) == 0 and cache.nbytes == 0


def test_put_twice_counts_once() -> None:
    cache = EmbeddingCache(max_bytes=10 * FEAT_BYTES)
    e = _emb(1)
    cache.put(e)
    cache.put(e)
    assert len(cache) == 1 and cache.nbytes == FEAT_BYTES


def test_entries_are_isolated_from_callers() -> None:
    cache = EmbeddingCache()
    e = _emb(1)
    original = e.features.clone()
    cache.put(e)
    e.features.zero_()  # the caller's tensor changes after put
    got = cache.get(e.key)
    assert got is not None
    torch.testing.assert_close(got.features, original, rtol=0, atol=0)
    got.features.fill_(5.0)  # the caller mutates what get returned
    again = cache.get(e.key)
    assert again is not None
    torch.testing.assert_close(again.features, original, rtol=0, atol=0)


def test_get_checks_expectations() -> None:
    cache = EmbeddingCache()
    e = _emb(1)
    cache.put(e)
    assert cache.get(e.key, weights_id="other") is None
    assert cache.get(e.key, feature_shape=(1, 256, 64, 64)) is None
    assert cache.get(e.key, original_size=(1, 1)) is None
    assert cache.get(e.key, weights_id=e.weights_id, feature_shape=FEAT_SHAPE) is not None


def test_disk_roundtrip(tmp_path: Path) -> None:
    e = _emb(1)
    EmbeddingCache(directory=tmp_path).put(e)
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == [f"{e.key}.npz"]  # no temporary files left behind
    fresh = EmbeddingCache(directory=tmp_path)
    got = fresh.get(e.key, weights_id=e.weights_id, feature_shape=FEAT_SHAPE)
    assert got is not None
    torch.testing.assert_close(got.features, e.features, rtol=0, atol=0)
    assert got.original_size == e.original_size and got.input_size == e.input_size
    assert got.weights_id == e.weights_id and got.key == e.key
    assert e.key in fresh  # promoted to memory
    with np.load(tmp_path / f"{e.key}.npz", allow_pickle=False) as data:
        assert data["features"].dtype == np.float32  # plain arrays, no pickled objects


def _rewrite(path: Path, **changes: np.ndarray) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


@pytest.mark.parametrize(
    "change",
    [
        {"weights_id": np.array("tiny:other")},
        {"features": np.full(FEAT_SHAPE, np.nan, np.float32)},
        {"features": np.zeros(FEAT_SHAPE, np.float64)},
        {"features": np.zeros((4, 8, 8), np.float32)},
        {"format": np.array(99)},
        {"original_size": np.array([0, 5])},
    ],
    ids=["weights", "nan", "dtype", "ndim", "format", "size"],
)
def test_tampered_file_ignored(tmp_path: Path, change: dict[str, np.ndarray]) -> None:
    e = _emb(1)
    EmbeddingCache(directory=tmp_path).put(e)
    _rewrite(tmp_path / f"{e.key}.npz", **change)
    fresh = EmbeddingCache(directory=tmp_path)
    with pytest.warns(UserWarning, match="do not match"):
        assert fresh.get(e.key, weights_id=e.weights_id) is None
    assert len(fresh) == 0 and fresh.misses == 1


def test_file_under_another_key_ignored(tmp_path: Path) -> None:
    e1, e2 = _emb(1), _emb(2)
    EmbeddingCache(directory=tmp_path).put(e1)
    # Someone copies image 1's file to image 2's name: must not be served for image 2.
    (tmp_path / f"{e2.key}.npz").write_bytes((tmp_path / f"{e1.key}.npz").read_bytes())
    with pytest.warns(UserWarning, match="do not match"):
        assert EmbeddingCache(directory=tmp_path).get(e2.key) is None


def test_corrupt_file_ignored_others_fine(tmp_path: Path) -> None:
    e1, e2 = _emb(1), _emb(2)
    writer = EmbeddingCache(directory=tmp_path)
    writer.put(e1)
    writer.put(e2)
    path1 = tmp_path / f"{e1.key}.npz"
    path1.write_bytes(path1.read_bytes()[:200])  # truncated
    (tmp_path / f"{'0' * 64}.npz").write_bytes(b"garbage")
    fresh = EmbeddingCache(directory=tmp_path)
    with pytest.warns(UserWarning, match="unreadable"):
        assert fresh.get(e1.key) is None
    with pytest.warns(UserWarning, match="unreadable"):
        assert fresh.get("0" * 64) is None
    got = fresh.get(e2.key)
    assert got is not None
    torch.testing.assert_close(got.features, e2.features, rtol=0, atol=0)
    # A later put replaces the corrupt file atomically with a good one.
    fresh.put(e1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert EmbeddingCache(directory=tmp_path).get(e1.key) is not None


def test_failed_write_keeps_old_file_and_leaves_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    e = _emb(1)
    EmbeddingCache(directory=tmp_path).put(e)
    before = (tmp_path / f"{e.key}.npz").read_bytes()

    def broken_savez(f: object, **arrays: object) -> None:
        f.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(ec.np, "savez", broken_savez)
    changed = ImageEmbedding(e.features + 1, e.original_size, e.input_size, e.weights_id, e.key)
    with pytest.warns(UserWarning, match="Could not write"):
        EmbeddingCache(directory=tmp_path).put(changed)
    assert (tmp_path / f"{e.key}.npz").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [f"{e.key}.npz"]


def test_disk_budget_prunes_oldest(tmp_path: Path) -> None:
    cache = EmbeddingCache(directory=tmp_path)
    cache.put(_emb(1))
    size = (tmp_path / f"{_emb(1).key}.npz").stat().st_size
    pruned = EmbeddingCache(directory=tmp_path, max_disk_bytes=2 * size)
    old = time.time() - 100
    os.utime(tmp_path / f"{_emb(1).key}.npz", (old, old))
    pruned.put(_emb(2))
    pruned.put(_emb(3))
    names = {p.name for p in tmp_path.iterdir()}
    assert names == {f"{_emb(2).key}.npz", f"{_emb(3).key}.npz"}


def test_bad_key_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="key"):
        EmbeddingCache(directory=tmp_path).get("../../etc/passwd")


def test_concurrent_use() -> None:
    cache = EmbeddingCache(max_bytes=5 * FEAT_BYTES)
    embs = [_emb(i) for i in range(12)]
    errors: list[BaseException] = []

    def worker(offset: int) -> None:
        try:
            for i in range(60):
                e = embs[(i + offset) % len(embs)]
                cache.put(e)
                got = cache.get(e.key)
                if got is not None:
                    torch.testing.assert_close(got.features, e.features, rtol=0, atol=0)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert cache.nbytes == len(cache) * FEAT_BYTES <= 5 * FEAT_BYTES


# -- every named feature, format versions ---------------------------------------------------


def _named_emb(seed: int) -> ImageEmbedding:
    e = _emb(seed)
    rng = np.random.default_rng(seed + 7)
    high = torch.from_numpy(rng.standard_normal((1, 2, 16, 16))).float()
    return ImageEmbedding(
        {"image_embed": e.features, "high_res_0": high},
        e.original_size,
        e.input_size,
        e.weights_id,
        e.key,
    )


SHAPES = {"image_embed": FEAT_SHAPE, "high_res_0": (1, 2, 16, 16)}


def test_named_features_round_trip_through_disk(tmp_path: Path) -> None:
    e = _named_emb(1)
    assert e.nbytes == FEAT_BYTES + 2 * 16 * 16 * 4
    assert list(e.named_features) == ["image_embed", "high_res_0"]
    EmbeddingCache(directory=tmp_path).put(e)
    got = EmbeddingCache(directory=tmp_path).get(e.key, feature_shapes=SHAPES)
    assert got is not None and set(got.named_features) == set(SHAPES)
    for name, t in e.named_features.items():
        torch.testing.assert_close(got.named_features[name], t, rtol=0, atol=0)
    # Asking for a different set of features is a miss (another model's layout).
    fresh = EmbeddingCache(directory=tmp_path)
    with pytest.warns(UserWarning, match="do not match"):
        assert fresh.get(e.key, feature_shapes={"image_embed": FEAT_SHAPE, "x": (1, 1)}) is None
    with pytest.raises(ValueError, match="image_embed"):
        ImageEmbedding({"high_res_0": e.features}, (6, 9), (683, 1024), "w", e.key)


def test_old_format_file_is_recomputed_and_replaced(tmp_path: Path) -> None:
    e = _emb(1)
    path = tmp_path / f"{e.key}.npz"
    # Format 1 (before named features): one "features" array and no "names".
    np.savez(
        path,
        format=np.array(1, dtype=np.int64),
        key=np.array(e.key),
        weights_id=np.array(e.weights_id),
        original_size=np.array(e.original_size, dtype=np.int64),
        input_size=np.array(e.input_size, dtype=np.int64),
        features=e.features.numpy(),
    )
    cache = EmbeddingCache(directory=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quietly a miss: no warning
        assert cache.get(e.key, weights_id=e.weights_id) is None
    cache.put(e)
    with np.load(path, allow_pickle=False) as data:
        assert int(data["format"]) == 2
    assert EmbeddingCache(directory=tmp_path).get(e.key, weights_id=e.weights_id) is not None


def _zip_with_deflated(path: Path, members: list[tuple[str, list[bytes], int, int]]) -> None:
    """A zip file whose members are given as raw deflate pieces (name, pieces, crc32,
    uncompressed size): lets a test write a member that inflates to gigabytes."""
    import struct

    out = bytearray()
    central = bytearray()
    for name, pieces, crc, usize in members:
        raw = b"".join(pieces)
        offset = len(out)
        fname = name.encode()
        out += struct.pack(
            "<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0x21, crc, len(raw), usize, len(fname), 0
        )
        out += fname + raw
        central += struct.pack(
            "<IHHHHHHIIIHHHHHII",
            0x02014B50,
            20,
            20,
            0,
            8,
            0,
            0x21,
            crc,
            len(raw),
            usize,
            len(fname),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        central += fname
    start = len(out)
    out += central
    n = len(members)
    out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(central), start, 0)
    path.write_bytes(bytes(out))


def test_declared_sizes_are_checked_before_decompressing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import zlib

    e = _emb(1)
    good = tmp_path / "good.npz"
    np.savez(
        good,
        format=np.array(2, dtype=np.int64),
        key=np.array(e.key),
        weights_id=np.array(e.weights_id),
        original_size=np.array(e.original_size, dtype=np.int64),
        input_size=np.array(e.input_size, dtype=np.int64),
        names=np.array(["image_embed"]),
    )
    members = []
    import zipfile as zf_mod

    with zf_mod.ZipFile(good) as zf:
        for info in zf.infolist():
            data = zf.read(info)
            c = zlib.compressobj(6, zlib.DEFLATED, -15)
            members.append((info.filename, [c.compress(data) + c.flush()], info.CRC, len(data)))
    # "features": an npy header declaring 1 x 256 x 1024 x 1025 float32 (1 GiB + 1 MiB) and
    # that many zero bytes, deflated: one 1 MiB block compressed once and repeated (each
    # piece ends with a full flush, so the pieces are independent).
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f4", "fortran_order": False, "shape": (1, 256, 1024, 1025)}
    )
    head = header.getvalue()
    block = bytes(1 << 20)
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    first = c.compress(head) + c.flush(zlib.Z_FULL_FLUSH)
    piece = c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    assert piece == c.compress(block) + c.flush(zlib.Z_FULL_FLUSH)
    repeats = 256 * 1024 * 1025 * 4 // len(block)
    crc = zlib.crc32(head)
    for _ in range(repeats):
        crc = zlib.crc32(block, crc)
    pieces = [first] + [piece] * repeats + [c.flush()]
    members.append(("features.npy", pieces, crc, len(head) + repeats * len(block)))
    path = tmp_path / f"{e.key}.npz"
    _zip_with_deflated(path, members)
    assert path.stat().st_size < 8 << 20
    # The file is a valid npz: numpy would inflate the whole gibibyte.
    with zf_mod.ZipFile(path) as zf:
        assert zf.getinfo("features.npy").file_size > 1 << 30

    def no_load(*args: object, **kwargs: object) -> None:
        raise AssertionError("np.load reached: the file was not refused from its headers")

    monkeypatch.setattr(ec.np, "load", no_load)
    cache = EmbeddingCache(directory=tmp_path)
    start = time.perf_counter()
    with pytest.warns(UserWarning, match="declared"):
        assert cache.get(e.key, feature_shape=FEAT_SHAPE) is None
    # Without an expected shape a 1 GiB declaration is still refused (the cap).
    with pytest.warns(UserWarning, match="declares"):
        assert cache.get(e.key) is None
    assert time.perf_counter() - start < 2.0


# -- a folder that cannot be written: warn once, carry on in memory -------------------------


def _count_write_warnings(record: list[warnings.WarningMessage]) -> int:
    return sum("Could not write" in str(w.message) for w in record)


def _two_puts(cache: EmbeddingCache) -> list[warnings.WarningMessage]:
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        cache.put(_emb(1))
        cache.put(_emb(2))
    return record


def test_read_only_folder_warns_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import stat

    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    if os.geteuid() == 0:
        # root writes into read-only folders anyway: make creating the temp file fail the
        # way it does for everyone else there.
        from sam_widget.data import atomic

        def refuse(*args: object, **kwargs: object) -> tuple[int, str]:
            raise PermissionError(errno.EACCES, "Permission denied", str(folder))

        monkeypatch.setattr(atomic.tempfile, "mkstemp", refuse)
    try:
        cache = EmbeddingCache(directory=folder)
        record = _two_puts(cache)
        assert _count_write_warnings(record) == 1
        assert cache.get(_emb(1).key) is not None and cache.get(_emb(2).key) is not None
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(stat.S_IRWXU)


def test_folder_deleted_while_running_warns_once(tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "cache"
    cache = EmbeddingCache(directory=folder)
    shutil.rmtree(folder)
    record = _two_puts(cache)
    assert _count_write_warnings(record) == 1
    assert cache.get(_emb(2).key) is not None
    assert not folder.exists()


def test_full_disk_warns_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    def full(f: object, **arrays: object) -> None:
        f.write(b"partial")  # type: ignore[attr-defined]
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ec.np, "savez", full)
    cache = EmbeddingCache(directory=tmp_path)
    record = _two_puts(cache)
    assert _count_write_warnings(record) == 1
    assert any("No space left" in str(w.message) for w in record)
    assert cache.get(_emb(1).key) is not None
    assert list(tmp_path.iterdir()) == []  # no temp files left
