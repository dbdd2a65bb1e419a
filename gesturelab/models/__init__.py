"""Models: the static families and sequence architectures (registries), the predictors that serve
them, the reject option, model cards.
"""
