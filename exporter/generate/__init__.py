"""`boxoffice generate`: rules/thresholds.yaml and alertmanager/routing.yaml into committed
artefacts.

``rules/`` writes the Prometheus rules, their promtool tests and the runbooks;
``alertmanager/`` the Alertmanager configuration, templates and route tests; ``grafana/``
the dashboards. They share the inputs (``alertdefs``, ``thresholds``), the named series
both rules and panels read (``series``), PromQL and time zone helpers, and ``output``,
which runs every producer and writes or compares the files (``verify`` checks the bundle
with promtool and amtool).
"""
