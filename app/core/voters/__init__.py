"""Serving voters: the two classifiers, their encoders and heads, ONNX Runtime, calibration and the versioned store."""
