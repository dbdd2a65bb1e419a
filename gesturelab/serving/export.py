"""Export a model of ours to deployable files and check each file against the original.

Targets (``TARGETS``, one entry each): ``keras`` (the ``.keras`` file), ``tflite-f32``,
``tflite-f16``, ``tflite-dynamic`` (int8 weights, float activations), ``tflite-int8`` (int8
weights and activations, calibrated on representative training samples; the input and output stay
float32 so the file still takes raw landmarks) and ``onnx``.

Every exported file takes raw landmarks, exactly what the logged model takes: the preprocessing
is part of the graph. A sequence model's ``SequenceFeatures`` layer is Keras ops already. A
static scikit-learn pipeline is rebuilt as a TensorFlow graph (``StaticGraph``): the
``LandmarkNormalizer`` features, the scaler and the classifier (an SVM with its support vectors,
or a logistic regression), giving the scores ``StaticPredictor.predict_distribution`` gives.
Random forests and nearest neighbours have no such graph: they are refused with that said.

Recurrent layers (LSTM, GRU) are rebuilt with ``unroll=True`` before conversion: the TFLite
converter cannot lower their loop to built-in ops, and an unrolled layer is the same weights
and the same arithmetic (the converter fails with "Lowering tensor list ops is failed").

TFLite files run on ``ai-edge-litert``'s interpreter, ONNX files on ``onnxruntime``; both are
what a deployment would use, not TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gesturelab.errors import GestureLabError, LandmarkInputError

# A conversion that loses more than this much accuracy on held-out data is reported as failed.
MAX_ACCURACY_LOSS = 0.01
ONNX_OPSET = 17
REPRESENTATIVE_SAMPLES = 200


class ExportError(ValueError, GestureLabError):
    """A model that cannot be exported to a format, with the reason."""


def sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# ---- graphs ---------------------------------------------------------------------------------


def unrolled(model):
    """The same model with every LSTM/GRU unrolled (the form the TFLite interpreter runs)."""
    import keras

    recurrent = (keras.layers.LSTM, keras.layers.GRU)

    def clone(layer):
        if isinstance(layer, recurrent):
            return layer.__class__.from_config({**layer.get_config(), "unroll": True})
        return layer.__class__.from_config(layer.get_config())

    def has_recurrent(m):
        return any(
            isinstance(layer, recurrent)
            or (isinstance(layer, keras.Model) and has_recurrent(layer))
            for layer in m.layers
        )

    if not has_recurrent(model):
        return model
    copy = keras.models.clone_model(model, clone_function=clone, recursive=True)
    copy.set_weights(model.get_weights())
    return copy


class StaticGraph:
    """A fitted static pipeline (LandmarkNormalizer -> StandardScaler -> SVC | LogisticRegression)
    as TensorFlow ops: raw (n, 63) or (n, 42) landmarks -> class probabilities.

    For an SVC the probabilities are the softmax of sklearn's one-vs-rest transform of its
    one-vs-one scores, as ``StaticPredictor`` gives them; for a logistic regression its own
    ``predict_proba``.
    """

    def __init__(self, pipeline):
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler
        from sklearn.svm import SVC

        steps = dict(pipeline.named_steps) if hasattr(pipeline, "named_steps") else {}
        self.normalizer = steps.get("landmarks")
        scaler, classifier = steps.get("scale"), steps.get("clf")
        if self.normalizer is None or not isinstance(scaler, StandardScaler):
            raise ExportError("a static model is exported from gesturelab's own pipelines only")
        if getattr(self.normalizer, "mirrors_left_hands_", False):
            raise ExportError(
                "this model mirrors left hands from a 'handedness' column; an exported graph "
                "takes landmarks only (train without handedness, or mirror before calling it)"
            )
        from gesturelab.models.static_mlp import KerasMLPClassifier

        if not isinstance(classifier, (SVC, LogisticRegression, KerasMLPClassifier)):
            raise ExportError(
                f"{type(classifier).__name__} has no TensorFlow graph here (SVMs, logistic "
                "regression and the MLP do); export one of those, or a Keras sequence model"
            )
        self.classifier = classifier
        # An MLP's dense layers as (kernel, bias, is the softmax head), read once, eagerly.
        self.dense = [
            (*(np.asarray(w, np.float32) for w in layer.get_weights()), layer.name == "gesture")
            for layer in getattr(getattr(classifier, "network_", None), "layers", [])
            if layer.weights
        ]
        self.dims = int(getattr(self.normalizer, "input_dims_", 3))
        self.mean = np.asarray(scaler.mean_, np.float32)
        self.scale = np.asarray(scaler.scale_, np.float32)
        self.classes = [str(c) for c in classifier.classes_]
        if len(self.classes) < 3:
            raise ExportError("a static model of two classes is not exported (three or more)")

    @property
    def input_size(self) -> int:
        return 21 * self.dims

    def features(self, x):
        """``LandmarkNormalizer.transform`` in TensorFlow ops (float32)."""
        import tensorflow as tf

        with tf.name_scope("landmark_features"):
            return self._features(x)

    def _features(self, x):
        import tensorflow as tf

        from gesturelab.datasets.landmarks import FINGER_CHAINS, MIDDLE_MCP, WRIST
        from gesturelab.features.landmark_features import ANGLE_TRIPLES, PAIRS

        n = self.normalizer
        hands = tf.reshape(x, (-1, 21, self.dims))
        if not n.normalise:
            points = hands if n.coords == "3d" else hands[:, :, :2]
        else:
            hands = hands - hands[:, WRIST : WRIST + 1, :]
            scale = tf.norm(hands[:, MIDDLE_MCP, :2], axis=1)
            scale = tf.where(scale > 1e-12, scale, tf.ones_like(scale))[:, None, None]
            points = hands[:, :, :2] / scale
            if n.coords == "3d":
                z = hands[:, :, 2]
                zscale = tf.reduce_max(tf.abs(z), axis=1, keepdims=True)
                z = z / tf.where(zscale > 1e-12, zscale, tf.ones_like(zscale))
                points = tf.concat([points, z[:, :, None]], axis=2)
        width = points.shape[2]
        parts = [tf.reshape(points, (-1, 21 * width))]
        if n.distances:
            i, j = (np.asarray(t, np.int32) for t in zip(*PAIRS))
            diff = tf.gather(points, i, axis=1) - tf.gather(points, j, axis=1)
            parts.append(tf.sqrt(tf.reduce_sum(tf.square(diff), axis=2)))
        if n.angles:
            a, b, c = (np.asarray(t, np.int32) for t in zip(*ANGLE_TRIPLES))
            u = tf.gather(points, a, axis=1) - tf.gather(points, b, axis=1)
            v = tf.gather(points, c, axis=1) - tf.gather(points, b, axis=1)
            norms = tf.norm(u, axis=2) * tf.norm(v, axis=2)
            norms = tf.where(norms > 1e-12, norms, tf.ones_like(norms))
            parts.append(tf.reduce_sum(u * v, axis=2) / norms)
            bones = [(ch[k], ch[k + 1]) for ch in FINGER_CHAINS for k in range(len(ch) - 1)]
            start, end = (np.asarray(t, np.int32) for t in zip(*bones))
            d = (
                tf.gather(points, end, axis=1)[:, :, :2]
                - tf.gather(points, start, axis=1)[:, :, :2]
            )
            d = d / tf.maximum(tf.norm(d, axis=2, keepdims=True), 1e-12)
            parts.append(tf.reshape(d, (-1, 2 * len(bones))))
        return tf.concat(parts, axis=1) if len(parts) > 1 else parts[0]

    def __call__(self, x):
        import tensorflow as tf

        features = (self.features(x) - self.mean) / self.scale
        clf = self.classifier
        if hasattr(clf, "network_"):
            # The MLP's dense layers as constants (dropout is off at inference): a Keras
            # network called inside this graph left its variables as reads TFLite cannot run.
            x = features
            for kernel, bias, last in self.dense:
                x = tf.matmul(x, kernel) + bias
                x = tf.nn.softmax(x) if last else tf.nn.relu(x)
            return x
        if hasattr(clf, "support_vectors_"):
            return tf.nn.softmax(self._ovr(self._pairwise(features)))
        logits = tf.matmul(features, clf.coef_.T.astype(np.float32)) + clf.intercept_.astype(
            np.float32
        )
        return tf.nn.softmax(logits)

    def _kernel(self, features):
        import tensorflow as tf

        clf = self.classifier
        sv = tf.constant(clf.support_vectors_.astype(np.float32))
        dot = tf.matmul(features, sv, transpose_b=True)
        if clf.kernel == "linear":
            return dot
        gamma = np.float32(clf._gamma)
        if clf.kernel == "rbf":
            sq = tf.reduce_sum(tf.square(features), axis=1, keepdims=True)
            sv_sq = np.sum(clf.support_vectors_.astype(np.float32) ** 2, axis=1)[None]
            return tf.exp(-gamma * tf.maximum(sq + sv_sq - 2.0 * dot, 0.0))
        if clf.kernel == "poly":
            return tf.pow(gamma * dot + np.float32(clf.coef0), float(clf.degree))
        raise ExportError(f"an SVM with a {clf.kernel!r} kernel is not exported")

    def _pairwise(self, features):
        """libsvm's one-vs-one decision values, positive for the pair's first class."""
        import tensorflow as tf

        clf = self.classifier
        n_classes = len(self.classes)
        starts = np.concatenate([[0], np.cumsum(clf.n_support_)])
        dual = clf.dual_coef_
        # One weight per (support vector, pair): sklearn's decision_function as a matrix.
        weights = np.zeros((len(clf.support_vectors_), n_classes * (n_classes - 1) // 2))
        pair = 0
        for i in range(n_classes):
            for j in range(i + 1, n_classes):
                weights[starts[i] : starts[i + 1], pair] = dual[j - 1, starts[i] : starts[i + 1]]
                weights[starts[j] : starts[j + 1], pair] = dual[i, starts[j] : starts[j + 1]]
                pair += 1
        bias = clf.intercept_.astype(np.float32)
        if clf.kernel == "linear":
            # One matrix instead of two, (features . support vectors) . weights: one product
            # to quantise in a full int8 file instead of two.
            direct = (clf.support_vectors_.T @ weights).astype(np.float32)
            return tf.matmul(features, direct) + bias
        kernel = self._kernel(features)
        return tf.matmul(kernel, weights.astype(np.float32)) + bias

    def _ovr(self, pairwise):
        import tensorflow as tf

        # Per class, its pairs gathered with a sign (+1 first, -1 second), not products with
        # 0/1 matrices: full int8 quantised those products too, and lost the small confidence
        # term that breaks ties between equal votes (0.77-0.79 of HaGRID test hands agreed with
        # the original; 0.99 this way).
        n = len(self.classes)
        first, second = np.triu_indices(n, 1)
        columns = np.zeros((n, n - 1), np.int32)
        signs = np.zeros((n, n - 1), np.float32)
        for k in range(n):
            pairs = [(p, 1.0) for p in np.flatnonzero(first == k)]
            pairs += [(p, -1.0) for p in np.flatnonzero(second == k)]
            columns[k] = [p for p, _ in pairs]
            signs[k] = [sign for _, sign in pairs]
        signed = tf.gather(pairwise, columns, axis=1) * signs  # (batch, n, n - 1)
        votes = tf.reduce_sum(tf.cast(signed > 0, tf.float32), axis=2)
        confidence = tf.reduce_sum(signed, axis=2)
        return votes + confidence / (3.0 * (tf.abs(confidence) + 1.0))


@dataclass
class Source:
    """What is exported: a callable graph, its input shape (without batch), the Keras model
    when there is one, and the original's own prediction function (for the comparison)."""

    kind: str  # "sequence" or "static"
    graph: object
    input_shape: tuple
    classes: list
    predict: object  # (n, *input_shape) float32 -> probabilities, the original model
    keras_model: object = None


