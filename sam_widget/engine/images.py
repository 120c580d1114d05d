"""Turn whatever the user calls "an image" into the one thing the model eats.

Everything that reaches the model is an ``(H, W, 3)`` ``uint8`` RGB, C-contiguous numpy
array. :func:`to_rgb_uint8` is the single place where inputs are converted, by this rule:

**Sources**

- ``numpy.ndarray``: pixels in height x width (x channels) layout ("channels last").
- ``PIL.Image.Image``: its EXIF orientation is applied first (``ImageOps.exif_transpose``),
  then its pixels are read like an array (PIL modes are mapped below).
- ``str`` / ``os.PathLike``: the file is opened with PIL, its size is checked *before* the
  pixels are decoded (decompression bombs are refused), then it is treated as a PIL image.
- ``torch.Tensor`` on the CPU: ``(H, W)``, ``(H, W, C)`` or channels-first ``(C, H, W)``
  (C in 1, 3, 4; torchvision's layout, moved to channels last), then read like an array. A
  shape that fits both layouts is read channels last. Tensors on a GPU are refused
  (``.cpu()`` first).
- Anything else (lists, bytes, ...) is refused with a ``TypeError``.

**Channels** (after the dtype rule below)

- ``(H, W)`` or ``(H, W, 1)``: grayscale, replicated to the three RGB channels.
- ``(H, W, 3)``: RGB (or BGR when ``image_format="BGR"``, then the channels are reversed).
- ``(H, W, 4)``: RGBA (or BGRA); the alpha channel is **dropped**: the model sees the stored
  colour values exactly as they are, transparent pixels included. Composite the image onto a
  background yourself first if you want transparent areas to look like that background.
- Any other shape (e.g. channels-first ``(3, H, W)``, batches) is refused (``ValueError``).

**Value types**

- ``uint8``: used as is.
- ``bool``: ``False -> 0``, ``True -> 255`` (a black-and-white image).
- ``uint16`` (16-bit images): scaled to 8 bits by ``round(v / 257)``, so ``65535 -> 255``.
- Other integer types (``int8`` ... ``int64``, ``uint32``, ``uint64``): the values must already
  lie in ``0..255`` and are used as they are; anything outside is refused (``ValueError``)
  rather than guessed (cast 16-bit data to ``uint16`` first).
- Floating point (``float16/32/64``): must be finite and within ``[0, 1]``; converted by
  ``round(v * 255)``. NaN, infinity and values outside ``[0, 1]`` are refused (``ValueError``);
  divide 0..255 data by 255 (or cast it to ``uint8``) first.
- Complex, object, string ... arrays are refused (``TypeError``).

**PIL modes**: ``1`` -> bool; ``L``/``LA`` -> gray (+ alpha dropped); ``P``/``PA`` -> their
palette colours; ``RGB``/``RGBA``/``RGBX`` -> as arrays; ``RGBa``/``La`` (premultiplied) ->
un-premultiplied first; ``I;16*`` -> ``uint16``; ``I`` -> 32-bit integers (values must lie in
0..255 as above); ``F`` -> float (``[0, 1]`` as above); other colour spaces (``CMYK``,
``YCbCr``, ``LAB``, ``HSV``) -> converted to RGB by PIL.

**Size limits** (checked on the shape, before any conversion allocates memory):
at most :data:`MAX_PIXELS` pixels, no side longer than :data:`MAX_SIDE`, no empty side, and an
aspect ratio that still leaves at least one pixel on the short side once the long side is
resized to the model's 1024 pixels.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

__all__ = ["MAX_PIXELS", "MAX_SIDE", "check_image_size", "load_image", "to_rgb_uint8"]

#: Largest accepted image, in pixels (width x height). 2**27 is about 134 million pixels
#: (e.g. 11585 x 11585): 400 MiB as RGB, and below PIL's own decompression-bomb error limit.
MAX_PIXELS = 2**27
#: Longest accepted side, in pixels.
MAX_SIDE = 2**15
#: The model's input frame (longest side); fixes the most extreme accepted aspect ratio.
_MODEL_LONG_SIDE = 1024

_ImageLike = Any  # np.ndarray | PIL.Image.Image | str | os.PathLike[str]


def check_image_size(height: int, width: int, *, name: str = "image") -> None:
    """Refuse image sizes that are empty, too large to handle safely or too elongated.

    Raises ``ValueError`` naming ``name``. Called on the shape before pixels are converted
    (and for files before they are decoded), so a huge input fails fast instead of running
    the machine out of memory.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"{name} is empty: got height {height} and width {width}.")
    if height > MAX_SIDE or width > MAX_SIDE:
        raise ValueError(
            f"{name} is too large: {width} x {height} pixels (width x height); the longest side "
            f"may be at most {MAX_SIDE} pixels. Downscale it first."
        )
    if height * width > MAX_PIXELS:
        raise ValueError(
            f"{name} is too large: {width} x {height} = {width * height} pixels; at most "
            f"{MAX_PIXELS} pixels are accepted. Downscale it first."
        )
    long_side, short_side = max(height, width), min(height, width)
    # ResizeLongestSide rounds the short side with int(x + 0.5); it must not become 0.
    if int(short_side * _MODEL_LONG_SIDE / long_side + 0.5) < 1:
        raise ValueError(
            f"{name} is too elongated: {width} x {height} pixels (width x height) leaves no "
            f"pixel on the short side at the model's {_MODEL_LONG_SIDE}-pixel input size."
        )


