"""Frozen settings passed explicitly through the package (no registries, no global state)."""

from __future__ import annotations

from dataclasses import dataclass

from hhrnet_rt.core.skeleton import COCO_JOINT_ORDER

#: The orders of equal peak values ``DecodeParams.topk_ties`` takes (see its docstring).
TOPK_TIES = ("cpu", "index")


@dataclass(frozen=True)
class DecodeParams:
    """Decoding settings; the defaults are the official COCO test values (w32_512 yaml + default.py).

    Attributes:
        detection_threshold: a peak must be strictly greater than this to be grouped (TEST.DETECTION_THRESHOLD).
        tag_threshold: a joint joins a person only if its tag distance is strictly below this.
        max_num_people: top-k per joint, and how many existing people a new joint can be matched to.
        nms_kernel: max-pool window of the peak NMS (padding is ``nms_kernel // 2``).
        use_detection_val: cost = round(tag distance) * 100 - peak value, as the official code does.
        ignore_too_much: drop joints that would start a person beyond ``max_num_people``.
        joint_order: order in which joint types are grouped; ``None`` means what the official parser does:
            the first K entries of its COCO order ``[0,1,2,3,4,5,6,11,12,7,8,9,10,13,14,15,16]``, so
            CrowdPose (K=14) groups in ``[0,1,2,3,4,5,6,11,12,7,8,9,10,13]``, not 0..13. Where those K
            entries are not a permutation of 0..K-1 (K = 8..12; the official code would index out of
            range there) it falls back to 0..K-1.
        topk_ties: the order of equal peak values among a joint's candidates, which decides which
            person a joint joins (``torch.topk`` leaves it unspecified). "cpu" (default): the order
            ``torch.topk`` gives on the CPU (libstdc++'s partial_sort / nth_element replayed exactly;
            checked against torch in tests/test_topk_order.py), which is how the golden data and the
            accuracy fixtures were made. "index": by flat index ``y * W + x``, lowest first (the device
            decoder always uses this order). The order CUDA's ``topk`` gives (the published APs ran on
            GPUs) is not reproduced: see docs/accuracy.md.
    """

    detection_threshold: float = 0.1
    tag_threshold: float = 1.0
    max_num_people: int = 30
    nms_kernel: int = 5
    use_detection_val: bool = True
    ignore_too_much: bool = False
    joint_order: tuple[int, ...] | None = None
    topk_ties: str = "cpu"

    def order_for(self, num_joints: int) -> tuple[int, ...]:
        """The joint order to use for ``num_joints`` joints."""
        if self.joint_order is not None:
            if sorted(self.joint_order) != list(range(num_joints)):
                raise ValueError(
                    f"joint_order {self.joint_order} is not a permutation of 0..{num_joints - 1}"
                )
            return self.joint_order
        # The official HeatmapParser keeps one 17-entry joint_order and loops i over range(num_joints).
        official = COCO_JOINT_ORDER[:num_joints]
        if sorted(official) == list(range(num_joints)):
            return official
        return tuple(range(num_joints))