def source_for(loaded) -> Source:
    """A ``LoadedModel`` (``gesturelab.models.predictor.open_model``) as something to export."""
    if loaded.kind == "sequence":
        model = loaded.model
        classes = [str(c) for c in loaded.metadata.get("classes") or range(model.output_shape[-1])]

        def predict(x):
            return np.asarray(model.predict_on_batch(x), np.float64)

        graph = unrolled(model)
        return Source(
            "sequence", graph, tuple(model.input_shape[1:]), classes, predict, keras_model=model
        )
    from gesturelab.models.predictor import StaticPredictor

    static = StaticGraph(loaded.model)
    predictor = StaticPredictor(loaded.model)

    def predict_static(x):
        return predictor.predict_distribution(np.asarray(x, np.float64))

    return Source("static", static, (static.input_size,), static.classes, predict_static)


def _tf_function(source: Source, batch=None):
    import tensorflow as tf

    spec = tf.TensorSpec((batch, *source.input_shape), tf.float32, name="landmarks")
    graph = source.graph

    @tf.function(input_signature=[spec])
    def serve(landmarks):
        out = graph(landmarks, training=False) if source.kind == "sequence" else graph(landmarks)
        return {"gesture": out}

    return serve


# ---- conversion -----------------------------------------------------------------------------


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
            module.serve = _tf_function(source)
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

    serve = _tf_function(source)
    try:
        proto, _ = tf2onnx.convert.from_function(
            serve, input_signature=serve.input_signature, opset=ONNX_OPSET
        )
    except Exception as exc:  # noqa: BLE001
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"onnx: tf2onnx failed ({first[:300]})") from None
    return proto.SerializeToString()


