"""State shared by the gateways of a fleet through one Redis (``fleet`` in the config)."""
