"""latencyslo: a declarative latency-SLO controller for Kubernetes inference services."""

__version__ = "0.1.0"