# ---- running exported files -----------------------------------------------------------------


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


# ---- the export targets ---------------------------------------------------------------------


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


# ---- the check ------------------------------------------------------------------------------


def latency_ms(predict, batch: np.ndarray, repeats: int) -> dict:
    """p50/p95/p99 milliseconds of ``predict(batch)`` over ``repeats`` calls (after warm-up)."""
    for _ in range(3):
        predict(batch)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(batch)
        times.append((time.perf_counter() - start) * 1000)
    p50, p95, p99 = np.percentile(times, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99)}


def _scores(y_true, probabilities, reference) -> dict:
    from sklearn.metrics import f1_score

    predicted = probabilities.argmax(axis=1)
    return {
        "accuracy": float((predicted == y_true).mean()),
        "f1_macro": float(
            f1_score(y_true, predicted, average="macro", labels=np.unique(y_true), zero_division=0)
        ),
        "agreement": float((predicted == reference.argmax(axis=1)).mean()),
        "max_abs_diff": float(np.abs(probabilities - reference).max()),
    }


def check(
    source: Source,
    files: dict,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = 64,
    repeats: int = 200,
) -> list[dict]:
    """The original and every exported file side by side on the same held-out rows.

    files: {format: path}. x: held-out input (n, *input_shape) float32; y: class indices.
    Each row: accuracy, macro-F1, top-1 agreement with the original, largest probability
    difference, file size, latency p50/p95/p99 for one sample and for a batch of ``batch_size``
    (one thread each), and ``passed``: accuracy within ``MAX_ACCURACY_LOSS`` of the original.
    """
    x = np.asarray(x, np.float32)
    if x.shape[1:] != tuple(source.input_shape):
        raise LandmarkInputError(
            f"held-out input has shape {x.shape[1:]}, the model takes {source.input_shape}"
        )
    reference = _batched(source.predict, x, 256)
    one, batch = x[:1], x[: min(batch_size, len(x))]
    rows = [
        {
            "format": "original",
            **_scores(y, reference, reference),
            "size_kb": float("nan"),
            **{f"one_{k}_ms": v for k, v in latency_ms(source.predict, one, repeats).items()},
            **{f"batch_{k}_ms": v for k, v in latency_ms(source.predict, batch, repeats).items()},
            "passed": True,
        }
    ]
    for fmt, path in files.items():
        run = runner(path, fmt)
        probabilities = _batched(run, x, 256)
        scores = _scores(y, probabilities, reference)
        rows.append(
            {
                "format": fmt,
                **scores,
                "size_kb": os.path.getsize(path) / 1024,
                **{f"one_{k}_ms": v for k, v in latency_ms(run, one, repeats).items()},
                **{f"batch_{k}_ms": v for k, v in latency_ms(run, batch, repeats).items()},
                "passed": scores["accuracy"] >= rows[0]["accuracy"] - MAX_ACCURACY_LOSS,
            }
        )
    return rows


