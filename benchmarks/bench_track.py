"""Person tracking on synthetic walkers: hhrnet-rt's PoseTracker against norfair, CLEAR-MOT counts.

Usage:
    python benchmarks/bench_track.py                 # the table in the README (10 crossings, 8 crowds)
    python benchmarks/bench_track.py --seeds 1 --frames 40    # a quick check

Every tracker sees the same detections (hhrnet_rt.track.synthetic: jitter, dropped joints, occlusion,
missed people, stray fragments, random order) and labels them; hhrnet_rt.track.metrics counts against the
truth. Only people a tracker has confirmed count as its output, so fragmentation includes the frames in
which the detector missed a person. norfair (keypoint tracking, the settings of its pose demo: keypoint
voting distance, a point matches within height/40 px) is imported only here; install it to compare
(`pip install norfair`; it pins numpy<2, `--no-deps` works). ms/frame is printed for orientation only:
take it on a quiet machine.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from hhrnet_rt.track import PoseTracker, synthetic  # noqa: E402
from hhrnet_rt.track.metrics import clear_mot  # noqa: E402


def run_ours(seq, *, min_hits=3, max_age=30, min_oks=0.2):
    tracker = PoseTracker(min_hits=min_hits, max_age=max_age, min_oks=min_oks)
    return [tracker.update(d) for d in seq.detections]


def run_norfair(seq, *, height=480, init_delay=2, max_age=30):
    import norfair

    tracker = norfair.Tracker(
        distance_function=norfair.distances.create_keypoints_voting_distance(height / 40, 0.01),
        distance_threshold=0.4, hit_counter_max=max_age, initialization_delay=init_delay,
        pointwise_hit_counter_max=10, detection_threshold=0.01,
    )  # fmt: skip
    out = []
    for poses in seq.detections:
        detections = [
            norfair.Detection(points=p[:, :2].astype(np.float64), scores=p[:, 2].astype(np.float64), data=i)
            for i, p in enumerate(poses.keypoints)
        ]
        ids = np.full(len(poses), -1, np.int64)
        mine = {id(d) for d in detections}
        for obj in tracker.update(detections=detections):
            if id(obj.last_detection) in mine:  # matched in this frame, not only predicted
                ids[obj.last_detection.data] = obj.id
        out.append(poses.with_ids(ids))
    return out


def sequences(seeds: int, frames: int | None):
    sets = {"crossing (2 people)": [], "crowd (6 people)": [], "crowd (8 people)": []}
    for s in range(seeds):
        sets["crossing (2 people)"].append(synthetic.crossing(s, **({"frames": frames} if frames else {})))
        sets["crowd (6 people)"].append(
            synthetic.crowd(s, people=6, **({"frames": frames} if frames else {}))
        )
        sets["crowd (8 people)"].append(
            synthetic.crowd(100 + s, people=8, **({"frames": frames} if frames else {}))
        )
    return sets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8, help="sequences per scenario")
    parser.add_argument("--frames", type=int, default=None, help="frames per sequence (default: 120/200)")
    parser.add_argument("--no-norfair", action="store_true")
    args = parser.parse_args()
    logging.getLogger().setLevel(logging.ERROR)  # norfair warns on every tracker it makes (scalar distance)

    trackers = {"hhrnet-rt PoseTracker": run_ours}
    if not args.no_norfair:
        try:
            import norfair  # noqa: F401

            trackers["norfair (keypoint vote)"] = run_norfair
        except ImportError:
            print("norfair is not installed: only hhrnet-rt's tracker is measured")
    print("| scenario | tracker | frames | ID switches /100 frames | fragmentations /100 frames | MOTA | "
          "misses | false pos. | IDs (true people) | ms/frame |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for scenario, seqs in sequences(args.seeds, args.frames).items():
        true_people = sum(len({i for t in s.truth for i in t.ids.tolist()}) for s in seqs)
        for name, run in trackers.items():
            totals, seconds = [], 0.0
            for seq in seqs:
                t0 = time.perf_counter()
                tracked = run(seq)
                seconds += time.perf_counter() - t0
                totals.append(clear_mot(seq.truth, tracked))
            frames = sum(m.frames for m in totals)
            switches = sum(m.id_switches for m in totals)
            frags = sum(m.fragmentations for m in totals)
            truth = sum(m.truth for m in totals)
            errors = sum(m.misses + m.false_positives + m.id_switches for m in totals)
            print(f"| {scenario} | {name} | {frames} | {100 * switches / frames:.2f} | {100 * frags / frames:.2f} "
                  f"| {1 - errors / truth:.3f} | {sum(m.misses for m in totals)} | "
                  f"{sum(m.false_positives for m in totals)} | {sum(m.ids for m in totals)} ({true_people}) | "
                  f"{1e3 * seconds / frames:.2f} |")  # fmt: skip


if __name__ == "__main__":
    main()
