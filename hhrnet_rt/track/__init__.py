"""Person IDs across frames and temporal smoothing of the joints (``hhrt video|webcam --track --smooth``).

- :class:`PoseTracker` gives each person an ID (OKS association, optimal assignment, birth/death rules);
- :class:`PoseSmoother` runs a One-Euro filter on every joint of every tracked person;
- :mod:`hhrnet_rt.track.metrics` counts ID switches and fragmentation against ground truth, on the
  synthetic walkers of :mod:`hhrnet_rt.track.synthetic` (``benchmarks/bench_track.py``).
"""

from hhrnet_rt.track.oks import oks_matrix, sigmas_for
from hhrnet_rt.track.smooth import PoseSmoother
from hhrnet_rt.track.tracker import PoseTracker

__all__ = ["PoseSmoother", "PoseTracker", "oks_matrix", "sigmas_for"]
