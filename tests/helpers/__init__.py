"""Reusable test helpers; ``tests/`` is on sys.path, so import them as ``from helpers.dist import run_in_processes``.

``cases``: the Metric classes, options and valid batches every suite draws from; ``harness``: the reference
harness's float64 references; ``dist``: gloo processes on 127.0.0.1; ``fuzz``: hypothesis strategies; ``lightning``:
a tiny trainer.
"""
