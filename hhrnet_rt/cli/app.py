"""The Typer application object and the one place where library errors become exit codes."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from hhrnet_rt.cli.help_style import HhrtTyper
from hhrnet_rt.cli.run_options import Version
from hhrnet_rt.cluster.recipe import FlagStyle
from hhrnet_rt.core import errors
from hhrnet_rt.core.outputs import is_disk_full

# Diagnostics go to stderr so stdout stays clean for data (tables, JSON) that users pipe.
console = Console(stderr=True)

app = HhrtTyper(
    name="hhrt",
    help="Real-time multi-person pose estimation with HigherHRNet.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(version: Version = False) -> None:
    """Real-time multi-person pose estimation with HigherHRNet."""


# Documented in docs/cli.md ("Exit codes"); keep the two in step.
EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INPUT = 2  # same as Typer's own usage errors
EXIT_WEIGHTS = 3
EXIT_BACKEND = 4
EXIT_TENSORRT_MISSING = 5  # build-engine: ONNX written, TensorRT not installed
EXIT_ENGINE_MISMATCH = 6
EXIT_CALIBRATION = 7
EXIT_PIPELINE = 8
EXIT_DISK_FULL = 8  # a pipeline stage (write) that failed for lack of space: same code, its own message
# 128 + the signal number, the shell's convention (cli/signals.py computes it from the signal received).
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
EXIT_TERMINATED = 143  # SIGTERM
EXIT_HANGUP = 129  # SIGHUP

_EXIT_CODES: tuple[tuple[type[errors.HhrtError], int], ...] = (
    (errors.TensorRTUnavailableError, EXIT_TENSORRT_MISSING),
    (errors.BackendUnavailableError, EXIT_BACKEND),
    (errors.WeightsError, EXIT_WEIGHTS),
    (errors.EngineMismatchError, EXIT_ENGINE_MISMATCH),
    (errors.CalibrationError, EXIT_CALIBRATION),
    (errors.DiskFullError, EXIT_DISK_FULL),
    (errors.PipelineError, EXIT_PIPELINE),
    (errors.InputError, EXIT_INPUT),
)


def exit_code_for(error: errors.HhrtError) -> int:
    """Exit code for a library error (most specific class first)."""
    for cls, code in _EXIT_CODES:
        if isinstance(error, cls):
            return code
    return EXIT_INTERNAL


F = TypeVar("F", bound=Callable[..., Any])


#: How the CLI names a library argument in a message: ``--backend onnxruntime``, ``--no-flip`` (a
#: :class:`FlagStyle`, so Ray workers name flags too without importing the CLI).
flag_for = FlagStyle(renames=(("onnx_threads", "threads"),))


def handle_errors(fn: F) -> F:
    """Turn library errors into one red line and an exit code; tracebacks only with HHRT_DEBUG=1.

    Stop signals (Ctrl-C, SIGTERM, SIGHUP) become KeyboardInterrupt for the command and end it with
    128 + the signal number.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from hhrnet_rt.cli import signals

        code = EXIT_INTERNAL  # what an unexpected exception ends with
        try:
            # library messages name flags, not arguments, while a command runs
            with signals.stop_signals_interrupt(), errors.option_style(flag_for):
                result = fn(*args, **kwargs)
            code = EXIT_OK
            return result
        except errors.HhrtError as exc:
            if os.environ.get("HHRT_DEBUG"):
                raise
            # escape: messages hold text like "hhrnet-rt[tensorrt]" that Rich would eat as markup
            console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            code = exit_code_for(exc)
            raise typer.Exit(code) from None
        except OSError as exc:
            if not is_disk_full(exc) or os.environ.get("HHRT_DEBUG"):
                raise
            # A full disk where no stage expected one (a cache, an export): its documented code, one line.
            where = f" writing {exc.filename}" if exc.filename else ""
            console.print(f"[bold red]error:[/] no space left on the device{where}; free some space "
                          "(`hhrt cache clear` frees hhrt's caches) and run again", highlight=False, soft_wrap=True)  # fmt: skip
            code = EXIT_DISK_FULL
            raise typer.Exit(code) from None
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/]")
            code = signals.interrupted_exit_code()
            raise typer.Exit(code) from None
        except typer.Exit as exc:
            code = exc.exit_code
            raise
        finally:
            if signals.hard_exit_requested():  # a pipeline stage is still inside a native call
                signals.exit_now(code)

    return wrapper  # type: ignore[return-value]
