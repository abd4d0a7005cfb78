"""The rules for every file hhrt writes: users' files are never destroyed.

- An output is never the input (same path, symlink or hard link), not even with ``overwrite``.
- An existing file is replaced only with ``overwrite`` (the CLI's ``--overwrite``, ffmpeg's ``-y``), and
  then only when the first bytes of the new one are written; until then the old file is untouched.
- A file is created exclusively (``O_EXCL``), so "created in this run" is a fact, not a guess, and only
  such a file is ever removed again (an mp4 that got no frame).
- Record files are appended in whole records: a write that fails (disk full) is cut back to the last
  whole record, so a JSON lines file never ends in half a line.
- A failure for lack of space becomes :class:`~hhrnet_rt.core.errors.DiskFullError` naming the file.

Every check runs before the model loads, so a bad ``--out`` fails at once instead of after minutes.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from hhrnet_rt.core.errors import DiskFullError, InputError, option
from hhrnet_rt.core.inputs import NAME_MAX, shown
from hhrnet_rt.core.temporaries import process_tag, remove_temporary, temporary_name

_NO_SPACE = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
PATH_MAX = 4096  # bytes in a whole path on Linux


class InputFiles:
    """The files a run reads, by identity (device and inode: a symlink or hard link is the same file).

    Each input is looked at once, so checking every output of a run against every input is one lookup per
    output: planning 10,000 inputs stays linear (a pairwise ``samefile`` was quadratic).
    """

    def __init__(self, inputs: Iterable[str | Path] = ()) -> None:
        self._ids: dict[tuple[int, int], str | Path] = {}
        for source in inputs:
            key = _identity(source)
            if key is not None:
                self._ids.setdefault(key, source)

    def find(self, path: str | Path) -> str | Path | None:
        """The input that ``path`` is (the same file), or ``None``."""
        key = _identity(path)
        return None if key is None else self._ids.get(key)


def _identity(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except (OSError, ValueError):  # does not exist (yet), or a name the OS refuses: no input is it
        return None
    return st.st_dev, st.st_ino


def refuse_input(path: Path, what: str, inputs: InputFiles | Iterable[str | Path]) -> None:
    """Raise InputError if ``path`` is one of the ``inputs`` (by identity of the file, not its name)."""
    known = inputs if isinstance(inputs, InputFiles) else InputFiles(inputs)
    source = known.find(path)
    if source is not None:
        raise InputError(
            f"{what} {path} is the input file {source}; choose another name (hhrt never writes over its input)"
        )


def refuse_existing(path: Path, what: str, overwrite: bool) -> None:
    """The one home of the overwrite rule: an existing file (or link) is replaced only with consent."""
    if not overwrite and (path.exists() or path.is_symlink()):
        raise InputError(f"{what} {path} already exists; add {option('overwrite', True)} to replace it")


def check_name_length(path: Path, what: str) -> None:
    """An output name the file system can hold (its temporaries are cut to fit: see
    :mod:`hhrnet_rt.core.temporaries`); said before the model loads, not as ENAMETOOLONG after it."""
    size = len(os.fsencode(path.name))
    if size > NAME_MAX:
        raise InputError(
            f"{what} {shown(path)}: the name is {size} bytes; file systems allow at most {NAME_MAX} bytes "
            "per name: give a shorter output name (or rename the input it is named after)"
        )
    if len(os.fsencode(os.path.abspath(path))) >= PATH_MAX:
        raise InputError(f"{what} {shown(path)}: the path is too long; choose a shorter folder")


def _probe_directory(directory: Path) -> None:
    """Write a nameless temporary file there: the only honest test (os.access says yes to root on a
    read-only file system), and it never touches a file of the user's."""
    with tempfile.TemporaryFile(dir=directory):
        pass


def check_output_path(
    path: str | Path,
    suffixes: tuple[str, ...],
    what: str,
    *,
    overwrite: bool = False,
    inputs: InputFiles | Iterable[str | Path] = (),
    probe: bool = True,
) -> Path:
    """Validate an output file path before anything is computed; nothing is created or changed.

    ``probe=False`` skips the write test of the directory, for a caller that tested it already (a plan of
    thousands of outputs in one folder).

    Raises:
        InputError: unsupported extension, missing or unwritable directory, the path is a directory or
            an input, or it exists and ``overwrite`` is false.
    """
    path = Path(path)
    check_name_length(path, what)
    if path.suffix.lower() not in suffixes:
        raise InputError(
            f"{what} {path}: unsupported extension {path.suffix or '(none)'!r}; use {' or '.join(suffixes)}"
        )
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{what} {path}: directory {parent} does not exist; create it first")
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory; give a file name")
    refuse_input(path, what, inputs)
    refuse_existing(path, what, overwrite)
    if not probe:
        return path
    try:
        _probe_directory(parent)
    except OSError as exc:
        raise InputError(
            f"{what} {path}: cannot write there ({exc.strerror or exc}); choose another location"
        ) from None
    return path


def check_output_dir(directory: str | Path) -> Path:
    """Create ``directory`` (and parents) if needed and make sure files can be written in it.

    Raises:
        InputError: it cannot be created, is a file, or is not writable.
    """
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _probe_directory(directory)
    except FileExistsError:
        raise InputError(f"output directory {directory} is an existing file; give a directory") from None
    except OSError as exc:
        raise InputError(
            f"output directory {directory} cannot be used ({exc.strerror or exc}); choose another one"
        ) from None
    return directory


def is_disk_full(exc: BaseException) -> bool:
    """True for the errors that mean 'no room': ENOSPC, a quota, or a file size limit."""
    return isinstance(exc, OSError) and exc.errno in _NO_SPACE


