"""k3dtui ui."""
