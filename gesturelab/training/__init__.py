"""Training: the engines, run keys, the classical sweep, sequence models and their leaderboard,
per-user calibration.
"""
