"""Configuration: one YAML file, environment overrides, typed and checked, then frozen."""

from exporter.config.errors import ConfigError
from exporter.config.loader import BoundMetric, Config, Database, load_config

__all__ = ["BoundMetric", "Config", "ConfigError", "Database", "load_config"]
