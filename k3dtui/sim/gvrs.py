"""The resources the simulated cluster serves, by (group, version, resource)."""

from __future__ import annotations

from k3dtui.sim.store import GVR

NAMESPACES = GVR("", "v1", "namespaces")
NODES = GVR("", "v1", "nodes")
PODS = GVR("", "v1", "pods")
SERVICES = GVR("", "v1", "services")
ENDPOINTS = GVR("", "v1", "endpoints")
EVENTS = GVR("", "v1", "events")
CONFIGMAPS = GVR("", "v1", "configmaps")
SECRETS = GVR("", "v1", "secrets")
SERVICEACCOUNTS = GVR("", "v1", "serviceaccounts")
DEPLOYMENTS = GVR("apps", "v1", "deployments")
REPLICASETS = GVR("apps", "v1", "replicasets")
DAEMONSETS = GVR("apps", "v1", "daemonsets")
ENDPOINTSLICES = GVR("discovery.k8s.io", "v1", "endpointslices")
CRDS = GVR("apiextensions.k8s.io", "v1", "customresourcedefinitions")
IPADDRESSPOOLS = GVR("metallb.io", "v1beta1", "ipaddresspools")
L2ADVERTISEMENTS = GVR("metallb.io", "v1beta1", "l2advertisements")
SERVICEL2STATUSES = GVR("metallb.io", "v1beta1", "servicel2statuses")
LEASES = GVR("coordination.k8s.io", "v1", "leases")
PRIORITYCLASSES = GVR("scheduling.k8s.io", "v1", "priorityclasses")
JOBS = GVR("batch", "v1", "jobs")
