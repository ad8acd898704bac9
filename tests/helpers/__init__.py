"""Reusable test helpers (import as ``from helpers.dist import run_in_processes``; ``tests/`` is on sys.path)."""