def _batched(predict, x, size):
    return np.concatenate([predict(x[i : i + size]) for i in range(0, len(x), size)])


def export_and_check(
    loaded,
    formats,
    x_eval,
    y_eval,
    representative,
    folder=None,
    name: str = "model",
    repeats: int = 200,
) -> tuple[list[dict], dict, list[dict]]:
    """Export ``loaded`` to ``formats`` and check each file: (rows, {format: path}, failures).

    failures: formats that could not be converted ({format, error}); they are rows of the
    table too (``passed`` False), so nothing fails silently.
    """
    source = source_for(loaded)
    folder = Path(folder or tempfile.mkdtemp(prefix="gesturelab-export-"))
    files, failures = {}, []
    for fmt in formats:
        try:
            files[fmt] = export(source, fmt, folder, name, representative)
        except ExportError as exc:
            failures.append({"format": fmt, "error": str(exc)})
    rows = check(source, files, x_eval, y_eval, repeats=repeats)
    for failure in failures:
        rows.append({"format": failure["format"], "passed": False, "error": failure["error"]})
    for row in rows:
        if row["format"] in files:
            row["sha256"] = sha256(files[row["format"]])
            row["file"] = files[row["format"]].name
    return rows, files, failures


# ---- the command ----------------------------------------------------------------------------


