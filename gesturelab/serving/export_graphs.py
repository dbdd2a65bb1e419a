"""What an export converts: a model of ours as one TensorFlow graph that takes raw landmarks (a
static pipeline rebuilt in TensorFlow ops, a recurrent model unrolled).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gesturelab.errors import GestureLabError


class ExportError(ValueError, GestureLabError):
    """A model that cannot be exported to a format, with the reason."""


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
        from gesturelab.features.landmark_features import ANGLE_TRIPLES, FINGER_BASES, PAIRS, TIPS

        def unit_depths(z):  # landmark_features.unit_depths
            zscale = tf.reduce_max(tf.abs(z), axis=1, keepdims=True)
            return z / tf.where(zscale > 1e-12, zscale, tf.ones_like(zscale))

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
                points = tf.concat([points, unit_depths(hands[:, :, 2])[:, :, None]], axis=2)
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
        if getattr(n, "depth", False):  # hands are wrist-centred here (depth needs normalise)
            z = unit_depths(hands[:, :, 2])
            tips, bases = (np.asarray(t, np.int32) for t in (TIPS, FINGER_BASES))
            parts += [z, tf.gather(z, tips, axis=1) - tf.gather(z, bases, axis=1)]
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


class EnsembleGraph:
    """A ``SoftVotingEnsemble`` as TensorFlow ops: the mean of its members' ``StaticGraph``
    probabilities, as the ensemble's ``predict_proba`` averages them."""

    def __init__(self, ensemble):
        self.graphs = []
        for name, member in ensemble.members_:
            try:
                self.graphs.append(StaticGraph(member))
            except ExportError as error:
                raise ExportError(f"the ensemble's member {name!r}: {error}") from None
        self.classes = [str(c) for c in ensemble.classes_]
        if any(graph.classes != self.classes for graph in self.graphs):
            raise ExportError("the ensemble's members were fitted on different classes")
        self.dims = self.graphs[0].dims

    @property
    def input_size(self) -> int:
        return 21 * self.dims

    def __call__(self, x):
        import tensorflow as tf

        return tf.add_n([graph(x) for graph in self.graphs]) / len(self.graphs)


def static_graph(model):
    """The TensorFlow graph of a fitted static model: a pipeline, or an ensemble of them."""
    return EnsembleGraph(model) if hasattr(model, "members_") else StaticGraph(model)


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

    static = static_graph(loaded.model)
    predictor = StaticPredictor(loaded.model)

    def predict_static(x):
        return predictor.predict_distribution(np.asarray(x, np.float64))

    return Source("static", static, (static.input_size,), static.classes, predict_static)


def tf_function(source: Source, batch=None):
    import tensorflow as tf

    spec = tf.TensorSpec((batch, *source.input_shape), tf.float32, name="landmarks")
    graph = source.graph

    @tf.function(input_signature=[spec])
    def serve(landmarks):
        out = graph(landmarks, training=False) if source.kind == "sequence" else graph(landmarks)
        return {"gesture": out}

    return serve
