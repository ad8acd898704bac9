"""The digit-tags data: scikit-learn's 8x8 digits, each tagged with several human-readable labels.

``load_digits`` ships with scikit-learn (no download). Each image of digit ``d`` gets one binary
tag per property of ``d`` (even, prime, greater than 4, ...), so a model sees a small, real
multi-label problem whose labels differ in difficulty and base rate. This module needs numpy and
scikit-learn only (no Lightning), so the scikit-learn part of the demo uses it alone.
"""

from __future__ import annotations

import numpy as np

# Each tag: the set of digits (0-9) that carry it. Order is the column order of ``Y``.
TAGS: dict[str, frozenset[int]] = {
    "even": frozenset({0, 2, 4, 6, 8}),
    "prime": frozenset({2, 3, 5, 7}),
    "greater_than_4": frozenset({5, 6, 7, 8, 9}),
    "closed_loop": frozenset({0, 4, 6, 8, 9}),
    "multiple_of_3": frozenset({0, 3, 6, 9}),
    "perfect_square": frozenset({0, 1, 4, 9}),
    "fibonacci": frozenset({0, 1, 2, 3, 5, 8}),
}


def tag_matrix(digits: np.ndarray) -> np.ndarray:
    """Return the ``(N, len(TAGS))`` int64 0/1 tag matrix of an array of digits.

    Examples
    --------
    >>> tag_matrix(np.array([4, 7]))
    array([[1, 0, 0, 1, 0, 1, 0],
           [0, 1, 1, 0, 0, 0, 0]])
    """
    digits = np.asarray(digits)
    return np.stack([np.isin(digits, sorted(members)) for members in TAGS.values()], axis=1).astype(np.int64)


def digit_tags() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Load the digit-tags multi-label data set.

    Returns
    -------
    X : ndarray of shape (1797, 64), float64
        The 8x8 grey levels of ``sklearn.datasets.load_digits``, scaled to ``[0, 1]``.
    Y : ndarray of shape (1797, 7), int64
        One 0/1 column per tag (see ``label_names``).
    label_names : list of str
        The tag names, in column order: ``even``, ``prime``, ``greater_than_4``, ``closed_loop``,
        ``multiple_of_3``, ``perfect_square``, ``fibonacci``.

    Examples
    --------
    >>> X, Y, names = digit_tags()
    >>> X.shape, Y.shape, names[:3]
    ((1797, 64), (1797, 7), ['even', 'prime', 'greater_than_4'])
    >>> Y.sum(axis=0)
    array([ 891,  721,  896,  894,  722,  721, 1076])
    """
    from sklearn.datasets import load_digits  # lazy: scikit-learn is an optional extra

    bunch = load_digits()
    X = np.asarray(bunch.data, dtype=np.float64) / 16.0
    Y = tag_matrix(bunch.target)
    return X, Y, list(TAGS)
