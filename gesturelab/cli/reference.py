"""The command line's reference page, written from the parser itself: ``docs/cli-reference.md``.

    .venv/bin/python -m gesturelab.cli.reference          # rewrite the page
    .venv/bin/python -m gesturelab.cli.reference --check  # exit 1 if the page is out of date

``tests/test_cli.py`` fails when the page and the parser disagree, so a new option cannot go
undocumented; ``docs/command-line.md`` is the hand-written guide around it.
"""

from __future__ import annotations

import argparse
import os
import sys
from contextlib import contextmanager

from gesturelab import config

PAGE = config.REPO_ROOT / "docs" / "cli-reference.md"
WIDTH = 100  # argparse wraps help to the terminal; the page must not depend on whose terminal

HEADER = """# Command-line reference

Every command of `python -m gesturelab` as its `--help` prints it. Generated from the parser by
`python -m gesturelab.cli.reference` (a test fails when this page and the parser disagree); the
guide to what the commands are for is [the command line](command-line.md).
"""


@contextmanager
def _fixed_width():
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(WIDTH)
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved


def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:  # argparse keeps its subparsers nowhere public
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def _sections(parser: argparse.ArgumentParser, name: str, level: int):
    yield f"{'#' * level} `{name}`\n\n```text\n{parser.format_help().rstrip()}\n```\n"
    for sub_name, sub in _subcommands(parser):
        yield from _sections(sub, f"{name} {sub_name}", min(level + 1, 3))


def render(parser: argparse.ArgumentParser | None = None) -> str:
    """The page for ``parser`` (default: the command line's own)."""
    from gesturelab.cli import build_parser

    with _fixed_width():
        parser = parser or build_parser()
        return "\n".join([HEADER, *_sections(parser, "python -m gesturelab", 2)])


def main(argv=None) -> int:
    check = "--check" in (sys.argv[1:] if argv is None else argv)
    page = render()
    if check:
        current = PAGE.read_text(encoding="utf-8") if PAGE.exists() else ""
        if current != page:
            print(f"{PAGE} is out of date: python -m gesturelab.cli.reference", file=sys.stderr)
            return 1
        return 0
    PAGE.write_text(page, encoding="utf-8")
    print(f"wrote {PAGE.relative_to(config.REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
