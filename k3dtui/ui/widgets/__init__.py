"""k3dtui ui.widgets."""
