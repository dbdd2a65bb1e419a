"""Headless reproduction: run the notebooks in order through papermill.

A notebook whose key is unchanged since it last finished is not run again: the key covers what
determines its results (the notebook, its parameters, the package's code, the data files, the
pinned requirements, the tracking store, and the keys of the notebooks before it), and reuse
also needs every file it wrote and every MLflow run it started to be still there, unchanged.
Once one notebook runs, every notebook after it runs too (its inputs may have changed).
"""

from __future__ import annotations

import hashlib
import json
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
            {
                "quick": quick,
                # A training costs seconds of graph tracing however few its epochs: a quick
                # run's leaderboard is the 14-gesture one (28 is the same code, on other labels)
                # of the ensemble's members (DD-Net, whose run notebook 07 reuses, and the
                # 1D-CNN) and one recurrent model (the GRU trains in tests/test_export.py, the
                # TCN in the GESTO ladder). DD-Net first: the longest fit starts at once.
                **({"class_counts": [14], "archs": ["ddnet", "lstm", "cnn"]} if quick else {}),
                "figures_dir": str(figures),
                "reports_dir": str(reports),
            },
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
                        "epochs": 1,  # the base model: one epoch of DD-Net on 15 subjects
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
        (
            "09_labelling.ipynb",
            {"quick": quick, "figures_dir": str(figures), "reports_dir": str(reports)},
        ),
    ]


# What a notebook's results depend on besides its own file and parameters.
_CODE = ("gesturelab", "train_with_mlflow.py", "requirements.txt")
STATE_FILE = "reproduce_state.json"


def _digest_files(paths) -> str:
    """Names and contents; a name inside the repository is relative to it (a moved clone keeps
    its keys), one outside it (a --data file) absolute."""
    digest = hashlib.sha256()
    for path in sorted(Path(p).resolve() for p in paths):
        inside = config.REPO_ROOT.resolve() in path.parents
        digest.update(
            str(path.relative_to(config.REPO_ROOT.resolve()) if inside else path).encode()
        )
        digest.update(path.read_bytes())
    return digest.hexdigest()


def shipped_data(written=()) -> list[Path]:
    """The data files the repository ships: git's list of ``data/``, or, outside a checkout,
    every file there but what notebooks write (``written``, the processed and quarantine
    folders): notebook 06 imports its dataset into ``data/`` and must not change the key."""
    import subprocess

    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z", "--", str(config.DATA_DIR)],
            cwd=config.REPO_ROOT,
            capture_output=True,
            check=True,
        ).stdout.split(b"\0")
        files = [config.REPO_ROOT / name.decode() for name in listed if name]
        if files:
            return [f for f in files if f.is_file()]
    except (OSError, subprocess.CalledProcessError):
        pass
    skip = {config.PROCESSED_DIR, config.QUARANTINE_DIR}
    return [
        f
        for f in config.DATA_DIR.rglob("*")
        if f.is_file() and str(f) not in written and not skip & set(f.parents)
    ]


def inputs_key(data, written=()) -> str:
    """The code, requirements and data files every notebook reads, as one digest."""
    files = shipped_data(written)
    for name in _CODE:
        path = config.REPO_ROOT / name
        files += path.rglob("*.py") if path.is_dir() else [path]
    if data:
        given = Path(data)
        files += [f for f in given.rglob("*") if f.is_file()] if given.is_dir() else [given]
    return _digest_files(files)


