"""Checks of the deployment files (deploy/): Prometheus, alert rules, Grafana."""
