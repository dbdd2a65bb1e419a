"""Features of a hand: the normalised landmark features every static model starts with, and
viewpoint perturbation.
"""
