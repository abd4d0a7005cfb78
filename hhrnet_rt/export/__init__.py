"""Export: ONNX (fp32 / fp16-baked), int8 Q/DQ quantisation with calibration, TensorRT engine builds.

Submodules import their heavy dependencies (onnx, onnxruntime, tensorrt) lazily; import what you need,
e.g. ``from hhrnet_rt.model.onnx_export import export_onnx``.
"""
