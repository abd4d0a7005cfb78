"""HigherHRNet: its spec, blocks and network, the flip/aggregation graph, checkpoint loading (read ->
pure remap -> strict load, with the size guard and hash-checked downloads) and the ONNX export.

Submodules are imported by name (``hhrnet_rt.model.spec``, ...): this package imports nothing itself, so
``hhrnet_rt.model.download`` does not load torch.
"""
