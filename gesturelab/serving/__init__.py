"""Serving: predictions from pixels, streaming recognition, export to TFLite and ONNX, champion and
challenger.
"""
