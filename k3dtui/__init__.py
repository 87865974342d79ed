"""k3dtui: build a k3d cluster with MetalLB and a load-balanced app, then watch it balance."""

__version__ = "0.1.0"
