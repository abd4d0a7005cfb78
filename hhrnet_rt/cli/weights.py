"""Commands: ``hhrt weights list | download NAME... | path NAME`` -- prepare a machine that will run offline.

``download`` on a connected machine fills the cache; copying the cache folder (``hhrt weights list`` shows
it) or the files ``hhrt weights path`` prints to the offline machine makes ``--weights NAME`` work there.
Every file is hash-checked when listed, printed or used (:mod:`hhrnet_rt.model.download`).
"""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hhrnet_rt.cli.app import app, console, handle_errors
from hhrnet_rt.cli.help_style import HhrtTyper
from hhrnet_rt.cli.options import WeightName, WeightNames
from hhrnet_rt.core.errors import InputError, WeightsError
from hhrnet_rt.model.download import NAMED_WEIGHTS, cache_dir, cached_state, fetch_named

weights_app = HhrtTyper(
    help="List, download and locate the named weights (to prepare a machine without network access).",
    no_args_is_help=True,
)
app.add_typer(weights_app, name="weights")

# Results (the table, a path) go to stdout so that `$(hhrt weights path w32_512)` works.
stdout = Console(soft_wrap=True)

_STATE_TEXT = {
    "verified": "downloaded (sha256 verified)",
    "missing": "not downloaded",
    "mismatch": "a different file (sha256 differs)",
}


def _known(name: str) -> str:

    if name not in NAMED_WEIGHTS:
        raise InputError(f"no named weights {name!r}; available: {', '.join(NAMED_WEIGHTS)}")
    return name


@weights_app.command("list")
@handle_errors
def list_cmd() -> None:
    """The named weights, whether each is downloaded (hash checked now), and where."""

    table = Table("name", "state", title=f"named weights (cache: {cache_dir()})")
    table.add_column("file (or where it comes from)", overflow="fold")  # a path or URL is shown whole
    for name, entry in NAMED_WEIGHTS.items():
        state, path = cached_state(name)
        table.add_row(name, _STATE_TEXT[state], escape(str(path) if path else entry.url))
    stdout.print(table)


@weights_app.command("download")
@handle_errors
def download_cmd(names: WeightNames = None) -> None:
    """Download named weights into the cache and check their sha256; already cached ones are kept."""

    for name in [_known(n) for n in names or NAMED_WEIGHTS]:  # every name checked before any download
        path = fetch_named(name)
        console.print(f"[green]{name}[/] {escape(str(path))}", highlight=False)


@weights_app.command("path")
@handle_errors
def path_cmd(name: WeightName) -> None:
    """Print the cached file of NAME (hash checked); an error when it is not downloaded."""

    state, path = cached_state(_known(name))
    if state == "missing":
        raise WeightsError(f"{name} is not downloaded; run `hhrt weights download {name}` first")
    if state == "mismatch":
        raise WeightsError(
            f"the cached file {path} is not the {name} checkpoint: its sha256 does not start with "
            f"{NAMED_WEIGHTS[name].sha256_prefix}; delete it and run `hhrt weights download {name}`"
        )
    typer.echo(str(path))  # plain: no wrapping or styling in a path that scripts capture
