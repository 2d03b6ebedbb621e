"""Small resilience policies with no I/O, driven by an injected clock."""
