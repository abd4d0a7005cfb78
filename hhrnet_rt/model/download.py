"""Named weights: download once into a cache, verify the sha256 prefix, reuse afterwards.

The files are MMPose's model-zoo checkpoints (their names carry the first 8 hex digits of their
sha256, which is what is checked). A download goes to a temporary file in the cache directory and is
renamed into place only after the hash matched, so an interrupted or corrupt download never leaves a
file that looks cached; the temporary file is removed on every failure path.

Nothing on disk or on the wire is trusted:

- a cached file is hashed again every time it is used (a different file placed under the cached name is
  refused with a message naming it; it is not deleted, hhrt did not write it in this run);
- downloads are https only, also after redirects (:data:`PLAIN_HTTP_HOSTS` lists the exceptions; empty
  except in tests, which serve files from 127.0.0.1);
- a download has an overall deadline (:data:`DEADLINE_S`) besides the per-read timeout, and a size cap
  (:data:`MAX_BYTES`), checked against Content-Length first and against the bytes actually received.

Cache directory: ``$HHRT_CACHE_DIR``, else ``$XDG_CACHE_HOME/hhrnet-rt``, else ``~/.cache/hhrnet-rt``; if it
cannot be written, a private temporary folder (:func:`hhrnet_rt.core.paths.writable_cache_dir`).

Example:
    >>> path = fetch_named("w32_512")   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hhrnet_rt.core.errors import DownloadError, option
from hhrnet_rt.core.paths import cache_candidates, writable_cache_dir
from hhrnet_rt.core.paths import (
    cache_dir as cache_dir,  # re-exported: callers ask this module where weights live
)

if TYPE_CHECKING:  # rich is imported when a bar is shown
    from rich.progress import Progress


@dataclass(frozen=True)
class NamedWeights:
    """One downloadable checkpoint: where it is and the sha256 prefix it must have."""

    url: str
    sha256_prefix: str

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


#: Name -> checkpoint. A plain module-level dict on purpose: tests (and users with a mirror) replace
#: entries, e.g. ``monkeypatch.setitem(NAMED_WEIGHTS, "w32_512", NamedWeights(local_url, prefix))``.
NAMED_WEIGHTS: dict[str, NamedWeights] = {
    "w32_512": NamedWeights(
        "https://download.openmmlab.com/mmpose/bottom_up/higher_hrnet32_coco_512x512-8ae85183_20200713.pth",
        "8ae85183",
    ),
    "w32_640": NamedWeights(
        "https://download.openmmlab.com/mmpose/bottom_up/higher_hrnet32_coco_640x640-a22fe938_20200712.pth",
        "a22fe938",
    ),
    "w48_512": NamedWeights(
        "https://download.openmmlab.com/mmpose/bottom_up/higher_hrnet48_coco_512x512-60fedcbc_20200712.pth",
        "60fedcbc",
    ),
}

_CHUNK = 1 << 20
#: Per-read timeout (a stalled connection fails after this long).
_TIMEOUT_S = 30.0
#: Overall deadline of one download: a server trickling bytes cannot hold a run forever.
DEADLINE_S = 30 * 60.0
#: The largest checkpoint accepted (the released ones are 110-250 MB).
MAX_BYTES = 1 << 30
#: Hosts that may be fetched over plain http. Empty: only https. Tests add "127.0.0.1" for their
#: local server (``monkeypatch.setattr(download, "PLAIN_HTTP_HOSTS", {"127.0.0.1"})``).
PLAIN_HTTP_HOSTS: set[str] = set()


def check_url(url: str) -> None:
    """Raise DownloadError unless ``url`` is https (or http to a host in :data:`PLAIN_HTTP_HOSTS`)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in PLAIN_HTTP_HOSTS):
        return
    raise DownloadError(
        f"refused to download {url}: only https URLs are fetched (a checkpoint over plain http, or a "
        "redirect to one, could be replaced on the way). Download the file yourself and pass it with "
        f"{option('weights', '/path/to/file.pth')}."
    )


def _matches(path: Path, prefix: str) -> bool:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest().startswith(prefix.lower())


def cached_state(name: str) -> tuple[str, Path | None]:
    """``("verified", path)``, ``("mismatch", path)`` or ``("missing", None)`` for named weights ``name``.

    "verified" means the file's sha256 was computed now and starts with the expected prefix.
    """
    entry = NAMED_WEIGHTS[name]
    mismatch = None
    for folder in cache_candidates():
        path = folder / entry.filename
        if path.is_file():
            if _matches(path, entry.sha256_prefix):
                return "verified", path
            mismatch = mismatch or path
    return ("mismatch", mismatch) if mismatch else ("missing", None)


def needs_download(name: str) -> bool:
    """True when no cache folder holds a file named like checkpoint ``name`` (a quick look, no hashing:
    callers use it to show the download before other progress displays; :func:`fetch_named` checks)."""
    filename = NAMED_WEIGHTS[name].filename
    return not any((folder / filename).is_file() for folder in cache_candidates())


