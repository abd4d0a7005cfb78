"""How hhrt tells people what it is doing: the one home of progress displays, info lines and warnings.

Every wait longer than a couple of seconds shows something: a spinner with the elapsed time for a wait
of unknown length (:func:`step`: loading a model, an ONNX export, an engine build), a bar with counts,
rate and time left for counted work (:func:`bar`: frames, calibration images, benchmark rows).

- On a terminal (stderr is a TTY) these are Rich live displays.
- Elsewhere (a log file, CI, a pipe) they become plain lines: a step says when it starts and how long it
  took; a bar prints a line at most every :data:`PLAIN_EVERY_S` seconds and one at the end. Nothing
  redraws, so a log stays readable.
- ``--quiet`` (:func:`output_level`) turns all of it off, and the info lines (:func:`note`); warnings
  and errors still print. ``--verbose`` asks for the details a user rarely needs (:func:`verbose`).

Everything goes to stderr; stdout is kept for results (tables, paths) that users pipe.
"""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from hhrnet_rt.cli.app import console

#: Without a terminal, a bar prints a line at most this often (and once at the end).
PLAIN_EVERY_S = 10.0
#: A step shorter than this says nothing when it ends (a warm start should be quiet).
QUIET_BELOW_S = 2.0


@dataclass(frozen=True)
class Level:
    quiet: bool = False
    verbose: bool = False


_LEVEL: ContextVar[Level | None] = ContextVar("hhrt_output_level", default=None)  # None: the defaults


@contextlib.contextmanager
def output_level(*, quiet: bool = False, verbose: bool = False) -> Iterator[None]:
    """``--quiet`` / ``--verbose`` for the duration of one command."""
    token = _LEVEL.set(Level(quiet=quiet, verbose=verbose and not quiet))
    try:
        yield
    finally:
        _LEVEL.reset(token)


F = TypeVar("F", bound=Callable[..., Any])


