"""Evaluation: the metrics, the full report with intervals, one way to score any model on held-out
data, the figures.
"""
