"""Command: ``hhrt cache clear`` — delete the files hhrnet-rt put in its caches, and nothing else.

What counts as ours is decided in one place, :func:`hhrnet_rt.core.paths.cache_inventory`: the compiled decode
kernels, the ONNX Runtime exports and (with ``--weights``) the downloaded named checkpoints. Each comes
back on its own when needed (kernels compile, graphs export, weights download again).
"""

from __future__ import annotations

import typer
from rich.console import Console

from hhrnet_rt.cli.app import EXIT_INTERNAL, app, console, handle_errors
from hhrnet_rt.cli.help_style import HhrtTyper
from hhrnet_rt.cli.options import CacheWeights, DryRun

stdout = Console()

cache_app = HhrtTyper(
    help="The package's caches (compiled kernels, ONNX exports, downloaded weights).", no_args_is_help=True
)
app.add_typer(cache_app, name="cache")

_KIND_LABELS = {"numba": "compiled decode kernels", "onnx": "ONNX exports", "weights": "downloaded weights",
                "temporaries": "temporaries left by killed runs"}  # fmt: skip


def human_size(n: int) -> str:
    """``1536`` -> ``"1.5 KiB"``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def file_count(n: int) -> str:
    """``"1 file"``, ``"3 files"``."""
    return f"{n} file" if n == 1 else f"{n} files"


@cache_app.command("clear")
@handle_errors
def clear(weights: CacheWeights = False, dry_run: DryRun = False) -> None:
    """Delete the compiled decode kernels and ONNX exports hhrt cached (and, with --weights, the weights)."""
    from hhrnet_rt.cli.cache_inventory import cache_inventory, total_size

    inventory = cache_inventory(weights=weights)
    removed: dict[str, int] = {}
    failed = 0
    for kind, files in inventory.items():
        size = total_size(files)
        for f in files:
            if dry_run:
                stdout.print(f"would delete {f}", soft_wrap=True, highlight=False)
                continue
            try:
                f.unlink(missing_ok=True)
            except OSError as exc:
                failed += 1
                console.print(
                    f"warning: cannot delete {f}: {exc.strerror or exc}", soft_wrap=True, highlight=False
                )
        removed[kind] = size
        verb = "would free" if dry_run else "freed"
        stdout.print(
            f"{_KIND_LABELS[kind]}: {file_count(len(files))}, {verb} {human_size(size)}", highlight=False
        )
    if failed:
        raise typer.Exit(EXIT_INTERNAL)  # the warnings above say which files and why
