"""What a run of several inputs ends with when some of them failed: the one home of "some inputs failed"
(exit code 9) for ``hhrt video``, ``hhrt webcam``, ``hhrt image`` and ``--ray``.

An input that fails (cannot be opened, dies mid-way, a live stream that does not come back within
``--reconnect N``) ends alone; the others complete with whole outputs. At the end the run raises
:class:`~hhrnet_rt.core.errors.SomeInputsFailedError` naming each failed input and why, after its summary.
When every input failed nothing completed: the run fails with the error itself (one input) or with one
error that lists them all, of their common kind when they share one (so the exit code says what happened:
2 for inputs that are not videos, 8 for a stage, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hhrnet_rt.core.errors import HhrtError, PipelineError, SomeInputsFailedError
from hhrnet_rt.core.redact import redact


@dataclass
class Failures:
    """The inputs of a run and those that failed, in the order they were met.

    Attributes:
        total: inputs of the run (add each with :meth:`count`).
        failed: ``(name, error)`` of each failed input (an exception, or its message).
        runs_failed: the error of each pipeline run in which every stream failed.
    """

    total: int = 0
    failed: list[tuple[str, BaseException | str]] = field(default_factory=list)
    runs_failed: list[HhrtError] = field(default_factory=list)  # whole runs in which no stream completed

    def count(self, n: int = 1) -> None:
        self.total += n

    def add(self, name: str, error: BaseException | str) -> None:
        self.failed.append((redact(str(name)), error))

    def details(self) -> str:
        return "; ".join(f"{name}: {redact(str(error))}" for name, error in self.failed)

    def _rest(self, what: str) -> str:
        others = self.total - len(self.failed)
        return f"the other {what.removesuffix('s')} is complete" if others == 1 else "the others are complete"

    def raise_if_any(self, what: str = "inputs") -> None:
        """Nothing if every input completed; else the error of the run (see the module docstring)."""
        if not self.failed:
            return
        if len(self.failed) < self.total:
            raise SomeInputsFailedError(
                f"{len(self.failed)} of {self.total} {what} failed ({self.details()}); {self._rest(what)}"
            )
        errors = [e for _, e in self.failed]
        name, only = self.failed[0]
        if len(errors) == 1 and isinstance(only, HhrtError):
            if name in str(only):
                raise only
            raise type(only)(f"{name}: {only}") from only  # a worker's message may not name its input
        if len(self.runs_failed) == 1 and not any(isinstance(e, BaseException) for e in errors):
            raise self.runs_failed[0]  # one run held every input: its own error says it all
        kinds = {type(e) for e in errors}
        cls = kinds.pop() if len(kinds) == 1 else PipelineError
        if not issubclass(cls, HhrtError):
            cls = PipelineError
        raise cls(f"every one of the {self.total} {what} failed ({self.details()})")