@dataclass
class HeldOut:
    """Held-out rows to check exports on, training-side rows to calibrate int8 on."""

    x: np.ndarray
    y: np.ndarray
    representative: np.ndarray
    what: str


STATIC_SPLITS = ("test", "val", "train")


def held_out_for(
    loaded, run_params: dict, data=None, split: str = "test", trained_sha256: str | None = None
) -> HeldOut:
    """The data an export is checked on.

    A sequence model of SHREC'17 without ``data``: the subjects its run held out
    (``data_subjects_validation``), refused when it was refit on every subject. A static model
    needs ``data``: its rows of ``split`` (the grouped split ``sweep`` uses) are the check,
    the other rows the representative samples. ``trained_sha256``: the digest of the file
    the model was trained on (its run's dataset tag), to say when the check is not held out.
    """
    rng = np.random.default_rng(0)
    if loaded.kind == "sequence":
        from gesturelab.datasets import shrec

        frames = int(loaded.metadata.get("frames") or loaded.model.input_shape[1])
        classes = [str(c) for c in loaded.metadata.get("classes") or []]
        if data is None:
            held = [int(s) for s in str(run_params.get("data_subjects_validation", "")).split()]
            trained = {int(s) for s in str(run_params.get("data_subjects_train", "")).split()}
            if not held or trained & set(held) or run_params.get("trained_on") == "all":
                raise ExportError(
                    "this model saw every SHREC'17 subject (refit): pass --data with sequences "
                    "it never saw"
                )
            sequences = shrec.load(None, "train", 28 if len(classes) == 28 else 14)
            if list(sequences.classes) != classes:  # a model of some of SHREC's gestures
                from gesturelab.datasets.sequences import pick_classes

                sequences = pick_classes(sequences, classes)
            test = np.isin(sequences.subjects, held)
            what = f"SHREC'17 held-out subjects {' '.join(map(str, held))}"
        else:
            from gesturelab.datasets.sequence_formats import read_sequences

            sequences = read_sequences(data, classes=classes, verbose=False, split=split).data
            test = np.ones(len(sequences), bool)
            what = f"{data}"
        x = sequences.to_fixed(frames).reshape(len(sequences), frames, -1)
        pool = np.flatnonzero(~test) if (~test).any() else np.flatnonzero(test)
        pick = rng.permutation(pool)[:REPRESENTATIVE_SAMPLES]
        return HeldOut(x[test], sequences.labels[test], x[pick], f"{what} ({test.sum()} sequences)")
    if data is None:
        raise ExportError("a static model is checked on data: pass --data (a landmark CSV)")
    if split not in STATIC_SPLITS:
        raise ExportError(
            f"--split {split!r}: a static model is checked on one part of the sweep's grouped "
            f"split of --data ({', '.join(STATIC_SPLITS)}), the other parts give the samples "
            "that calibrate int8"
        )
    from gesturelab.datasets.static_data import prepare

    prepared = prepare(data, verbose=False)
    columns = prepared.columns
    classes = [str(c) for c in loaded.model.classes_]
    index = {c: i for i, c in enumerate(classes)}
    rows = prepared.data[prepared.data["label"].astype(str).isin(index)]
    test = (rows["split"] == split).to_numpy()
    if not test.any() or test.all():
        raise ExportError(
            f"{data}: its {split} split has {test.sum()} of {len(rows)} rows of the model's "
            "classes; the check needs rows in it and rows outside it"
        )
    x = rows[columns].to_numpy(np.float32)
    y = rows["label"].astype(str).map(index).to_numpy()
    pick = rng.permutation(np.flatnonzero(~test))[:REPRESENTATIVE_SAMPLES]
    what = f"{data} {split} split ({test.sum()} rows)"
    if run_params.get("trained_on") == "train+val+test":
        trained = trained_sha256 or run_params.get("data_sha256")
        if trained and prepared.loaded.fingerprint.startswith(trained):
            what += (
                "; this model was refit on every row of this file, these included, so its "
                "accuracy here is not held out (the agreement of each file with it is)"
            )
        elif not trained:
            what += (
                "; this model was refit on every row of its training file, which its run does "
                "not name: if it is this file, its accuracy here is not held out"
            )
    return HeldOut(x[test], y[test], x[pick], what)


