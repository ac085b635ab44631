"""Grafana dashboards: the panel kit, the panels of each dashboard, and their PromQL."""