def notebook_key(name: str, parameters: dict, previous: str, inputs: str, store: str) -> str:
    payload = {
        "notebook": hashlib.sha256((config.NOTEBOOKS_DIR / name).read_bytes()).hexdigest(),
        "parameters": parameters,
        "previous": previous,
        "inputs": inputs,
        "store": store,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _watched(work_dir) -> list[Path]:
    """Where notebooks write files (the tracking store is checked through its runs)."""
    if work_dir:
        return [Path(work_dir)]
    return [config.REPO_ROOT / "build", config.FIGURES_DIR, config.DATA_DIR]


def _files_written(roots, since_ns: int, skip: Path, logs_dir: Path | None = None) -> dict:
    """Files under ``roots`` changed since ``since_ns``, but not the store's own files (a
    store inside the work folder changes with every run; its runs are checked instead) nor
    the logs (a record of the run, not a result)."""
    import train_with_mlflow as tracking

    written = {}
    for root in roots:
        for path in root.rglob("*") if root.exists() else ():
            if (
                path.is_file()
                and path != skip
                and (logs_dir is None or Path(logs_dir) not in path.parents)
                and path.stat().st_mtime_ns >= since_ns
                and not tracking.is_store_file(path)
            ):
                written[str(path)] = None
    return written


def _file_state(paths) -> dict:
    """(size, mtime) of each file, or None for one that is gone."""
    state = {}
    for path in paths:
        try:
            stat = Path(path).stat()
            state[path] = [stat.st_size, stat.st_mtime_ns]
        except FileNotFoundError:
            state[path] = None
    return state


def end_state(recorded: dict) -> dict:
    """The files' state after the whole reproduce: a later notebook may rewrite an earlier one's
    files, so reuse checks the end state; a file that is gone stays recorded as it was, so its
    notebook runs again next time (``--only 02`` must not make 01's deleted file look fine)."""
    now = _file_state(recorded)
    return {path: now[path] if now[path] is not None else was for path, was in recorded.items()}


def _why_not_reused(record: dict | None, key: str) -> str | None:
    """None when the notebook's last finished run answers ``key`` and its results are intact."""
    import train_with_mlflow as tracking

    if record is None or record.get("key") != key:
        return "its inputs changed" if record else "it has not run yet"
    if _file_state(record["files"]) != record["files"]:
        return "a file it wrote changed or is gone"
    if tracking.missing_runs(record["runs"]):
        return "a run it logged is no longer in the store"
    return None


def _plan_and_state(quick, data, work_dir, notebooks):
    """The notebooks to run (``notebooks``: their number prefixes), the record of their last
    finished runs, each notebook's key, and where that record lives."""
    import train_with_mlflow as tracking

    executed_dir = Path(work_dir) / "executed" if work_dir else config.EXECUTED_DIR
    executed_dir.mkdir(parents=True, exist_ok=True)
    plan = notebook_plan(quick, data, work_dir)
    if notebooks:
        plan = [step for step in plan if any(step[0].startswith(n) for n in notebooks)]
        if not plan:
            raise ReproduceError(f"no notebook matches {notebooks}")
    state_path = executed_dir / STATE_FILE
    state = json.loads(state_path.read_text()) if state_path.exists() else {}
    written = {path for record in state.values() for path in record.get("files", {})}
    inputs, store = inputs_key(data, written), tracking.tracking_uri()
    keys, previous = {}, ""
    for name, parameters in notebook_plan(quick, data, work_dir):
        keys[name] = previous = notebook_key(name, parameters, previous, inputs, store)
    return plan, state, keys, state_path


def pending(
    quick: bool = False, data=None, work_dir=None, notebooks=None, fresh: bool = False
) -> list[tuple[str, str | None]]:
    """What ``reproduce`` with the same arguments would do, without running anything: each
    notebook with the reason it would run, or None where its finished run would be reused."""
    plan, state, keys, _ = _plan_and_state(quick, data, work_dir, notebooks)
    decisions, ran = [], False
    for name, _ in plan:
        why = _why_it_runs(name, state, keys, fresh, ran)
        ran = ran or why is not None
        decisions.append((name, why))
    return decisions


def _why_it_runs(name, state, keys, fresh, earlier_ran: bool) -> str | None:
    """Why ``reproduce`` runs this notebook, or None where it reuses its finished run: once a
    notebook runs, every notebook after it runs too."""
    why = "--fresh" if fresh else _why_not_reused(state.get(name), keys[name])
    return "a notebook before it runs" if why is None and earlier_ran else why


def reproduce(
    quick: bool = False,
    data=None,
    work_dir=None,
    notebooks=None,
    stream: bool = False,
    fresh: bool = False,
) -> pd.DataFrame:
    """Execute every notebook; stop at the first failing cell with a message that names it.

    stream: also pass what the kernels print and log (progress bars, warnings) to this
        process's stderr; it always goes to ``build/logs/<notebook>.log`` (``logs/`` of
        ``work_dir``), and the terminal shows a line per section of the notebook.
    fresh: run every notebook, even those whose finished run answers their key.
    """
    from papermill.exceptions import PapermillExecutionError

    import train_with_mlflow as tracking

    # Kernels inherit this environment, with the C++ log levels importing gesturelab set.
    plan, state, keys, state_path = _plan_and_state(quick, data, work_dir, notebooks)
    executed_dir = state_path.parent
    times, ran = [], False
    logs_dir = Path(work_dir) / "logs" if work_dir else config.LOGS_DIR
    for name, parameters in plan:
        source = config.NOTEBOOKS_DIR / name
        target = executed_dir / name
        print(f"==> {name}", flush=True)
        start = time.perf_counter()
        why = _why_it_runs(name, state, keys, fresh, ran)
        if why is None:
            seconds = time.perf_counter() - start
            print(
                f"    reused: unchanged since it finished ({state[name]['seconds']:.0f} s); "
                f"{len(state[name]['runs'])} runs and {len(state[name]['files'])} files "
                f"checked in {seconds:.1f} s",
                flush=True,
            )
            times.append(
                {
                    "notebook": name,
                    "section": "(whole notebook)",
                    "seconds": seconds,
                    "reused": True,
                }
            )
            continue
        ran = True
        log_path = logs_dir / f"{Path(name).stem}.log"
        print(f"    running: {why}; log {log_path}")
        started_ns, started_ms = time.time_ns(), int(time.time() * 1000) - 1
        # This notebook and every one after it must run again before they can be reused.
        for later in list(keys)[list(keys).index(name) :]:
            state.pop(later, None)
        state_path.write_text(json.dumps(state, indent=1))
        try:
            _execute(source, target, parameters, log_path, stream)
        except PapermillExecutionError as exc:
            raise ReproduceError(
                f"{name} failed in cell {exc.cell_index} (execution count {exc.exec_count}): "
                f"{exc.ename}: {exc.evalue}\nThe executed notebook with the traceback: {target}"
                f"\nIts log: {log_path}"
            ) from None
        seconds = time.perf_counter() - start
        print(f"    done in {seconds:.1f} s -> {target}", flush=True)
        times += section_times(target, name, seconds)
        state[name] = {
            "key": keys[name],
            "seconds": seconds,
            "files": _file_state(
                _files_written(_watched(work_dir), started_ns, state_path, logs_dir)
            ),
            "runs": tracking.runs_used_since(started_ms),
        }
        state_path.write_text(json.dumps(state, indent=1))
    for record in state.values():
        record["files"] = end_state(record["files"])
    state_path.write_text(json.dumps(state, indent=1))
    reports = Path(work_dir) / "reports" if work_dir else config.REPORTS_DIR
    report_times(pd.DataFrame(times), reports)
    board_path = reports / "classical_leaderboard.csv"
    return pd.read_csv(board_path) if board_path.exists() else pd.DataFrame()


def sections_of(cells) -> list[str]:
    """The section (``##`` heading) each cell belongs to."""
    sections, section = [], "(before the first section)"
    for cell in cells:
        if cell.cell_type == "markdown":
            heading = next((x for x in cell.source.splitlines() if x.startswith("## ")), None)
            section = heading[3:].strip() if heading else section
        sections.append(section)
    return sections


class _SectionLines:
    """Prints a line as each section (``##`` heading) of a running notebook finishes."""

    def __init__(self, cells):
        self.sections = sections_of(cells)
        self.current, self.started = None, 0.0

    def cell_start(self, index: int) -> None:
        section = self.sections[index] if index is not None else self.current
        if section != self.current:
            self.finish()
            self.current, self.started = section, time.perf_counter()

    def finish(self) -> None:
        if self.current is not None:
            seconds = time.perf_counter() - self.started
            print(f"    {seconds:7.1f} s  {self.current}", flush=True)
        self.current = None


def _section_engine():
    """papermill's nbclient engine, reporting each section as it finishes."""
    from papermill.engines import NBClientEngine, papermill_engines

    class SectionEngine(NBClientEngine):
        @classmethod
        def execute_managed_notebook(cls, nb_man, kernel_name, **kwargs):
            lines = _SectionLines(nb_man.nb.cells)
            start = nb_man.cell_start

            def cell_start(cell, cell_index=None, **more):
                lines.cell_start(cell_index)
                return start(cell, cell_index, **more)

            nb_man.cell_start = cell_start
            try:
                return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)
            finally:
                lines.finish()

    papermill_engines.register("gesturelab-sections", SectionEngine)
    return "gesturelab-sections"


