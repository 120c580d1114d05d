"""Verified, atomic file downloads (the mechanism behind ``checkpoints.download``).

Every download streams into its own temp file (``tempfile.mkstemp`` in the target's folder:
unique per process and thread), checks byte count and hashes, fsyncs, and publishes it with
one ``os.replace``. Readers see no file, the old file, or a complete verified file; a failed
download deletes its temp file and never touches the target.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import socket
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tqdm.auto import tqdm

from ..data.atomic import fsync_dir

_CHUNK = 1 << 20  # 1 MiB per read
_DEFAULT_TIMEOUT = 30.0  # seconds per connect / per socket read, not for the whole file
_STALE_PART_AGE = 6 * 3600.0  # a temp file untouched this long belongs to a dead download
_USER_AGENT = "sam-widget (+https://github.com/facebookresearch/segment-anything)"


class DownloadError(RuntimeError):
    """A checkpoint download failed (network, HTTP status, size or hash). The target file
    was not created or changed."""


def _hint(variant: str | None, filename: str, dest: Path | None) -> str:
    shown = repr(variant) if variant is not None else "variant"
    text = (
        "To use a checkpoint file you already have (or downloaded yourself), pass its path: "
        f'build_sam({shown}, checkpoint="/path/to/{filename}")'
    )
    if dest is not None:
        text += f", or save the file as {dest}"
    return text + "."


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    size: int | None = None,
    md5_prefix: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float = _DEFAULT_TIMEOUT,
) -> Path:
    """Download ``url`` to ``dest`` atomically and verified; return ``dest`` as a Path.

    The body streams into a unique temp file in ``dest``'s directory while MD5/SHA-256 are
    computed; the byte count is checked against ``Content-Length`` and ``size``, the hashes
    against ``md5_prefix`` (leading hex digits) and ``sha256``; then the temp file is
    fsynced and ``os.replace``-d onto ``dest``. Any failure raises ``DownloadError`` (the
    message says what failed and how to use a local file instead), removes the temp file
    and leaves an existing ``dest`` untouched. ``timeout`` (seconds) bounds the connection
    and each socket read. ``progress=False`` disables the tqdm bar (stderr).
    """
    return _download(
        url,
        Path(os.fspath(dest)),
        size=size,
        md5_prefix=md5_prefix,
        sha256=sha256,
        progress=progress,
        timeout=timeout,
        variant=None,
    )


def _part_prefix(dest: Path) -> str:
    return f".{dest.name}."


def _remove_stale_parts(dest: Path) -> None:
    """Remove temp files of downloads of ``dest`` that died without cleaning up (killed
    processes). A live download writes its temp file at least every ``timeout`` seconds,
    so anything untouched for hours is dead."""
    now = time.time()
    prefix = _part_prefix(dest)
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        if not (entry.name.startswith(prefix) and entry.name.endswith(".part")):
            continue
        try:
            if now - entry.stat().st_mtime > _STALE_PART_AGE:
                entry.unlink()
        except OSError:
            pass


def _describe_network_error(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"the server answered HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        reason = exc.reason
        if isinstance(reason, BaseException):
            return _describe_network_error(reason, timeout)
        return f"could not connect ({reason})"
    if isinstance(exc, (TimeoutError, socket.timeout)):
        return f"the connection timed out (no data for {timeout:g} s)"
    if isinstance(exc, ConnectionRefusedError):
        return "the connection was refused (no server listening at that address)"
    if isinstance(exc, socket.gaierror):
        return f"the host name could not be resolved ({exc}); are you offline?"
    if isinstance(exc, ConnectionError):
        return f"the connection broke ({type(exc).__name__}: {exc})"
    if isinstance(exc, http.client.HTTPException):
        return f"the HTTP response was malformed or cut off ({type(exc).__name__}: {exc})"
    return f"{type(exc).__name__}: {exc}"


def _download(
    url: str,
    dest: Path,
    *,
    size: int | None,
    md5_prefix: str | None,
    sha256: str | None,
    progress: bool,
    timeout: float,
    variant: str | None,
) -> Path:
    if not isinstance(url, str) or not url:
        raise ValueError(f"url must be a non-empty str, got {url!r}")
    if size is not None and (not isinstance(size, int) or size < 0):
        raise ValueError(f"size must be a non-negative int or None, got {size!r}")
    if md5_prefix is not None:
        md5_prefix = md5_prefix.lower()
    if sha256 is not None:
        sha256 = sha256.lower()
    hint = _hint(variant, dest.name, dest)

    def fail(what: str) -> DownloadError:
        end = "" if what.endswith((".", "?", "!")) else "."
        return DownloadError(f"Could not download {url} -> {dest}: {what}{end}\n{hint}")

    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"cannot create the directory {dest.parent} ({exc})") from exc
    _remove_stale_parts(dest)
    if size is not None:
        try:
            free = shutil.disk_usage(dest.parent).free
        except OSError:
            free = None
        if free is not None and free < size:
            raise fail(f"not enough disk space in {dest.parent}: need {size} bytes, {free} free")

    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f"{_part_prefix(dest)}{os.getpid()}.", suffix=".part", dir=dest.parent
        )
    except OSError as exc:
        raise fail(f"cannot create a temporary file in {dest.parent} ({exc})") from exc
    tmp = Path(tmp_name)
    published = False
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(request, timeout=timeout)
            except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
                raise fail(_describe_network_error(exc, timeout)) from exc
            with response:
                header = response.headers.get("Content-Length")
                announced: int | None = None
                if header is not None:
                    try:
                        announced = int(header)
                    except ValueError:
                        announced = None
                if size is not None and announced is not None and announced != size:
                    raise fail(
                        f"the server announced {announced} bytes but the expected size is "
                        f"{size} bytes (wrong file, or an error page)"
                    )
                total = size if size is not None else announced
                md5 = hashlib.md5(usedforsecurity=False)
                sha = hashlib.sha256()
                received = 0
                with tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=f"Downloading {dest.name}",
                    disable=not progress,
                    file=sys.stderr,
                ) as bar:
                    while True:
                        try:
                            chunk = response.read(_CHUNK)
                        except (OSError, http.client.HTTPException) as exc:
                            raise fail(
                                f"the transfer failed after {received} bytes: "
                                + _describe_network_error(exc, timeout)
                            ) from exc
                        if not chunk:
                            break
                        try:
                            out.write(chunk)
                        except OSError as exc:
                            raise fail(f"cannot write {tmp} ({exc})") from exc
                        md5.update(chunk)
                        sha.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                        if size is not None and received > size:
                            raise fail(f"the server sent more than the expected {size} bytes")
            if announced is not None and received != announced:
                raise fail(f"the transfer was cut off: received {received} of {announced} bytes")
            if size is not None and received != size:
                raise fail(f"received {received} bytes, expected {size} bytes")
            if md5_prefix is not None and not md5.hexdigest().startswith(md5_prefix):
                raise fail(
                    f"MD5 mismatch: expected a digest starting with {md5_prefix}, "
                    f"got {md5.hexdigest()} (corrupted or different file)"
                )
            if sha256 is not None and sha.hexdigest() != sha256:
                raise fail(
                    f"SHA-256 mismatch: expected {sha256}, got {sha.hexdigest()} "
                    "(corrupted or different file)"
                )
            try:
                out.flush()
                os.fsync(out.fileno())
            except OSError as exc:
                raise fail(f"cannot write {tmp} ({exc})") from exc
        try:
            os.replace(tmp, dest)
        except OSError as exc:
            # Windows refuses to replace a file that another process holds open (e.g. one
            # loading it). If that file is a complete copy (only verified files are ever
            # renamed into place, so another download of ours won the race), use it.
            busy = sys.platform == "win32" and isinstance(exc, PermissionError)
            if busy and dest.is_file() and dest.stat().st_size == received:
                return dest
            raise fail(f"cannot move the verified download into place ({exc})") from exc
        published = True
        fsync_dir(dest.parent)
        return dest
    finally:
        if not published:
            try:
                tmp.unlink()
            except FileNotFoundError:
                pass
            except OSError:
                pass
