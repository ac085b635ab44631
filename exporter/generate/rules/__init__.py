"""Prometheus rules: recording and alerting rules, their promtool tests and runbooks."""
