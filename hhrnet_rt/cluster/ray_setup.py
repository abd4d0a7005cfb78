"""Ray, imported only when asked for, and the one way this package joins or starts a cluster.

Ray is an optional extra: nothing else in hhrnet_rt imports it, and a missing Ray is a plain message
naming the extra, not a traceback.

A local cluster (no address) stays on the loopback interface. Ray on Linux normally advertises the
machine's routable address so that other nodes can join; a cluster started for one run on one machine
has no other nodes, and binding it to 127.0.0.1 keeps its ports off the network. Ray reads that choice
(``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: the loopback behaviour it uses on laptops) when it is first
imported, so it is set before the import.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from collections.abc import Iterator
from typing import Any

from hhrnet_rt.core.errors import BackendUnavailableError, InputError

#: The one wording of how to get Ray (hhrnet-rt is installed from a checkout).
RAY_INSTALL_HINT = 'pip install -e ".[ray]" from an hhrnet-rt checkout (or pip install "ray[serve]")'

_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def require_ray(*, loopback: bool = False) -> Any:
    """The ``ray`` module; ``loopback``: a cluster this process starts binds to 127.0.0.1 only.

    Raises:
        BackendUnavailableError: Ray is not installed.
    """
    if loopback and "ray" not in sys.modules:
        os.environ.setdefault(_LOOPBACK_ENV, "0")  # read once, at import; inherited by Ray's processes
    try:
        import ray
    except ImportError:
        raise BackendUnavailableError(f"Ray is not installed; {RAY_INSTALL_HINT}") from None
    if loopback:
        _loopback_after_import(ray)
    return ray


def _loopback_after_import(ray: Any) -> None:
    """Ray imported earlier in this process (a notebook, a test session) read the setting already; its
    module constant is what ``ray.init`` consults when it picks the node address, so set it too."""
    os.environ.setdefault(_LOOPBACK_ENV, "0")
    constants = getattr(getattr(ray, "_private", None), "ray_constants", None)
    if constants is not None and hasattr(constants, "ENABLE_RAY_CLUSTER"):
        constants.ENABLE_RAY_CLUSTER = False


@contextlib.contextmanager
def ray_session(address: str | None = None, *, num_cpus: int | None = None) -> Iterator[Any]:
    """Connect to Ray for the block and disconnect after it.

    - Ray already initialised in this process (a notebook, a test fixture): that session is used as it
      is and left running (``address`` must then be ``None``).
    - ``address`` given (``auto``, ``ray://head:10001``, ``head:6379``): join that cluster.
    - otherwise: start a local cluster on 127.0.0.1 (no dashboard), shut down at the end.

    Worker logs stay in the cluster's log files (``/tmp/ray/session_latest/logs``); what a job wants the
    user to see comes back in its results.

    Raises:
        BackendUnavailableError: Ray is missing, or the cluster cannot be reached or started.
        InputError: ``address`` given while this process is already connected elsewhere.
    """
    ray = require_ray(loopback=address is None)
    if address is not None:
        check_reachable(address)
    if ray.is_initialized():
        if address is not None:
            raise InputError(
                f"this process is already connected to a Ray cluster; cannot also join {address}"
            )
        yield ray
        return
    kwargs: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address is None:
        kwargs.update(include_dashboard=False, num_cpus=num_cpus)
    else:
        kwargs["address"] = address
    try:
        init_keeping_signals(ray, **kwargs)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray cluster"
        raise BackendUnavailableError(f"cannot reach {where}: {_first_line(exc)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def init_keeping_signals(ray: Any, **kwargs: Any) -> None:
    """``ray.init(**kwargs)``, keeping this process's SIGTERM handler.

    Ray's driver replaces it with ``sys.exit(15)``: a SIGTERM then unwound the driver from wherever it
    was, past the caller's orderly shutdown, and ``hhrt serve`` ended with a C++ abort (exit 134) where
    SIGINT was clean. The caller's handler (the CLI's: Ctrl-C's path) stays in charge.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if main else None
    try:
        ray.init(**kwargs)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def missing_resources(nodes: list[dict], per_unit: dict[str, float], units: int, what: str) -> str | None:
    """What ``units`` x ``per_unit`` (e.g. 3 replicas x 1 CPU) lack on these nodes (``ray.nodes()``), as a
    sentence; ``None`` when they fit. Ray would wait for them for ever (a spinner, "0/2 videos")."""
    alive = [n.get("Resources", {}) for n in nodes if n.get("Alive", True)]
    for name, amount in per_unit.items():
        if amount <= 0:
            continue
        label = {"CPU": "CPUs", "GPU": "GPUs"}.get(name, name)
        largest = max((node.get(name, 0.0) for node in alive), default=0.0)
        if largest < amount:
            has = f"no node has more than {largest:g}" if largest else f"the cluster has no {label}"
            return f"each {what} needs {amount:g} {label}; {has}"
        # Whole units per node: two replicas of 0.75 CPU do not share one CPU.
        fits = sum(int(node.get(name, 0.0) // amount + 1e-9) for node in alive)
        if fits < units:
            return f"{units} {what}s of {amount:g} {label} each need room for {units}; the cluster has room for {fits}"
    return None


def check_resources(ray: Any, per_unit: dict[str, float], units: int, what: str, hint: str) -> None:
    """Refuse work the connected cluster can never place, before Ray waits for it for ever.

    Raises:
        BackendUnavailableError: with what is missing and ``hint`` (the options to change).
    """
    problem = missing_resources(ray.nodes(), per_unit, units, what)
    if problem is not None:
        raise BackendUnavailableError(f"{problem}: {hint}")


#: How long joining a cluster may wait for its first answer (Ray itself retries for minutes).
CONNECT_TIMEOUT_S = 5.0
_RAY_CLIENT_PORT = 10001


def check_reachable(address: str, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Fail at once when ``HOST:PORT`` or ``ray://HOST[:PORT]`` does not accept a connection; Ray would
    keep retrying for minutes, printing warnings. ``auto`` is Ray's own lookup of a local cluster.

    Raises:
        BackendUnavailableError: nothing answers there within ``timeout_s``.
        InputError: the address is neither ``auto`` nor ``[ray://]HOST[:PORT]``.
    """
    if address == "auto":
        return
    rest = address.removeprefix("ray://")
    host, sep, port_text = rest.rstrip("/").rpartition(":")
    if not sep:
        host, port_text = rest.rstrip("/"), str(_RAY_CLIENT_PORT) if address.startswith("ray://") else ""
    if not host or not port_text.isdigit():
        raise InputError(f"Ray address {address!r}: give auto, HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port_text)), timeout=timeout_s):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise BackendUnavailableError(f"cannot reach the Ray cluster at {address} ({reason})") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
