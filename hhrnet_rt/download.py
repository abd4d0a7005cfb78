"""Named weights: download once into a cache, verify the sha256 prefix, reuse afterwards.

The files are MMPose's model-zoo checkpoints (their names carry the first 8 hex digits of their
sha256, which is what is checked). A download goes to a temporary file in the cache directory and is
renamed into place only after the hash matched, so an interrupted or corrupt download never leaves a
file that looks cached.

Cache directory: ``$HHRT_CACHE_DIR``, else ``$XDG_CACHE_HOME/hhrnet-rt``, else ``~/.cache/hhrnet-rt``.

Example:
    >>> path = fetch_named("w32_512")   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from hhrnet_rt.errors import DownloadError
from hhrnet_rt.paths import cache_dir  # re-exported: callers ask this module where weights live


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
_TIMEOUT_S = 30.0


def fetch_named(name: str, *, progress: bool = True) -> Path:
    """Path of the cached checkpoint ``name``, downloading and hash-checking it on first use.

    Raises:
        DownloadError: unknown name, network failure (the message gives the URL and how to pass a local
            file instead), or a hash mismatch (the bad file is deleted).
    """
    if name not in NAMED_WEIGHTS:
        raise DownloadError(f"no named weights {name!r}; available: {', '.join(NAMED_WEIGHTS)}")
    entry = NAMED_WEIGHTS[name]
    target = cache_dir() / entry.filename
    if target.is_file():
        return target  # only ever created by the atomic rename below, after the hash matched
    target.parent.mkdir(parents=True, exist_ok=True)
    _download(entry, target, progress=progress)
    return target


def _download(entry: NamedWeights, target: Path, *, progress: bool) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(entry.url, timeout=_TIMEOUT_S) as resp:
                    total = int(resp.headers.get("Content-Length") or 0) or None
                    with _progress_bar(progress, target.name, total) as advance:
                        while chunk := resp.read(_CHUNK):
                            out.write(chunk)
                            digest.update(chunk)
                            advance(len(chunk))
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                reason = getattr(e, "reason", None) or e
                raise DownloadError(
                    f"could not download {entry.url} ({reason}). Without network access, download the file "
                    f"elsewhere and pass it with --weights /path/to/{target.name}, or copy it to {target}."
                ) from None
        got = digest.hexdigest()
        if not got.startswith(entry.sha256_prefix.lower()):
            raise DownloadError(
                f"{entry.url} downloaded but its sha256 is {got[:16]}..., expected a hash starting with "
                f"{entry.sha256_prefix}; the file was deleted. Retry later, or pass a file you trust with "
                "--weights /path/to/file.pth."
            )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class _progress_bar:  # noqa: N801 - used as a context manager like a function
    """A Rich progress bar on stderr that yields an ``advance(n_bytes)`` callable; silent if disabled."""

    def __init__(self, enabled: bool, label: str, total: int | None) -> None:
        self.enabled, self.label, self.total = enabled, label, total
        self._progress = None

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.console import Console
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

        self._progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=Console(stderr=True),
            transient=True,
        )
        self._progress.__enter__()
        task = self._progress.add_task(f"downloading {self.label}", total=self.total)
        return lambda n: self._progress.advance(task, n)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)
