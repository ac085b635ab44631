"""Alertmanager: routing.yaml loaded and checked, alertmanager.yml, templates, route tests."""
