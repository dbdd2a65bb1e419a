"""The export targets, one registry entry each: how a graph becomes a file (TFLite at four
precisions, ONNX, .keras) and how that file is run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gesturelab.serving.export_graphs import ExportError, Source, tf_function

ONNX_OPSET = 17


# Layers (sequence models) and name scopes (static graphs) that turn raw landmarks into
# features. Full int8 keeps them float32: 256 levels over a frame's pixel range are several
# pixels each, coarser than a finger joint's offset from its neighbour.
FLOAT_FEATURE_SCOPES = ("features", "positions", "slow_motion", "fast_motion", "landmark_features")


def to_tflite(source: Source, mode: str, representative: np.ndarray | None = None) -> bytes:
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as folder:
        if source.kind == "sequence":
            # Through a SavedModel: converting the traced function directly left the Keras 3
            # variables as resource reads the interpreter cannot resolve (NaN outputs, no
            # weights in the file).
            source.graph.export(folder, format="tf_saved_model", verbose=False)

            def make():
                return tf.lite.TFLiteConverter.from_saved_model(folder)
        else:
            module = tf.Module()
            module.serve = tf_function(source)
            tf.saved_model.save(module, folder, signatures=module.serve.get_concrete_function())

            def make():
                return tf.lite.TFLiteConverter.from_saved_model(folder)

        if mode != "tflite-int8":
            return _convert(make(), mode)
        return _int8(make, representative)


def _feature_tensors(model_bytes: bytes) -> list[str]:
    """Output tensor names of the ops of ``FLOAT_FEATURE_SCOPES`` in a float TFLite model."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=model_bytes)
    names = []
    for op in interpreter._get_ops_details():
        for index in op["outputs"]:
            name = interpreter._get_tensor_details(index, 0)["name"]
            scopes = {
                part.rsplit("_", 1)[0] if part[-1:].isdigit() else part
                for part in name.split(";")[0].split("/")
            }
            if scopes & set(FLOAT_FEATURE_SCOPES):
                names.append(name)
    return names


def _int8(make, representative) -> bytes:
    """int8 weights and activations after the feature layers, calibrated on ``representative``
    samples; the feature layers, the input and the output stay float32."""
    import tensorflow as tf

    if representative is None or not len(representative):
        raise ExportError("full int8 needs representative samples from the training data")
    samples = np.asarray(representative, np.float32)

    def dataset():
        for sample in samples:
            yield [sample[None]]

    try:
        keep = _feature_tensors(_convert(make(), "tflite-f32"))
        converter = make()
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = dataset
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep)
        debugger = tf.lite.experimental.QuantizationDebugger(
            converter=converter, debug_dataset=dataset, debug_options=options
        )
        return debugger.get_nondebug_quantized_model()
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001  the converter raises many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"tflite-int8: the TFLite converter failed ({first[:300]})") from None


def _convert(converter, mode: str) -> bytes:
    import tensorflow as tf

    if mode == "tflite-f16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "tflite-dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode != "tflite-f32":
        raise ExportError(f"unknown TFLite mode {mode!r}")
    try:
        return converter.convert()
    except Exception as exc:  # noqa: BLE001  the converter raises many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"{mode}: the TFLite converter failed ({first[:300]})") from None


def to_onnx(source: Source) -> bytes:
    import tf2onnx

    serve = tf_function(source)
    try:
        proto, _ = tf2onnx.convert.from_function(
            serve, input_signature=serve.input_signature, opset=ONNX_OPSET
        )
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"onnx: tf2onnx failed ({first[:300]})") from None
    return proto.SerializeToString()


class TFLiteRunner:
    """An exported ``.tflite`` file on LiteRT's interpreter: ``__call__(batch)`` -> scores."""

    def __init__(self, path):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=1)
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self._batch = None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, np.float32)
        if self._batch != len(batch):
            self.interpreter.resize_tensor_input(self.input["index"], batch.shape, strict=False)
            self.interpreter.allocate_tensors()
            self._batch = len(batch)
        self.interpreter.set_tensor(self.input["index"], batch)
        self.interpreter.invoke()
        return np.asarray(self.interpreter.get_tensor(self.output["index"]), np.float64)


class ONNXRunner:
    """An exported ``.onnx`` file on onnxruntime (one thread, as the other runners)."""

    def __init__(self, path):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        self.name = self.session.get_inputs()[0].name

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.name: np.ascontiguousarray(batch, np.float32)})
        return np.asarray(out[0], np.float64)


class KerasFileRunner:
    def __init__(self, path):
        import keras

        from gesturelab.models.seq_models import CUSTOM_OBJECTS

        self.model = keras.saving.load_model(path, custom_objects=CUSTOM_OBJECTS, safe_mode=True)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(np.asarray(batch, np.float32)), np.float64)


def _keras_file(source: Source, representative=None) -> bytes:
    if source.keras_model is None:
        raise ExportError("a scikit-learn model has no .keras form (tflite-* or onnx)")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        source.keras_model.save(path)
        return path.read_bytes()


def _tflite(mode: str):
    return lambda source, representative=None: to_tflite(source, mode, representative)


@dataclass(frozen=True)
class Target:
    """An export target: its file's suffix, what writes the file's bytes from a ``Source``
    (and representative rows, for int8), and what runs the file (``__call__(batch)``)."""

    suffix: str
    write: Callable[..., bytes]
    runner: type
    sequence_only: bool = False  # no static (scikit-learn) model has this form


# A new target is one entry here.
TARGETS = {
    "keras": Target(".keras", _keras_file, KerasFileRunner, sequence_only=True),
    "tflite-f32": Target(".tflite", _tflite("tflite-f32"), TFLiteRunner),
    "tflite-f16": Target(".tflite", _tflite("tflite-f16"), TFLiteRunner),
    "tflite-dynamic": Target(".tflite", _tflite("tflite-dynamic"), TFLiteRunner),
    "tflite-int8": Target(".tflite", _tflite("tflite-int8"), TFLiteRunner),
    "onnx": Target(".onnx", lambda source, representative=None: to_onnx(source), ONNXRunner),
}


FORMATS = tuple(TARGETS)


def export(source: Source, fmt: str, folder, name: str, representative=None) -> Path:
    """Write ``source`` as ``fmt`` into ``folder``; returns the file."""
    if fmt not in TARGETS:
        raise ExportError(f"unknown format {fmt!r}; formats: {', '.join(FORMATS)}")
    target = TARGETS[fmt]
    data = target.write(source, representative)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}-{fmt}{target.suffix}"
    path.write_bytes(data)
    return path


def runner(path, fmt: str):
    return TARGETS[fmt].runner(path)
