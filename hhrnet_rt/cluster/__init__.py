"""Beyond one machine: video archives on a Ray cluster (``hhrt video ... --ray``).

Ray is optional (``pip install -e ".[ray]"``); this package imports it only when a run starts.

- :func:`ray_session` joins a cluster (``auto``, ``ray://head:10001``) or starts a local one on 127.0.0.1.
- :func:`run_archive` runs one Ray task per video, each the single-file job of ``hhrt video``, retried
  when its worker dies, with progress over all files and a :class:`FileReport` per file.

A :class:`VideoRecipe` says how a worker builds the estimator (from an
:class:`~hhrnet_rt.runtime.config.EstimatorConfig`), the per-video hook and the sinks (those a local
``hhrt video`` opens, so the files are those of a local run); ``hhrt video --ray`` makes one from its
options. A worker never imports the CLI.

Outputs are written by the workers at the paths the jobs name: on a multi-node cluster those paths must
be shared storage mounted at the same place on every node (NFS, a cluster file system).
"""

from __future__ import annotations

from hhrnet_rt.cluster.archive import Progress, run_archive
from hhrnet_rt.cluster.ray_setup import RAY_INSTALL_HINT, ray_session, require_ray
from hhrnet_rt.cluster.recipe import VideoRecipe
from hhrnet_rt.cluster.video_task import FileReport, VideoJob

__all__ = [
    "RAY_INSTALL_HINT",
    "FileReport",
    "Progress",
    "VideoJob",
    "VideoRecipe",
    "ray_session",
    "require_ray",
    "run_archive",
]
