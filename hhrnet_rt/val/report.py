""":class:`ValReport`: what ``evaluate()`` measured, as the CLI prints it and ``--json`` writes it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ValReport:
    """The outcome of :func:`hhrnet_rt.val.evaluate`.

    Attributes:
        dataset: "coco" or "crowdpose".
        stats: the dataset's standard stats by name (COCO: AP, AP50, AP75, APm, APl, AR, AR50, AR75, ARm,
            ARl; CrowdPose: AP, AP50, AP75, AR, AR50, AR75, AP easy, AP medium, AP hard), in [0, 1].
        people_per_image: image id -> number of people the estimator returned.
        records: the result records the evaluator read (the official results-file format).
        seconds: wall time of the whole run ("total"), of the estimator's stages ("model":
            prepare + infer + decode) and of the scoring ("evaluation").
        nonfinite: NaN/inf values seen in the network's maps ("values") and images with any ("images").
        summary: pycocotools' own printed summary.
    """

    dataset: str
    stats: dict[str, float]
    people_per_image: dict[int, int]
    records: list[dict[str, Any]] = field(repr=False)
    seconds: dict[str, float]
    nonfinite: dict[str, int]
    summary: str = field(default="", repr=False)

    @property
    def images(self) -> int:
        return len(self.people_per_image)

    @property
    def fps(self) -> float:
        """Images per second, end to end (reading, inference, decoding, scoring)."""
        return self.images / self.seconds["total"] if self.seconds["total"] > 0 else 0.0

    @property
    def overhead(self) -> float:
        """Share of the run time spent outside the estimator (image reading, checks, records, scoring)."""
        total = self.seconds["total"]
        return (total - self.seconds["model"]) / total if total > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts (the records are written apart, by ``--results``)."""
        counts = list(self.people_per_image.values())
        return {
            "dataset": self.dataset,
            "stats": self.stats,
            "images": self.images,
            "people": sum(counts),
            "people_per_image": {str(k): v for k, v in self.people_per_image.items()},
            "mean_people_per_image": sum(counts) / len(counts) if counts else 0.0,
            "fps": self.fps,
            "seconds": self.seconds,
            "overhead": self.overhead,
            "nonfinite": self.nonfinite,
        }