def disk_full(path: Path, exc: OSError) -> DiskFullError:
    """The user's message for an output that ran out of space."""
    return DiskFullError(f"no space left for {path} ({exc.strerror or exc})")


def create_exclusive(path: Path, *, overwrite: bool) -> int:
    """Create ``path`` for writing and return its descriptor; with ``overwrite``, an existing file's name
    is first unlinked (so a hard-linked twin elsewhere keeps its content) and then created anew.

    Raises:
        InputError: the file exists and ``overwrite`` is false (it appeared after the checks).
    """
    if overwrite and (path.is_symlink() or path.is_file()):
        path.unlink()
    try:
        return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o666)
    except FileExistsError:
        raise InputError(f"{path} already exists; add {option('overwrite', True)} to replace it") from None


def create_temporary(final: Path) -> tuple[Path, int]:
    """Create this process's hidden temporary for ``final`` (:func:`~hhrnet_rt.core.temporaries.temporary_name`)
    and return it with an open descriptor; created exclusively, with the permissions a new file gets there
    (mkstemp's would be owner-only, and a published file keeps them)."""
    while True:
        name = temporary_name(final, process_tag())
        try:
            return name, create_exclusive(name, overwrite=False)
        except InputError:  # that random name is taken: draw another
            continue


class RecordFile:
    """An append-only file this run created, written in whole records.

    ``append`` writes one record with ``os.write`` (no buffer to lose when the run is cut short); when it
    fails, the file is truncated back to the end of the last whole record before the error is raised.
    ``_write`` is the one call that touches the disk, so tests can make it fail like a full disk.
    """

    _write = staticmethod(os.write)

    def __init__(self, path: Path, fd: int, *, shown: Path | None = None) -> None:
        self.path, self._fd, self.size = path, fd, 0
        self.shown = shown or path  # the name the user gave, for messages

    @classmethod
    def create(cls, path: Path, *, overwrite: bool) -> RecordFile:
        return cls(path, create_exclusive(path, overwrite=overwrite))

    @classmethod
    def temporary_beside(cls, final: Path) -> RecordFile:
        """A hidden temporary file in the final file's directory (so a rename can publish it), with the
        permissions a new file gets there (mkstemp's would be owner-only)."""
        name, fd = create_temporary(final)
        return cls(name, fd, shown=final)

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def append(self, data: bytes) -> None:
        """Write ``data`` whole, or leave the file as it was and raise (DiskFullError when out of space)."""
        view = memoryview(data)
        try:
            while view:
                view = view[self._write(self._fd, view) :]
        except OSError as exc:
            try:
                os.ftruncate(self._fd, self.size)  # needs no space; drops the partial record
                os.lseek(self._fd, self.size, os.SEEK_SET)  # else the next record leaves a hole of NULs
            except OSError:
                pass
            raise disk_full(self.shown, exc) if is_disk_full(exc) else exc from None
        self.size += len(data)

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def discard(self) -> None:
        """Close and remove the file, unless it was closed already (published, or kept): for a temporary,
        or a file this run created that will not be whole."""
        if not self.closed:
            self.close()
            self.path.unlink(missing_ok=True)

    def publish_as(self, final: Path, tail: bytes = b"", *, overwrite: bool) -> None:
        """Append ``tail``, close, and give this temporary its final name (:func:`publish`); if ``tail``
        cannot be written the file is discarded (it would not be whole) and the error raised."""
        try:
            if tail:
                self.append(tail)
        except BaseException:
            self.discard()
            raise
        self.close()
        publish(self.path, final, overwrite=overwrite)


def publish(temporary: Path, final: Path, *, overwrite: bool) -> None:
    """Give a finished temporary file its final name in one step; without ``overwrite`` never replace a
    file that appeared meanwhile (a hard link fails if the name exists, a rename would not)."""
    if overwrite:
        os.replace(temporary, final)
        return
    try:
        os.link(temporary, final)
    except FileExistsError:
        raise InputError(
            f"{final} was created by someone else during the run; the results are in {temporary}"
        ) from None
    except OSError:  # a file system without hard links: check, then rename (a tiny race, but no loss)
        if final.exists() or final.is_symlink():
            raise InputError(
                f"{final} was created by someone else during the run; the results are in {temporary}"
            ) from None
        os.replace(temporary, final)
        return
    temporary.unlink()


def publish_folder(temporary: Path, final: Path, *, overwrite: bool) -> None:
    """Give a finished temporary folder its final name: renamed whole when the name is free; else, with
    ``overwrite``, its files are published one by one into the existing folder (files there that this
    run did not write are left alone) and the emptied temporary removed.

    Raises:
        InputError: the name is taken and ``overwrite`` is false (the results stay in ``temporary``).
    """
    if not final.exists() and not final.is_symlink():
        try:
            os.rename(temporary, final)  # atomic; on POSIX it may only replace an empty folder
            return
        except OSError:
            pass  # the name was taken meanwhile: as below
    if not overwrite or not final.is_dir():
        raise InputError(
            f"{final} was created by someone else during the run; the results are in {temporary}"
        )
    for file in sorted(p for p in temporary.rglob("*") if p.is_file()):
        target = final / file.relative_to(temporary)
        target.parent.mkdir(parents=True, exist_ok=True)
        publish(file, target, overwrite=True)
    remove_temporary(temporary)


def write_new_file(path: Path, data: bytes, *, overwrite: bool) -> None:
    """Create ``path`` holding ``data`` (an existing file is replaced only with ``overwrite``); if the
    write fails (disk full), the half-written file is removed again: this run created it."""
    file = RecordFile.create(path, overwrite=overwrite)
    try:
        file.append(data)
    except BaseException:
        file.close()
        path.unlink(missing_ok=True)
        raise
    file.close()