def load_image(path: str | os.PathLike[str], *, name: str = "image") -> Image.Image:
    """Open an image file with PIL, check its size before decoding, apply EXIF orientation.

    Returns a decoded PIL image. Raises ``FileNotFoundError`` for a missing file and
    ``ValueError`` (naming ``name``) for files PIL cannot read or that are too large.
    """
    p = Path(os.fspath(path))
    if not p.is_file():
        raise FileNotFoundError(f"{name}: no such image file: {str(p)!r}")
    unreadable = (Image.UnidentifiedImageError, SyntaxError, OSError, ValueError, EOFError)
    try:
        # Image.open only reads the header; it raises DecompressionBombError on its own above
        # 2 x Image.MAX_IMAGE_PIXELS, and we refuse anything above our limits below.
        im = Image.open(p)
    except Image.DecompressionBombError as err:
        raise ValueError(f"{name}: {str(p)!r} is too large to decode safely ({err}).") from err
    except unreadable as err:
        raise ValueError(f"{name}: cannot read {str(p)!r} as an image ({err}).") from err
    with im:
        check_image_size(im.height, im.width, name=name)  # before any pixel is decoded
        try:
            im.load()
            transposed = ImageOps.exif_transpose(im)
        except unreadable as err:  # truncated or corrupt data
            raise ValueError(f"{name}: cannot read {str(p)!r} as an image ({err}).") from err
    if transposed is None:  # pragma: no cover - only with in_place=True
        raise ValueError(f"{name}: cannot apply EXIF orientation to {str(p)!r}.")
    return transposed


def _pil_to_array(im: Image.Image) -> np.ndarray:
    """Pixels of a PIL image as an array following the module's PIL-mode rule."""
    mode = im.mode
    if mode in ("RGBa", "La"):
        # Premultiplied alpha: undo it so that dropping alpha keeps the stored colours.
        im = im.convert("RGBA" if mode == "RGBa" else "LA")
    elif mode in ("P", "PA"):
        im = im.convert("RGBA")
    elif mode in ("CMYK", "YCbCr", "LAB", "HSV"):
        im = im.convert("RGB")
    elif mode not in ("1", "L", "LA", "RGB", "RGBA", "RGBX", "I", "F") and not mode.startswith(
        "I;16"
    ):
        try:
            im = im.convert("RGB")
        except (ValueError, OSError) as err:
            raise TypeError(f"image: unsupported PIL image mode {mode!r}.") from err
    arr = np.asarray(im)
    if im.mode == "LA":
        arr = arr[:, :, 0]  # H x W x 2 (gray, alpha) -> H x W: alpha dropped
    return arr


