"""The simulated cluster's controllers, each reacting to store events as the real one
reacts to its watches:

- ``nodes``: bootstrap (nodes, namespaces, the ``kubernetes`` Service), namespaces
- ``workloads``: Deployment → ReplicaSet (rolling updates) → Pods, DaemonSets
- ``scheduler``: binds pods, spreading an owner's pods over nodes
- ``kubelet``: the pod lifecycle, images, the app's HTTP servers (via the data plane)
- ``services``: cluster IPs, EndpointSlices and Endpoints, garbage collection
- ``metallb``: IP allocation, layer-2 announcement, the validating webhook
"""