def cached_weight_files() -> list[Path]:
    """The named checkpoints present in the package cache and its temporary fallback (any content)."""
    return [
        folder / entry.filename
        for folder in cache_candidates()
        for entry in NAMED_WEIGHTS.values()
        if (folder / entry.filename).is_file() and not (folder / entry.filename).is_symlink()
    ]


def fetch_named(name: str, *, progress: bool = True, timeout_s: float | None = None) -> Path:
    """Path of the cached checkpoint ``name``, downloading and hash-checking it on first use.

    ``timeout_s``: how long connecting, and each read, may take (default 30 s); ``hhrt demo`` gives up
    sooner, as it has a fallback.

    A cached file is hashed again on every call; one that does not match is refused, not replaced.

    Raises:
        DownloadError: unknown name, network failure (the message gives the URL and how to pass a local
            file instead), a refused URL, a download over the size cap or deadline, a hash mismatch (the
            bad download is deleted), or a cached file that does not match its hash.
    """
    if name not in NAMED_WEIGHTS:
        raise DownloadError(f"no named weights {name!r}; available: {', '.join(NAMED_WEIGHTS)}")
    entry = NAMED_WEIGHTS[name]
    state, found = cached_state(name)
    if state == "verified":
        assert found is not None
        return found
    if state == "mismatch":
        raise DownloadError(
            f"the cached file {found} is not the {name} checkpoint: its sha256 does not start with "
            f"{entry.sha256_prefix} (changed or replaced since it was downloaded). Delete it to download "
            f"it again, or pass a file you trust with {option('weights', '/path/to/file.pth')}."
        )
    check_url(entry.url)
    target = writable_cache_dir() / entry.filename
    _download(entry, target, progress=progress, timeout_s=timeout_s or _TIMEOUT_S)
    return target


def _download(entry: NamedWeights, target: Path, *, progress: bool, timeout_s: float) -> None:
    tmp: Path | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        tmp = Path(tmp_name)
        with os.fdopen(fd, "wb") as out:
            digest = _stream(entry, target, out, progress=progress, timeout_s=timeout_s)
        got = digest.hexdigest()
        if not got.startswith(entry.sha256_prefix.lower()):
            raise DownloadError(
                f"{entry.url} downloaded but its sha256 is {got[:16]}..., expected a hash starting with "
                f"{entry.sha256_prefix}; the file was deleted. Retry later, or pass a file you trust with "
                f"{option('weights', '/path/to/file.pth')}."
            )
        os.replace(tmp, target)
    except OSError as e:  # the cache folder itself (mkstemp, write, rename): not the network
        raise DownloadError(f"could not write the download to {target.parent} ({e})") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _stream(entry: NamedWeights, target: Path, out, *, progress: bool, timeout_s: float):
    """Copy the response body into ``out`` within the deadline and size cap; returns the sha256 object."""
    digest = hashlib.sha256()
    deadline = time.monotonic() + DEADLINE_S
    opener = urllib.request.build_opener(_HttpsOnlyRedirects)
    received = 0
    try:
        with opener.open(entry.url, timeout=timeout_s) as resp:
            check_url(resp.geturl())
            total = int(resp.headers.get("Content-Length") or 0) or None
            if total is not None and total > MAX_BYTES:
                raise DownloadError(_too_big(entry.url, f"announces {total:,} bytes"))
            with _progress_bar(progress, target.name, total) as advance:
                while chunk := resp.read(_CHUNK):
                    received += len(chunk)
                    if received > MAX_BYTES:
                        raise DownloadError(_too_big(entry.url, f"sent more than {MAX_BYTES:,} bytes"))
                    if time.monotonic() > deadline:
                        raise DownloadError(
                            f"downloading {entry.url} took longer than {DEADLINE_S:.0f} s and was stopped "
                            f"({received:,} bytes received); retry later, or download the file elsewhere "
                            f"and pass it with {option('weights', f'/path/to/{target.name}')}."
                        )
                    out.write(chunk)
                    digest.update(chunk)
                    advance(len(chunk))
    except (urllib.error.URLError, OSError, TimeoutError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise DownloadError(
            f"could not download {entry.url} ({reason}). Without network access, download the file "
            f"elsewhere and pass it with {option('weights', f'/path/to/{target.name}')}, or copy it to {target}."
        ) from None
    return digest


def _too_big(url: str, what: str) -> str:
    return (
        f"refused {url}: the server {what}, more than the {MAX_BYTES:,}-byte limit for a checkpoint "
        "(a wrong file or a hostile server)"
    )


class _HttpsOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL :func:`check_url` accepts (https, or a configured test host)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        check_url(newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class _progress_bar:  # noqa: N801 - used as a context manager like a function
    """A Rich progress bar on stderr that yields an ``advance(n_bytes)`` callable; silent if disabled."""

    def __init__(self, enabled: bool, label: str, total: int | None) -> None:
        self.enabled, self.label, self.total = enabled, label, total
        self._progress: Progress | None = None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        progress = self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        progress.__enter__()
        task = progress.add_task(f"downloading {self.label}", total=self.total)
        return lambda n: progress.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
