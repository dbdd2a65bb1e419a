"""A Keras MLP as a scikit-learn classifier: the static family that can be calibrated.

It sits where the other families sit, after ``LandmarkNormalizer`` and ``StandardScaler`` in
the pipeline, so it joins the sweep, the leaderboard, skops logging and every predictor as they
are. Its network is an ordinary Keras model (``network_``), which ``training.calibration``
fine-tunes and ``gesturelab.serving.export`` converts.

Saved with skops, it keeps the network as its Keras config (JSON) and its weights (arrays), not
as a pickle: loading rebuilds the network from those, nothing else runs.
"""

from __future__ import annotations

import json

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin

from gesturelab import config

# What a saved network may contain: loading refuses anything else (a Lambda layer runs code).
_LAYERS = {"InputLayer", "Dense", "Dropout"}


class KerasMLPClassifier(ClassifierMixin, BaseEstimator):
    """Dense layers of ``hidden`` units (ReLU, dropout) and a softmax, trained with Adam on
    the scaled features; ``epochs`` full passes (no early stopping: the sweep's folds judge)."""

    def __init__(
        self,
        hidden="128,64",
        dropout=0.2,
        epochs=150,
        learning_rate=1e-3,
        batch_size=32,
        seed=config.SEED,
    ):
        self.hidden = hidden
        self.dropout = dropout
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.seed = seed

    def fit(self, X, y):
        import keras

        X = np.asarray(X, np.float32)
        self.classes_, codes = np.unique(np.asarray(y), return_inverse=True)
        keras.utils.set_random_seed(int(self.seed))
        inputs = keras.Input((X.shape[1],), name="features")
        x = inputs
        for units in str(self.hidden).split(","):
            x = keras.layers.Dense(int(units), activation="relu")(x)
            x = keras.layers.Dropout(float(self.dropout))(x)
        outputs = keras.layers.Dense(len(self.classes_), activation="softmax", name="gesture")(x)
        network = keras.Model(inputs, outputs, name="mlp")
        # Fifty batches per call of the compiled step: the same updates in the same order
        # (bit-identical weights, measured), 1.3-1.6x faster for a network this small.
        network.compile(
            optimizer=keras.optimizers.Adam(float(self.learning_rate)),
            loss="sparse_categorical_crossentropy",
            steps_per_execution=50,
        )
        network.fit(X, codes, epochs=int(self.epochs), batch_size=int(self.batch_size), verbose=0)
        self.network_ = network
        self.n_features_in_ = X.shape[1]
        return self

    def predict_proba(self, X):
        batch = np.asarray(X, np.float32)
        return np.asarray(self.network_.predict_on_batch(batch), np.float64)

    def predict(self, X):
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k != "network_"}
        if "network_" in self.__dict__:
            state["network_config_"] = json.dumps(self.network_.get_config())
            state["network_weights_"] = [np.asarray(w) for w in self.network_.get_weights()]
        return state

    def __setstate__(self, state):
        state = dict(state)
        config = state.pop("network_config_", None)
        weights = state.pop("network_weights_", None)
        self.__dict__.update(state)
        if config is not None:
            import keras

            config = json.loads(config)
            kinds = {layer.get("class_name") for layer in config.get("layers", [])}
            if not kinds <= _LAYERS:
                raise ValueError(f"an MLP holds only {sorted(_LAYERS)}, not {sorted(kinds)}")
            network = keras.Model.from_config(config)
            network.set_weights(list(weights))
            self.network_ = network
