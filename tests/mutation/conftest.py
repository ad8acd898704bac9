"""The mutation runner is run by hand (``make mutation``), never collected by the suite: only its unit test is."""

collect_ignore = ["mutate.py", "mutants.py", "report.py", "subsets.py"]
