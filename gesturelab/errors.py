"""The project's errors for what a user gave it: the CLI prints them as one line, exit code 2.

Anything else that escapes is a bug of ours and keeps its traceback.
"""

from __future__ import annotations

import re
from pathlib import Path


class GestureLabError(Exception):
    """A problem with the user's input (file, model, option), said so that it can be fixed."""


class LandmarkDataError(ValueError, GestureLabError):
    """A data file that cannot be used (landmark CSV, sequence files), with where the problem is."""

    def __init__(self, path, message: str, line: int | None = None, column: str | None = None):
        self.path, self.line, self.column = Path(path), line, column
        where = str(path)
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {message}")


class LandmarkInputError(ValueError, GestureLabError):
    """Landmarks handed to a model that no hand can have (NaN, infinite, absurdly large)."""


class ModelLoadError(GestureLabError):
    """A model that does not exist, is not a model, or is refused before it is deserialised."""


def path_text(path) -> str:
    """``path`` as text any file or terminal takes: bytes of a name that is not valid UTF-8 (held
    by Python as surrogate escapes, which pandas, pyarrow and ``print`` refuse) become ``\\xNN``,
    as ``ls -b`` shows them."""
    return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class MediaError(GestureLabError):
    """An image or video that cannot be decoded; ``reason`` is what the problems file says."""

    def __init__(self, path, reason: str):
        self.path, self.reason = path_text(path), reason
        super().__init__(f"{self.path}: {reason}")


class SweepDataError(GestureLabError):
    """A dataset that is valid but cannot be swept (too few classes, rows or groups)."""


class RegistryError(GestureLabError):
    """A registration that would replace a model trained on other data or other classes."""


class TrackingStoreError(GestureLabError):
    """A tracking server that does not answer, or refuses who is asking."""


class UnknownNameError(ValueError, GestureLabError):
    """A model family, architecture or other choice that is not in its registry."""


class UnsafeNameError(ValueError, GestureLabError):
    """A name that would act as a path where it becomes a folder name."""


# Experiment, model, dataset and user names become folder names (artifacts, figures, data/NAME,
# calibration outputs): one with a separator or ".." wrote outside the store and the repository.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._ -]*")


def check_name(value: str, what: str) -> str:
    """``value`` if it is safe as a folder name, else an UnsafeNameError saying why."""
    if not _SAFE_NAME.fullmatch(str(value)) or ".." in str(value):
        raise UnsafeNameError(
            f"{value!r} is not a safe {what} name (it is also a folder name): letters, "
            "digits, '.', '_', '-' and spaces, starting with a letter or digit"
        )
    return value


def lookup(registry: dict, name: str, what: str):
    """``registry[name]``, or an UnknownNameError that lists the known names."""
    try:
        return registry[name]
    except KeyError:
        raise UnknownNameError(f"unknown {what} {name!r}; known: {', '.join(registry)}") from None


class EngineError(GestureLabError):
    """A backend that cannot start: an unknown name, no scheduler at the address given."""