class _Tee:
    """Writes to several text streams (the log, and the terminal when streaming)."""

    def __init__(self, *streams):
        self.streams = streams

    def write(self, text):
        for stream in self.streams:
            stream.write(text)
        return len(text)

    def flush(self):
        for stream in self.streams:
            stream.flush()


def _execute(source: Path, target: Path, parameters: dict, log_path: Path, stream: bool) -> None:
    """Run one notebook through papermill; everything it prints or logs goes to ``log_path``
    (the kernel's own stderr too: TensorFlow's and MediaPipe's C++ logs are written there, not
    into the notebook), and to this process's stderr as well when ``stream``."""
    import papermill

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", buffering=1) as log:
        out = _Tee(log, sys.stderr) if stream else log
        sys.stdout.flush()
        sys.stderr.flush()
        saved = os.dup(2)
        if not stream:  # the kernel inherits this process's stderr
            os.dup2(log.fileno(), 2)
        try:
            papermill.execute_notebook(
                str(source),
                str(target),
                parameters=parameters,
                kernel_name="python3",
                engine_name=_section_engine(),
                cwd=str(config.NOTEBOOKS_DIR),
                progress_bar=False,
                stdout_file=out,
                stderr_file=out,
            )
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)


def section_times(executed, name: str, seconds: float) -> list[dict]:
    """Wall time of each section (``##`` heading) of an executed notebook, from the duration
    papermill records per cell; the notebook's own row holds its whole time (kernel start
    included), so the sections do not add up to it exactly."""
    import nbformat

    notebook = nbformat.read(executed, as_version=4)
    rows = {}
    for cell, section in zip(notebook.cells, sections_of(notebook.cells), strict=True):
        if cell.cell_type == "code":
            duration = cell.get("metadata", {}).get("papermill", {}).get("duration") or 0.0
            rows[section] = rows.get(section, 0.0) + float(duration)
    return [
        {"notebook": name, "section": "(whole notebook)", "seconds": seconds, "reused": False}
    ] + [{"notebook": name, "section": k, "seconds": v, "reused": False} for k, v in rows.items()]