def table_text(rows: list[dict]) -> str:
    """The check as a fixed-width table (what ``export`` prints)."""
    head = (
        f"{'format':<15} {'accuracy':>8} {'macro-F1':>8} {'agree':>6} {'size KB':>8} "
        f"{'1: p50':>7} {'p95':>6} {'p99':>6} {'batch p50':>9} {'p95':>6} {'p99':>6}  result"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        if "accuracy" not in r:
            lines.append(f"{r['format']:<15} FAILED: {r.get('error', '')}")
            continue
        size = "" if r["format"] == "original" else f"{r['size_kb']:.0f}"
        verdict = "ok" if r["passed"] else "FAILED (accuracy)"
        lines.append(
            f"{r['format']:<15} {r['accuracy']:>8.4f} {r['f1_macro']:>8.4f} "
            f"{r['agreement']:>6.3f} {size:>8} {r['one_p50_ms']:>7.3f} {r['one_p95_ms']:>6.3f} "
            f"{r['one_p99_ms']:>6.3f} {r['batch_p50_ms']:>9.3f} {r['batch_p95_ms']:>6.3f} "
            f"{r['batch_p99_ms']:>6.3f}  {'' if r['format'] == 'original' else verdict}"
        )
    return "\n".join(lines)


def export_model(
    model_uri: str,
    formats=FORMATS,
    data=None,
    split: str = "test",
    out=None,
    log: bool = True,
    repeats: int = 200,
) -> dict:
    """``python -m gesturelab export``: export, check on held-out data, log to the model's run.

    Files that pass go to the run's ``export/`` artifacts with the table (``export/check.json``,
    ``export/check_table.json``) and metrics ``export_<format>_<measure>``; a file that fails
    (conversion error, or more than one point of accuracy lost) is not logged as a shipped
    file, and the result says so (``failed``).
    """
    import pandas as pd

    import train_with_mlflow as tracking
    from gesturelab import config
    from gesturelab.models.predictor import open_model

    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ExportError(f"--out {out}: a file is there; export writes a folder of files")
    loaded = open_model(model_uri)
    info = tracking.model_version_info(model_uri)
    run_id = info.get("run_id") or tracking.run_of_model(model_uri)
    run = tracking.get_run(run_id) if run_id else None
    params, tags = (run.params, run.tags) if run else ({}, {})
    held = held_out_for(loaded, params, data, split, tags.get("dataset_training_sha256"))
    slug = f"{info['name']}-v{info['version']}" if "version" in info else Path(str(model_uri)).name
    folder = Path(out) if out else config.REPO_ROOT / "build" / "export" / slug
    if loaded.kind == "static":
        formats = [f for f in formats if not TARGETS[f].sequence_only]
    rows, files, failures = export_and_check(
        loaded, formats, held.x, held.y, held.representative, folder, slug, repeats
    )
    failed = [r["format"] for r in rows if not r["passed"]]
    result = {
        "model_uri": model_uri,
        "model": info,
        "checked_on": held.what,
        "rows": rows,
        "files": {k: str(v) for k, v in files.items()},
        "failed": failed,
        "max_accuracy_loss": MAX_ACCURACY_LOSS,
        "folder": str(folder),
    }
    if log and run_id:
        shipped = [files[r["format"]] for r in rows if r["passed"] and r["format"] in files]
        run = tracking.open_run(run_id)
        run.log_files(shipped, "export")
        run.log_dicts({"export/check.json": result})
        run.log_table(pd.DataFrame(rows), "export/check_table.json")
        measures = ("accuracy", "f1_macro", "agreement", "size_kb", "one_p50_ms", "one_p99_ms")
        run.log_metrics(
            {
                f"export_{r['format'].replace('-', '_')}_{k}": r[k]
                for r in rows
                for k in measures
                if np.isfinite(r.get(k, np.nan))  # the original has no size; failures nothing
            }
        )
        result["logged_to_run"] = run_id
    return result
