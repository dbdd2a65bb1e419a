"""MLflow, and only here: the store, runs, queries, the registry, safe model files, the UI's views.

``train_with_mlflow.py`` at the repository's top level re-exports it for the notebooks.
"""
