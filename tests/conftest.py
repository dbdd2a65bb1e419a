import os
from pathlib import Path

import pandas as pd
import pytest

from gesturelab import config

os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")


@pytest.fixture(scope="session")
def sample_csv() -> Path:
    return config.HAGRID_SAMPLE_CSV


@pytest.fixture(scope="session")
def sample_frame(sample_csv) -> pd.DataFrame:
    return pd.read_csv(sample_csv)


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch) -> str:
    """A real, empty MLflow store (SQLite + artifacts) for one test."""
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri
