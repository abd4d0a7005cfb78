"""Size checks on a checkpoint before anything is allocated for it: no decompression bomb, no header that
claims terabytes, no multi-GB RSS or MemoryError traceback from a hostile or damaged file.

What is checked, all from headers (nothing is unpickled for real, no tensor is built):

- the file itself is at most :data:`MAX_CHECKPOINT_BYTES` (the released models are 110-260 MB);
- zip containers (``.npz``, torch's zip ``.pth``): the total uncompressed size from the central directory
  is at most :data:`MAX_LOADED_BYTES`, and compressed members do not expand more than
  :data:`MAX_RATIO`-fold (numpy and torch store arrays uncompressed or barely compressible);
- ``.npy`` members: the header's shape x itemsize must equal the member's size, and object arrays are
  refused (numpy allocates the array from the header before reading the data);
- torch pickles (``data.pkl`` in a zip, or the legacy stream): every storage the pickle announces
  (element count x element size) must fit in the bytes the file holds for it -- torch allocates each
  storage from that announced count. The pickle is walked by :class:`_StorageScan`, which turns every
  global into an inert stub, so no code from the file runs.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from hhrnet_rt.core.errors import WeightsError

MAX_CHECKPOINT_BYTES = 2 << 30
MAX_LOADED_BYTES = 2 << 30
MAX_RATIO = 50
# torch storage class name -> element size in bytes (unknown names count as 1: under-claiming is safe
# here, the comparison is "announced bytes <= bytes present").
_ELEMENT_SIZES = {
    "DoubleStorage": 8, "FloatStorage": 4, "HalfStorage": 2, "BFloat16Storage": 2, "LongStorage": 8,
    "IntStorage": 4, "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1,
    "ComplexFloatStorage": 8, "ComplexDoubleStorage": 16,
}  # fmt: skip


def check_checkpoint_sizes(path: Path) -> None:
    """Raise WeightsError when ``path``'s headers announce more than it holds or more than a model needs."""
    size = path.stat().st_size
    if size > MAX_CHECKPOINT_BYTES:
        raise WeightsError(f"{path} is {size:,} bytes; no HigherHRNet checkpoint is that large, refused")
    if zipfile.is_zipfile(path):
        _check_zip(path)
    else:
        with open(path, "rb") as f:
            _check_storages(path, _scan_legacy(f), available=size)


def _refuse(path: Path, what: str) -> WeightsError:
    return WeightsError(f"refused to load {path}: {what} (a damaged or hostile file; nothing was allocated)")


def _check_zip(path: Path) -> None:
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
        total = sum(i.file_size for i in infos)
        if total > MAX_LOADED_BYTES:
            raise _refuse(
                path, f"its members unpack to {total:,} bytes, more than the {MAX_LOADED_BYTES:,} limit"
            )
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED and info.file_size > MAX_RATIO * max(
                info.compress_size, 1
            ):
                raise _refuse(
                    path, f"{info.filename} expands {info.compress_size:,} -> {info.file_size:,} bytes"
                )
        if infos and all(i.filename.endswith(".npy") for i in infos):
            for info in infos:
                _check_npy_header(path, zf, info)
            return
        pickles = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
        if len(pickles) == 1:
            prefix = pickles[0].filename[: -len("data.pkl")]
            sizes = {i.filename: i.file_size for i in infos}
            try:
                storages = _StorageScan.scan(io.BytesIO(zf.read(pickles[0])))
            except Exception:  # noqa: BLE001 - not a torch pickle: torch.load reports that itself
                return
            for key, nbytes in storages.items():
                have = sizes.get(f"{prefix}data/{key}", 0)
                if nbytes > have:
                    raise _refuse(
                        path, f"storage {key} announces {nbytes:,} bytes but the file holds {have:,}"
                    )


def _check_npy_header(path: Path, zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
    with zf.open(info) as member:
        try:
            version = np.lib.format.read_magic(member)
            read_header = {
                (1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0,
            }.get(version)  # fmt: skip
            if read_header is None:
                raise ValueError(f".npy format version {version} is not one numpy's savez writes here")
            shape, _fortran, dtype = read_header(member)
            header_len = member.tell()
        except Exception as exc:  # noqa: BLE001 - any malformed header
            raise _refuse(path, f"{info.filename} has no valid .npy header ({exc})") from None
    if dtype.hasobject:
        raise WeightsError(f"{path}: the .npz holds arrays that need pickle ({info.filename}), refused")
    nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if nbytes != info.file_size - header_len:
        raise _refuse(
            path,
            f"{info.filename} announces shape {shape} ({nbytes:,} bytes) but holds {info.file_size - header_len:,}",
        )


def _check_storages(path: Path, storages: dict[str, int] | None, *, available: int) -> None:
    if storages is None:
        return
    claimed = sum(storages.values())
    if claimed > available:
        raise _refuse(path, f"its storages announce {claimed:,} bytes but the file is {available:,} bytes")


def _scan_legacy(f) -> dict[str, int] | None:
    """Storages of a legacy (pre-zip) torch file: magic, protocol, sys_info, then the object pickle."""
    try:
        for _ in range(3):
            _StorageScan(f).load()
        return _StorageScan.scan(f)
    except Exception:  # noqa: BLE001 - not a legacy torch file: torch.load reports what it is
        return None


class _Inert:
    """What every global in a scanned pickle becomes: accepts any construction and state, does nothing."""

    storage_name = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __call__(self, *args: Any, **kwargs: Any) -> _Inert:
        return _Inert()

    def __setstate__(self, state: Any) -> None:
        pass

    def __setitem__(self, key: Any, value: Any) -> None:
        pass

    def append(self, value: Any) -> None:
        pass

    def extend(self, values: Any) -> None:
        pass


class _StorageScan(pickle.Unpickler):
    """Walks a torch pickle, recording ``{storage key: announced bytes}``; runs nothing from the file."""

    def __init__(self, f) -> None:
        super().__init__(f)
        self.storages: dict[str, int] = {}

    @classmethod
    def scan(cls, f) -> dict[str, int]:
        scanner = cls(f)
        scanner.load()
        return scanner.storages

    def find_class(self, module: str, name: str) -> type:
        return type(name, (_Inert,), {"storage_name": name})

    def persistent_load(self, pid: Any) -> Any:
        if isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage":
            storage_type, key, numel = pid[1], str(pid[2]), pid[4]
            if isinstance(numel, int):
                size = _ELEMENT_SIZES.get(getattr(storage_type, "storage_name", ""), 1)
                self.storages[key] = max(self.storages.get(key, 0), numel * size)
        return _Inert()
