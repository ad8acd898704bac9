"""Doctest collection over the package: skip the modules of an integration whose framework is not installed.

``pytest`` imports every module of ``xent_metrics/`` for ``--doctest-modules``; an integration imports its framework
(``transformers``), an optional extra, so without it those modules are left out instead of failing to import.
"""

from importlib.util import find_spec

collect_ignore_glob = [] if find_spec("transformers") else ["xent_metrics/integrations/transformers/*"]
