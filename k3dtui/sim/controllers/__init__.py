"""k3dtui sim.controllers."""
