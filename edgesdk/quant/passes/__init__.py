"""Quantization passes over the Graph IR. Each is an onnx_ir in-place pass: a value you build with its
options (and calibration statistics where it needs them) and call on a model."""
