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
        print(f"    done in {time.perf_counter() - start:.1f} s -> {target}", flush=True)
    reports = Path(work_dir) / "reports" if work_dir else config.REPORTS_DIR
    board_path = reports / "classical_leaderboard.csv"
    return pd.read_csv(board_path) if board_path.exists() else pd.DataFrame()
