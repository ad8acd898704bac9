"""A small multi-label task from real data, for the README demo and ``configs/*.yaml``.

Like ``lightning.pytorch.demos``: :mod:`xent_metrics.demos.data` builds the digit-tags data set
(scikit-learn's 8x8 digits, several human-readable tags per image) and its ``LightningDataModule``;
:mod:`xent_metrics.demos.model` holds a small ``LightningModule`` whose steps return
``{"loss", "preds", "target"}``. ``python -m xent_metrics.demos`` runs the whole demo.
"""
