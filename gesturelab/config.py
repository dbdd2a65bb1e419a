"""Every path the project writes or reads, anchored at the repository root.

Kernels started by papermill and by JupyterLab run in different working directories, so
nothing here may depend on the current directory.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

DATA_DIR = REPO_ROOT / "data"
HAGRID_SAMPLE_CSV = DATA_DIR / "hagrid" / "hagrid_landmarks_sample.csv"
SHREC_TRAIN_NPZ = DATA_DIR / "shrec17" / "shrec17_train.npz"
PROCESSED_DIR = DATA_DIR / "processed"
QUARANTINE_DIR = DATA_DIR / "quarantine"
KEYPOINT_CSV = DATA_DIR / "kazuhito00_keypoints" / "keypoint.csv"
# MediaPipe landmarks of image folders, by image content: a rerun extracts only what changed.
EXTRACTION_CACHE_DIR = REPO_ROOT / "build" / "cache" / "landmarks"

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
EXECUTED_DIR = REPO_ROOT / "build" / "executed"
FIGURES_DIR = REPO_ROOT / "figures"  # the README's figures: written by `reproduce` only
SCRATCH_FIGURES_DIR = REPO_ROOT / "build" / "figures"  # everything else: notebooks, sweep
REPORTS_DIR = REPO_ROOT / "build" / "reports"
# Everything a notebook printed and its libraries logged while `reproduce` ran it (the terminal
# shows a line per section).
LOGS_DIR = REPO_ROOT / "build" / "logs"
# Notebook 03's leaderboard as reproduce left it: `train-seq` trains its best by default.
TENSORBOARD_DIR = REPO_ROOT / "build" / "tensorboard"
TENSORBOARD_URL = "http://127.0.0.1:6006"  # `make tensorboard`

MLRUNS_DIR = REPO_ROOT / "mlruns"
MLFLOW_DB = MLRUNS_DIR / "mlflow.db"
MLFLOW_ARTIFACTS_DIR = MLRUNS_DIR / "artifacts"

STATIC_EXPERIMENT = "hagrid-classical-sweep"
STATIC_MODEL_NAME = "hagrid-static-gesture"
CHAMPION_ALIAS = "champion"
SEQUENCE_EXPERIMENT = "shrec17-sequence-models"
# The per-frame live detectors (notebook 07): a learned "no gesture", streams of held-out subjects.
LIVE_EXPERIMENT = "shrec17-live-detector"
# The test of the leaderboard's rule (studies.seq_rule_study): a leaderboard per held-out fold.
SEQUENCE_RULE_EXPERIMENT = "shrec17-rule-study"
# What a live detector's model metadata says under "detector": how a loader tells it apart.
FRAME_DETECTOR_KIND = "per-frame"
LIVE_DETECTOR_EPOCHS = 40  # early stopping on validation subjects' streams ends most fits sooner
LIVE_STREAM_COPIES = 4  # differently seeded streams of each training subject
# One registered model per label set: the 14 gestures, or 28 with one finger vs whole hand.
SEQUENCE_MODEL_NAMES = {14: "shrec17-14-gestures", 28: "shrec17-28-gestures"}
# What train-seq trains when neither --arch nor a registered champion says: the leaderboard's
# best per label set (docs/results/sequence-models.md).
SEQUENCE_ARCHITECTURES = {14: "ensemble", 28: "ensemble"}
# Which hand a sequence reader takes when a file has both (--hand): "dominant" is the one present
# in more of the sequence's frames, and a left hand it takes is mirrored into the right hand's
# frame; "both" keeps the two hands as recorded (right then left, 42 points, each masked alone).
HAND_CHOICES = ("dominant", "right", "left", "both")
DEFAULT_HAND = "dominant"
# cleanlab's rules for which examples the label check flags (data check-labels --flag-by), and
# the default per kind of data (why: gesturelab.training.label_check).
LABEL_FLAG_RULES = ("prune_by_noise_rate", "low_self_confidence", "both", "confident_learning",
                    "prune_by_class", "low_normalized_margin", "predicted_neq_given")  # fmt: skip
LABEL_FLAG_BY = {"static": "prune_by_noise_rate", "sequences": "low_self_confidence"}
# Epochs a fold when the label check trains a sequence architecture per fold (--epochs; why 60:
# gesturelab.training.label_check).
LABEL_CHECK_EPOCHS = 60

# Run settings: every CLI option, function default and notebook parameter reads these.
SEED = 42  # the static side: splits, folds, forests, viewpoint perturbation
SEQUENCE_SEED = 0  # the sequence side: subject split and weight initialisation
BOOTSTRAP_SEED = 0  # the resampling behind every interval and paired test
SELECTION_TOLERANCE = 0.005  # macro-F1 gap below which two configurations count as tied
# The model the sweep builds from the families' bests (models.static_families.COMPOSITES).
ENSEMBLE_FAMILY = "ensemble"
# How the champion is chosen among the families' bests and their ensemble
# (training.selection_rules): the rule whose champions did best on held-out sources
# (studies.selection_study, notebook 02, docs/results/static-hagrid.md): taking the ensemble,
# on the HaGRID sample (full grids, 5 source folds) 0.984 against 0.980 for the best rule that
# chooses one model, on the keypoint file (quick grids) 0.973 against 0.971; intervals overlap.
SELECTION_RULE = "ensemble"
# A file with more training rows than this is swept on a stratified subsample of this many
# (every family on the same rows; each family's best is refit on all of them): the grid's
# kernel SVMs, forests and MLPs would otherwise cost hours on two cores at HaGRID's full size
# (benchmarks/bench_sweep_rows.py); 4000 keeps the 4,450-row keypoint file whole. 0: every row.
SELECTION_ROWS = 4000
BLOCK_SIZE = 10  # rows per group when a file has no user/subject/group column
# ...but a long run of one label (a webcam recording) is cut into at most this many blocks:
# neighbouring frames are near-copies, and only long blocks keep them on one side of a split.
MAX_BLOCKS_PER_RUN = 12
# How the sequence leaderboard names each label set's champion (training.seq_rules), tested on
# subjects no choice saw (studies.seq_rule_study, notebook 03, docs/results/shrec17.md): in four
# folds of held-out subjects the best validation accuracy named the ensemble every time, so the
# rules "accuracy", "macro-f1" and "ensemble" tied (held-out accuracy 0.950 on 14 classes, 0.912
# on 28); of the three, taking the ensemble does not hang on one split of five subjects, where
# DD-Net led on 14 classes by 3 of 500 sequences yet averaged 0.936 held out against 0.950.
SEQUENCE_SELECTION_RULE = "ensemble"
VALIDATION_FRACTION = 0.25  # share of subjects a sequence model is validated on
N_BOOTSTRAP = 1000  # resamples for every confidence interval
SMOOTHING_WINDOW = 7  # frames of label smoothing in videos
# Pre-labelling (``prelabel``): proposals accepted from this confidence (the deployment
# workflow's auto-label threshold); the band it collects as hard examples; one video frame in
# every N (neighbouring frames are near-duplicates); how the review queue is ordered; the share
# of accepted proposals queued as well (the workflow's random sample for quality control).
PRELABEL_THRESHOLD = 0.9
HARD_BAND = (0.4, 0.6)
PRELABEL_EVERY = 5
PRELABEL_RANKS = ("margin", "entropy", "band")
PRELABEL_AUDIT = 0.05  # the share of accepted proposals queued as well, a quality check
PRELABEL_UNITS = ("window", "clip")  # a sequence model's proposals: per window, or per video
# The reject threshold keeps this share of validation hands answered (models/rejection.py).
REJECT_COVERAGE = 0.95
# MLflow's system metrics (CPU, memory) of training runs: one sample every this many seconds.
SYSTEM_METRICS_INTERVAL_S = 2


def setting(value, default):
    """A notebook parameter or option as given, or the default when left empty (None or "")."""
    return default if value is None or value == "" else value
