"""Numbered run folders (``runs/pose/1``, ``runs/pose/2``, ...): where outputs go when no place is given.

Writing next to the input would mix results with a user's data (and could meet a file of theirs by the
same name); a fresh folder per run can hold nothing of theirs, so nothing in it is ever overwritten.
The number is taken by creating the folder (``mkdir`` fails if it exists), so two runs started at the
same moment get two folders.

Example:
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp())
    >>> new_run_dir(root).name, new_run_dir(root).name
    ('1', '2')
"""

from __future__ import annotations

from pathlib import Path

from hhrnet_rt.core.errors import InputError

#: Relative to the current directory, like other vision tools' ``runs/<task>/``.
DEFAULT_RUNS_ROOT = Path("runs") / "pose"


def new_run_dir(root: str | Path = DEFAULT_RUNS_ROOT) -> Path:
    """Create and return ``root/N`` with N one more than the highest numbered folder there (from 1).

    Raises:
        InputError: ``root`` cannot be created or written (e.g. a file by that name, read-only place).
    """
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        taken = [int(p.name) for p in root.iterdir() if p.name.isdigit()]
    except FileExistsError:
        raise InputError(f"run folder root {root} is an existing file; give an output place") from None
    except OSError as exc:
        raise InputError(f"cannot create a run folder in {root} ({exc.strerror or exc})") from None
    number = max(taken, default=0) + 1
    while True:
        run = root / str(number)
        try:
            run.mkdir()
        except FileExistsError:  # another run took it (or a file has that name): try the next one
            number += 1
            continue
        except OSError as exc:
            raise InputError(f"cannot create the run folder {run} ({exc.strerror or exc})") from None
        return run


def remove_if_empty(run: Path) -> None:
    """Remove a run folder this run created when nothing was written in it (a run that failed early)."""
    try:
        run.rmdir()  # only ever succeeds on an empty folder: nothing of anyone's can go
    except OSError:
        pass
