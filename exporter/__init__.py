"""boxoffice: Prometheus exporter and alerting bundle for ticket sellers."""

__version__ = "0.1.0"
