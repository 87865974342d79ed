"""k3dtui sim."""
