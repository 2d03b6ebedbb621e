"""Managed local replicas: the supervisor that starts, restarts and drains them, and the
autoscaler that decides how many serve."""
