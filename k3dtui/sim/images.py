"""The images the simulated cluster can run.

It runs the app's image once imported (``k3dtui`` imports it as ``k3d image import`` does)
and emulates a few well-known images that need no import: ``nginx`` (serves its default
page on port 80), ``busybox`` (runs its command as a sleeping process), ``python`` (runs its
command as a real process on this machine: :mod:`k3dtui.sim.controllers.containers`) and the images of
the workloads it plays itself (k3s's kube-system add-ons, MetalLB). It pulls nothing else:
any other image is refused with a message that says so, never a made-up registry error.
"""

from __future__ import annotations

from k3dtui.sim.controllers.util import image_repository, normalize_image

APP_REPOSITORY = "fastapi-random"

# repository → how the simulated container behaves: "nginx" serves a page on port 80,
# "sleep" runs (its command is a sleeping process), "python" runs its command for real with
# this machine's interpreter, "system" is a workload the simulator plays
EMULATED: dict[str, str] = {
    "docker.io/library/nginx": "nginx",
    "docker.io/library/busybox": "sleep",
    "docker.io/library/python": "python",
    "quay.io/metallb/controller": "system",
    "quay.io/metallb/speaker": "system",
    "docker.io/rancher/mirrored-coredns-coredns": "system",
    "docker.io/rancher/local-path-provisioner": "system",
    "docker.io/rancher/mirrored-metrics-server": "system",
    "docker.io/rancher/mirrored-library-traefik": "system",
    "docker.io/rancher/mirrored-pause": "system",
}


def emulation(image: str) -> str | None:
    """How an emulated image runs, or ``None`` when the simulated cluster does not emulate it."""
    return EMULATED.get(image_repository(normalize_image(image)))


def is_app_image(image: str) -> bool:
    return image_repository(image).rsplit("/", 1)[-1] == APP_REPOSITORY


def cannot_pull(image: str) -> str:
    """The message a pod's events carry for an image the simulated cluster cannot run."""
    return f"the simulated cluster cannot pull {image}: import it, or use k3d"


NGINX_PAGE = b"""<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"""
