"""Headless reproduction: run the notebooks in order through papermill."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pandas as pd

from gesturelab import config


class ReproduceError(RuntimeError):
    pass


def notebook_plan(quick: bool, data, work_dir: Path | None) -> list[tuple[str, dict]]:
    """Each notebook with the parameters that chain it to the previous one."""
    root = Path(work_dir) if work_dir else None
    processed = (root or config.REPO_ROOT / "data") / "processed" / "hagrid_split.csv"
    if root:
        figures = root / "figures"
    else:  # a quick run's figures must not replace the README's
        figures = config.SCRATCH_FIGURES_DIR if quick else config.FIGURES_DIR
    reports = root / "reports" if root else config.REPORTS_DIR
    return [
        (
            "01_data_preprocessing.ipynb",
            {
                "data_path": str(data) if data else "",
                "processed_path": str(processed),
                "figures_dir": str(figures),
            },
        ),
        (
            "02_classical_sweep.ipynb",
            {
                "processed_path": str(processed),
                "quick": quick,
                "figures_dir": str(figures),
                "reports_dir": str(reports),
            },
        ),
        (
            "03_deep_sequence_models.ipynb",
            {"quick": quick, "figures_dir": str(figures), "reports_dir": str(reports)},
        ),
        (
            "04_inference_demo.ipynb",
            {
                "model_uri": "",  # the champion notebook 02 wrote to the reports
                "reports_dir": str(reports),
                "out_dir": str(
                    root / "inference" if root else config.REPO_ROOT / "build" / "inference"
                ),
                "figures_dir": str(figures),
            },
        ),
        (
            "05_evaluation_report.ipynb",
            {
                "processed_path": str(processed),
                "n_bootstrap": 200 if quick else config.N_BOOTSTRAP,
                "figures_dir": str(figures),
                "reports_dir": str(reports),
            },
        ),
        (
            "06_your_own_gestures.ipynb",
            {
                "quick": quick,
                "register": not quick,
                "data_dir": str(root / "datasets" if root else config.DATA_DIR),
                "figures_dir": str(figures / "keypoint-classifier"),
            },
        ),
        (
            "07_live_gestures.ipynb",
            {
                "quick": quick,
                "figures_dir": str(figures),
                "out_dir": str(
                    (root / "inference" if root else config.REPO_ROOT / "build" / "inference")
                    / "live"
                ),
            },
        ),
        (
            "08_personalisation.ipynb",
            {
                **(
                    {
                        "use_folds": 1,
                        "max_subjects": 1,
                        "epochs": 3,
                        "samples_per_class": [1, 3],
                        "strategies": ["head_only", "last_block"],
                        "learning_rates": [1e-3],
                        "calibration_epochs": 3,
                    }
                    if quick
                    else {}
                ),
                "figures_dir": str(figures),
                "reports_dir": str(reports),
            },
        ),
    ]


def reproduce(
    quick: bool = False, data=None, work_dir=None, notebooks=None, stream: bool = True
) -> pd.DataFrame:
    """Execute every notebook; stop at the first failing cell with a message that names it.

    stream: pass the kernels' stderr (progress bars, warnings) through to this process.
    """
    import papermill
    from papermill.exceptions import PapermillExecutionError

    # MediaPipe and TensorFlow log every graph start at INFO/WARNING level from C++; kernels
    # inherit this environment.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    executed_dir = Path(work_dir) / "executed" if work_dir else config.EXECUTED_DIR
    executed_dir.mkdir(parents=True, exist_ok=True)
    plan = notebook_plan(quick, data, work_dir)
    if notebooks:
        plan = [step for step in plan if any(step[0].startswith(n) for n in notebooks)]
        if not plan:
            raise ReproduceError(f"no notebook matches {notebooks}")
    times = []
    for name, parameters in plan:
        source = config.NOTEBOOKS_DIR / name
        target = executed_dir / name
        print(f"==> {name} {parameters}", flush=True)
        start = time.perf_counter()
        try:
            papermill.execute_notebook(
                str(source),
                str(target),
                parameters=parameters,
                kernel_name="python3",
                cwd=str(config.NOTEBOOKS_DIR),
                progress_bar=False,
                stderr_file=sys.stderr if stream else None,
            )
        except PapermillExecutionError as exc:
            raise ReproduceError(
                f"{name} failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
                f"{exc.ename}: {exc.evalue}\nThe executed notebook with the traceback: {target}"
            ) from None
        seconds = time.perf_counter() - start
        print(f"    done in {seconds:.1f} s -> {target}", flush=True)
        times += section_times(target, name, seconds)
    reports = Path(work_dir) / "reports" if work_dir else config.REPORTS_DIR
    report_times(pd.DataFrame(times), reports)
    board_path = reports / "classical_leaderboard.csv"
    return pd.read_csv(board_path) if board_path.exists() else pd.DataFrame()


def section_times(executed, name: str, seconds: float) -> list[dict]:
    """Wall time of each section (``##`` heading) of an executed notebook, from the duration
    papermill records per cell; the notebook's own row holds its whole time (kernel start
    included), so the sections do not add up to it exactly."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    rows, section = {}, "(before the first section)"
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            heading = next(
                (line for line in cell.source.splitlines() if line.startswith("## ")), None
            )
            section = heading[3:].strip() if heading else section
        elif cell.cell_type == "code":
            duration = cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0
            rows[section] = rows.get(section, 0.0) + float(duration)
    return [{"notebook": name, "section": "(whole notebook)", "seconds": seconds}] + [
        {"notebook": name, "section": k, "seconds": v} for k, v in rows.items()
    ]


def report_times(times: pd.DataFrame, reports: Path) -> None:
    """Print where the time went, write ``reproduce_times.csv`` and log it as a run."""
    if times.empty:
        return
    reports.mkdir(parents=True, exist_ok=True)
    times.to_csv(reports / "reproduce_times.csv", index=False)
    whole = times[times["section"] == "(whole notebook)"]
    sections = times[times["section"] != "(whole notebook)"].nlargest(8, "seconds")
    print(f"\nWall time per notebook ({whole['seconds'].sum():.0f} s in all):")
    print(whole[["notebook", "seconds"]].round(1).to_string(index=False))
    print("\nThe longest sections:")
    print(sections.round(1).to_string(index=False))
    import train_with_mlflow as tracking

    with tracking.start_run("reproduce", "reproduce", kind="reproduce") as run:
        run.log_metrics(
            {f"seconds_{n.split('_')[0]}": t for n, t in zip(whole["notebook"], whole["seconds"])}
        )
        run.log_table(times, "reproduce_times.json")
