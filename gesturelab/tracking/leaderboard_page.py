"""A leaderboard where MLflow's UI shows it: a run holding the table, the experiment's
description (what it holds, the data, the split, the leaderboard with links), and a saved runs
view sorted by the selection metric with the leaderboard's columns.

Every sweep and sequence leaderboard rewrites all three, so the UI always shows the newest.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd

STAMP = "%Y-%m-%d %H:%M UTC"


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    if isinstance(value, float | np.floating):
        return f"{value:.4f}"
    # brackets and bars inside a cell would end a link or a column
    return str(value).replace("|", "\\|").replace("[", "\\[").replace("]", "\\]")


def markdown_table(rows: pd.DataFrame, columns: dict, links: dict | None = None) -> str:
    """``rows`` as a markdown table; columns {column: heading}; links {column: link column}."""
    links = links or {}
    lines = [
        "| " + " | ".join(columns.values()) + " |",
        "|" + "---|" * len(columns),
    ]
    for _, row in rows.iterrows():
        cells = []
        for column in columns:
            text = _cell(row.get(column))
            link = row.get(links[column]) if column in links else None
            cells.append(f"[{text}]({link})" if link else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def publish(
    experiment: str,
    board: pd.DataFrame,
    *,
    title: str,
    summary: str,
    table: str,
    sort_by: str,
    metrics: list[str],
    params: list[str] = (),
    tags: list[str] = (),
    where: dict | None = None,
    figure=None,
    label_set=None,
    footer: str = "",
) -> dict:
    """Log ``board`` as the table of a ``leaderboard`` run, save the runs view, rewrite the
    description. ``table``: the description's leaderboard (markdown). Returns the links."""
    import train_with_mlflow as tracking

    with tracking.start_run(
        experiment, "leaderboard", kind="leaderboard", label_set=label_set
    ) as run:
        run.log_table(board.reset_index(drop=True), "leaderboard.json")
        run.log_params({"sort_by": sort_by, "rows": len(board)})
        if figure is not None:
            run.log_figures({"leaderboard.png": figure})
    view = tracking.save_runs_view(
        experiment, sort_by=sort_by, metrics=metrics, params=params, tags=tags, where=where
    )
    runs_path = view[view.index("#") :]
    description = "\n\n".join(
        part
        for part in (
            f"**{title}**: {summary}",
            table,
            f"Every run of this leaderboard, sorted by `{sort_by}`: [the leaderboard view]"
            f"({runs_path}); the table as an artifact: [leaderboard run]"
            f"({tracking.run_link(run.run_id)}) (`leaderboard.json`).",
            footer,
            f"_Rewritten by the latest leaderboard, {time.strftime(STAMP, time.gmtime())}._",
        )
        if part
    )
    tracking.describe_experiment(experiment, description)
    return {"view": view, "leaderboard_run": run.run_id, "experiment": tracking.ui_url(experiment)}
