"""Benchmarks of xent-metrics against its peers (issue 14) and the long-run stability check (issue 12).

``python benchmarks/run.py`` (or ``python -m benchmarks``) runs them; see benchmarks/README.md.
Modules: ``spec`` (what a case and a typed target are), ``cases`` (the workloads and their targets),
``peers`` (ours and the peers as zero-argument calls), ``measure`` (time, peak memory, floor, aten op
count, the child processes), ``distributed`` (compute() on 2 gloo ranks), ``longrun`` (issue 12),
``report`` (verdicts and tables), ``cli`` (the command line).
"""