def _to_uint8_values(arr: np.ndarray, name: str) -> np.ndarray:
    """Apply the module's dtype rule; returns a uint8 array of the same shape."""
    if not arr.dtype.isnative:
        # Big-endian data (e.g. PIL's I;16B): native byte order first, same values.
        arr = arr.astype(arr.dtype.newbyteorder("="))
    kind = arr.dtype.kind
    if arr.dtype == np.uint8:
        return arr
    if kind == "b":
        return arr.astype(np.uint8) * np.uint8(255)
    if arr.dtype == np.uint16:
        # round(v / 257) without floats: 257 is odd, so v / 257 never ends in exactly .5.
        return ((arr.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if kind in "iu":
        lo, hi = (int(arr.min()), int(arr.max())) if arr.size else (0, 0)
        if lo < 0 or hi > 255:
            raise ValueError(
                f"{name} has dtype {arr.dtype} with values in [{lo}, {hi}]; integer images other "
                "than uint8/uint16 must hold values in 0..255. Scale the data to 0..255 (or cast "
                "16-bit data to uint16) first."
            )
        return arr.astype(np.uint8)
    if kind == "f":
        finite = np.isfinite(arr)
        if not finite.all():
            raise ValueError(f"{name} contains NaN or infinite values.")
        flo, fhi = float(arr.min()), float(arr.max())
        if flo < 0.0 or fhi > 1.0:
            hint = (
                " It looks like 0..255 data: divide by 255 or cast it to uint8 first."
                if flo >= 0.0 and fhi <= 255.0
                else ""
            )
            raise ValueError(
                f"{name} is floating point with values in [{flo:g}, {fhi:g}]; float images must "
                f"lie in [0, 1].{hint}"
            )
        # round(v * 255), half away from zero (all values are >= 0); computed in float32
        # at most, which represents every v * 255 in [0, 255] accurately enough to round.
        work = arr.astype(np.float32, copy=False) if arr.dtype.itemsize < 4 else arr
        return np.floor(work * 255 + 0.5).astype(np.uint8)
    raise TypeError(
        f"{name} has unsupported dtype {arr.dtype}; expected uint8 (or bool, uint16, another "
        "integer type holding 0..255, or float in [0, 1])."
    )


def _is_torch_tensor(obj: Any) -> bool:
    # Checked by module name: torch is only imported when the user already gave a tensor.
    return type(obj).__module__.split(".")[0] == "torch" and hasattr(obj, "detach")


def _tensor_to_array(tensor: Any, name: str) -> np.ndarray:
    """A CPU tensor ``(H, W)``, ``(H, W, C)`` or ``(C, H, W)`` -> numpy, channels last."""
    import torch

    if tensor.device.type != "cpu":
        raise TypeError(
            f"{name} is a torch tensor on {tensor.device}; move it to the CPU first "
            f"({name}.cpu()) or pass {name}.cpu().numpy()."
        )
    t = tensor.detach()
    if t.dtype in (torch.bfloat16, torch.float16):
        t = t.float()  # bfloat16 has no numpy dtype; values are unchanged
    if t.ndim == 3 and t.shape[2] not in (1, 3, 4) and t.shape[0] in (1, 3, 4):
        t = t.permute(1, 2, 0)  # C x H x W -> H x W x C
    try:
        return t.numpy()
    except (TypeError, RuntimeError) as err:
        raise TypeError(
            f"{name}: cannot read torch tensor of dtype {t.dtype} ({err}); pass {name}.numpy() "
            "converted to uint8 or float in [0, 1]."
        ) from err


def to_rgb_uint8(
    image: _ImageLike, image_format: str = "RGB", *, name: str = "image"
) -> np.ndarray:
    """Convert ``image`` to an ``(H, W, 3)`` uint8 RGB C-contiguous array (module rule).

    Args:
        image: numpy array, CPU torch tensor, PIL image, or path to an image file (see the
            module docstring).
        image_format: channel order of a 3- or 4-channel *array*: ``"RGB"`` or ``"BGR"``.
            PIL images and files are always RGB; asking for ``"BGR"`` with them is an error.
        name: argument name used in error messages.

    Returns:
        ``(H, W, 3)`` uint8 C-contiguous array. When ``image`` already is exactly that, it is
        returned itself (no copy): treat the result as read-only.
    """
    if image_format not in ("RGB", "BGR"):
        raise ValueError(f"image_format must be 'RGB' or 'BGR', got {image_format!r}.")
    from_file = isinstance(image, (str, os.PathLike))
    if from_file:
        image = load_image(image, name=name)  # already EXIF-oriented
    if isinstance(image, Image.Image):
        if image_format != "RGB":
            raise ValueError(
                f"image_format={image_format!r} only applies to numpy arrays; PIL images and image "
                "files are always RGB."
            )
        check_image_size(image.height, image.width, name=name)
        if not from_file:
            oriented = ImageOps.exif_transpose(image)
            image = oriented if oriented is not None else image
        arr = _pil_to_array(image)
    elif isinstance(image, np.ndarray):
        arr = image
    elif _is_torch_tensor(image):
        arr = _tensor_to_array(image, name)
    else:
        raise TypeError(
            f"{name} must be a numpy array (H x W x 3), a CPU torch tensor, a PIL image or a path "
            f"to an image file; got {type(image).__module__}.{type(image).__qualname__}."
        )

    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        hint = ""
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[2] not in (1, 3, 4):
            hint = " It looks channels-first: use image.transpose(1, 2, 0)."
        raise ValueError(
            f"{name} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got "
            f"{tuple(arr.shape)}.{hint}"
        )
    check_image_size(arr.shape[0], arr.shape[1], name=name)

    channels = arr.shape[2]
    # Select channels before converting values: less work, and alpha never needs checking.
    if channels == 4:
        arr = arr[:, :, :3]
    if channels >= 3 and image_format == "BGR":
        arr = arr[:, :, ::-1]
    arr = _to_uint8_values(arr, name)
    if channels == 1:
        arr = np.repeat(arr, 3, axis=2)
    return np.ascontiguousarray(arr)
