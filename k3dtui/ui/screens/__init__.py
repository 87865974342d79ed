"""k3dtui ui.screens."""
