"""`boxoffice generate`: thresholds.yaml (and later routing.yaml) into committed artefacts."""
