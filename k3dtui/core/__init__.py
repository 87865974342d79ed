"""k3dtui core."""
