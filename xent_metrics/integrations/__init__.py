"""Integrations with other frameworks, one module each, imported only when used.

``import xent_metrics`` (and ``import xent_metrics.integrations``) imports none of them:
:mod:`xent_metrics.integrations.transformers` needs the ``transformers`` extra
(``pip install "xent-metrics[transformers]"``).
"""
