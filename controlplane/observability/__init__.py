"""Logs and metrics: what operators see of the control plane."""