def report_times(times: pd.DataFrame, reports: Path) -> None:
    """Print where the time went, write ``reproduce_times.csv`` and log it as a run."""
    if times.empty:
        return
    reports.mkdir(parents=True, exist_ok=True)
    # The newest table, and every run's own (a second, reusing run must not replace the table
    # of the first, the one that says where the time goes).
    times.to_csv(reports / "reproduce_times.csv", index=False)
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    kept = reports / "reproduce_times" / f"{stamp}.csv"
    kept.parent.mkdir(exist_ok=True)
    times.to_csv(kept, index=False)
    whole = times[times["section"] == "(whole notebook)"]
    sections = times[times["section"] != "(whole notebook)"].nlargest(8, "seconds")
    print(f"\nWall time per notebook ({whole['seconds'].sum():.0f} s in all):")
    print(whole[["notebook", "seconds", "reused"]].round(1).to_string(index=False))
    if not sections.empty:
        print("\nThe longest sections:")
        print(sections.round(1).to_string(index=False))
    print(f"(this table: {kept}; every run's is kept there)")
    import train_with_mlflow as tracking

    with tracking.start_run("reproduce", "reproduce", kind="reproduce") as run:
        run.log_metrics(
            {f"seconds_{n.split('_')[0]}": t for n, t in zip(whole["notebook"], whole["seconds"])}
        )
        run.log_table(times, "reproduce_times.json")