def levelled(command: F) -> F:
    """A command with ``quiet`` / ``verbose`` parameters (:mod:`hhrnet_rt.cli.options_draw`) runs under
    that :func:`output_level`."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with output_level(quiet=bool(kwargs.get("quiet")), verbose=bool(kwargs.get("verbose"))):
            return command(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def quiet() -> bool:
    return (_LEVEL.get() or Level()).quiet


def verbose() -> bool:
    return (_LEVEL.get() or Level()).verbose


def live() -> bool:
    """Whether progress can redraw in place (stderr is a terminal)."""
    return console.is_terminal


def note(message: str) -> None:
    """An info line on stderr (Rich markup allowed; escape user text), unless ``--quiet``."""
    if not quiet():
        console.print(message, highlight=False, soft_wrap=True)


def warn(message: str) -> None:
    """A warning on stderr, also under ``--quiet``; ``message`` is plain text (escaped here)."""
    console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


class Step:
    """What a running :func:`step` shows. ``update(text)`` starts its next part (e.g. "exporting to
    ONNX"; on a terminal the part before stays as a line with its duration); ``count(done, total, unit)``
    adds counts and the time left, kept across parts until ``done`` reaches ``total`` (calibration images
    within one part, benchmark rows over many)."""

    def __init__(self, text: str, display: Progress | None) -> None:
        self.text, self._display = text, display
        self._task = display.add_task(text, total=None) if display is not None else None
        self.t0 = self._part_t0 = self._count_t0 = time.perf_counter()
        self._counter: tuple[int, int, str] | None = None
        self._last_line = 0.0

    def update(self, text: str) -> None:
        if text == self.text:
            return
        now = time.perf_counter()
        if self._display is not None:
            self._display.console.print(f"{self.text}: {now - self._part_t0:.1f} s", highlight=False,
                                        soft_wrap=True)  # fmt: skip
        self.text, self._part_t0 = text, now
        self._show(plain=True)

    def count(self, done: int, total: int, unit: str) -> None:
        """``done`` of ``total`` items finished: shown with the time left, estimated from the pace since
        the count started (plain lines at most every :data:`PLAIN_EVERY_S`, and the last one)."""
        now = time.perf_counter()
        if self._counter is None:
            self._count_t0 = now if done == 0 else self._part_t0
        self._counter = (done, total, unit)
        first = 0 < done and self._last_line < self._count_t0  # the first estimate of the time left
        self._show(plain=first or done >= total or now - max(self._last_line, self._part_t0) >= PLAIN_EVERY_S)
        if done >= total:
            self._counter = None

    def _show(self, *, plain: bool) -> None:
        line = self.text
        if self._counter is not None:
            done, total, unit = self._counter
            line += f" ({done}/{total} {unit}"
            if 0 < done < total:
                pace = (time.perf_counter() - self._count_t0) / done
                line += f", about {_duration(pace * (total - done))} left"
            line += ")"
        if self._display is not None and self._task is not None:
            self._display.update(self._task, description=line)
        elif plain and not quiet():
            console.print(f"{line}...", highlight=False, soft_wrap=True)
            self._last_line = time.perf_counter()

    @property
    def elapsed_s(self) -> float:
        return time.perf_counter() - self.t0


@contextlib.contextmanager
def step(text: str, *, done: str | None = None) -> Iterator[Step]:
    """A wait of unknown length: a spinner with the elapsed time on a terminal, plain lines elsewhere.

    When it took longer than :data:`QUIET_BELOW_S`, a line says so at the end (``done`` is its text,
    default ``text``): ``loading the model: 34.2 s``.
    """
    if quiet():
        yield Step(text, None)
        return
    display = None
    if live():
        display = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                           console=console, transient=True)  # fmt: skip
        display.start()
    else:
        console.print(f"{text}...", highlight=False, soft_wrap=True)
    current = Step(text, display)
    try:
        yield current
    finally:
        if display is not None:
            display.stop()
    if current.elapsed_s >= QUIET_BELOW_S:
        console.print(f"{done or text}: {current.elapsed_s:.1f} s", highlight=False, soft_wrap=True)


@dataclass
class _Count:
    description: str
    total: float | None
    completed: float = 0.0
    fields: dict[str, Any] = field(default_factory=dict)
    t0: float = field(default_factory=time.perf_counter)
    last_line: float = 0.0
    said_last: bool = False  # its final line is out


class PlainProgress:
    """Rich ``Progress``'s ``add_task`` / ``update`` / ``advance`` as plain lines (no terminal): a line per
    task at most every :data:`PLAIN_EVERY_S` seconds and when it completes. Thread-safe (the pipeline
    advances it from its output thread)."""

    def __init__(self, unit: str, every_s: float = PLAIN_EVERY_S) -> None:
        self.unit, self.every_s = unit, every_s
        self._tasks: list[_Count] = []
        self._lock = threading.Lock()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            for task in self._tasks:
                if not task.said_last:
                    self._line(task)  # where a task that did not finish stopped

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        with self._lock:
            self._tasks.append(_Count(description, total, fields=dict(fields)))
            return len(self._tasks) - 1

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def update(self, task_id: int, *, advance: float = 0, completed: float | None = None,
               description: str | None = None, total: float | None = None, **fields: Any) -> None:  # fmt: skip
        with self._lock:
            task = self._tasks[task_id]
            task.completed = completed if completed is not None else task.completed + advance
            task.description = description or task.description
            task.total = total if total is not None else task.total
            task.fields.update(fields)
            now = time.perf_counter()
            if task.said_last:
                return
            if _finished(task) or now - max(task.last_line, task.t0) >= self.every_s:
                self._line(task)
                task.last_line, task.said_last = now, _finished(task)

    def _line(self, task: _Count) -> None:
        done = f"{task.completed:g}" + (f"/{task.total:g}" if task.total else "")
        parts = [f"{task.description}: {done} {self.unit}"]
        if "fps" in task.fields:
            parts.append(f"{task.fields['fps']:.1f} FPS")
        elapsed = time.perf_counter() - task.t0
        if task.total and 0 < task.completed < task.total:
            parts.append(f"about {_duration(elapsed / task.completed * (task.total - task.completed))} left")
        elif _finished(task):
            parts.append(f"done in {_duration(elapsed)}")
        console.print(", ".join(parts), highlight=False, soft_wrap=True)


def _finished(task: _Count) -> bool:
    return bool(task.total) and task.completed >= (task.total or 0)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


class Silent:
    """The same interface, showing nothing (``--quiet``)."""

    def __enter__(self) -> Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def add_task(self, description: str, total: float | None = None, **fields: Any) -> int:
        return 0

    def advance(self, task_id: int, advance: float = 1) -> None:
        pass

    def update(self, task_id: int, **kwargs: Any) -> None:
        pass


def bar(unit: str, *, rate: bool = False) -> Progress | PlainProgress | Silent:
    """Counted work: a Rich bar (description, bar, n/N, ``rate`` as ``{fps} FPS``, elapsed, time left)
    on a terminal; :class:`PlainProgress` lines elsewhere; nothing under ``--quiet``. Use it as a context
    manager; ``add_task(description, total=N, fps=0.0)`` and ``update(task, advance=1, fps=...)``."""
    if quiet():
        return Silent()
    if not live():
        return PlainProgress(unit)
    columns: list[Any] = [TextColumn("[progress.description]{task.description}"), BarColumn(),
                          MofNCompleteColumn(), TextColumn(unit)]  # fmt: skip
    if rate:
        columns.append(TextColumn("{task.fields[fps]:.1f} FPS"))
    columns += [TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn()]
    return Progress(*columns, console=console, transient=False)
