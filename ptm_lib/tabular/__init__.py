"""Tabular data: a real medical table (scikit-learn's breast-cancer data) and masked-feature
pretraining (VIME-style) of an MLP on its rows, to measure when pretraining does *not* help."""
