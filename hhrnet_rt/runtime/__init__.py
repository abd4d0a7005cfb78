"""What runs a frame: preprocessing (host and device), the backends, the estimator configuration and the
:class:`~hhrnet_rt.runtime.estimator.PoseEstimator` (prepare -> infer -> decode).
"""
