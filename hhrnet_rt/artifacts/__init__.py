"""The contract of a built file, torch-free: I/O names, ONNX metadata, the sidecar, the shape profile, the
file kind, and the settings a file records (read and validated).

Both the builder (:mod:`hhrnet_rt.export`) and the runtime (:mod:`hhrnet_rt.runtime`) read it from here.
"""
