"""A stand-in for the `k3d` v5 CLI, for tests: records its argv and behaves as k3d does on
the real Docker engine (the `k3d-<name>` network, labelled node containers from a tiny
local image, `cluster list -o json` in k3d's mixed-case shape, kubeconfig get, image import).

Its output is shaped as real k3d's: logrus lines, coloured unless LOG_COLORS parses false
(k3d-io/k3d cmd/root.go, initLogging: ForceColors), then logfmt (`time=... level=info
msg="..."`, logrus' uncoloured TextFormatter on a pipe); INFO/DEBUG on stdout and
WARN/ERRO/FATA on stderr (the two writer hooks in initLogging). `cluster list -o json` uses
k3d's JSON key names (pkg/types/types.go, cmd/cluster/clusterList.go), and a config with a
key the v1alpha5 schema does not know is refused (pkg/config/v1alpha5/schema.json sets
additionalProperties false on every object but options.runtime and registries).

Environment:
  FAKE_K3D_LOG      JSON-lines file: one {"argv", "config", "env"} record per call
  FAKE_K3D_RUN      a label value put on everything created (tests clean up by it)
  FAKE_K3D_VERSION  what `k3d version` reports (default v5.9.0)
  FAKE_K3D_FAIL     "create": fail mid-create (after the server node), roll back, exit 1;
                    "import": `image import` fails as it does on Docker's containerd image
                    store (k3d-io/k3d#1538: "content digest … not found")
  FAKE_K3D_IMAGE    the node image (default: the config's `image`, else k3dtui-test/busybox:latest)
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import Any

import yaml  # docker is imported lazily: `k3d version` must stay quick

RUN_LABEL = "k3dtui.test.run"
ARGS_LABEL = "k3dtui.test.k3s-args"
START = time.monotonic()


_COLOURS = {"INFO": 36, "DEBU": 37, "WARN": 33, "ERRO": 31, "FATA": 31}
_NAMES = {"INFO": "info", "DEBU": "debug", "WARN": "warning", "ERRO": "error", "FATA": "fatal"}
_PLAIN = re.compile(r"^[A-Za-z0-9\-._/@^+]+$")  # logrus' needsQuoting: anything else is quoted


def colours_on() -> bool:
    value = os.environ.get("LOG_COLORS")
    if value is None:
        return True
    # Go's strconv.ParseBool: 1 t T TRUE true True / 0 f F FALSE false False; else ignored
    return value not in ("0", "f", "F", "FALSE", "false", "False")


def _line(level: str, msg: str) -> str:
    if colours_on():
        return f"\x1b[{_COLOURS[level]}m{level}\x1b[0m[{int(time.monotonic() - START):04d}] {msg:<44} "
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    value = msg if msg and _PLAIN.match(msg) else json.dumps(msg)
    return f'time="{stamp}" level={_NAMES[level]} msg={value}'


def info(msg: str) -> None:
    # k3d prints INFO/DEBUG to stdout, WARN/ERRO/FATA to stderr.
    print(_line("INFO", msg), flush=True)


def warn(msg: str) -> None:
    print(_line("WARN", msg), file=sys.stderr, flush=True)


def error(msg: str, level: str = "ERRO") -> None:
    print(_line(level, msg), file=sys.stderr, flush=True)


def fatal(msg: str) -> None:
    error(msg, "FATA")
    sys.exit(1)


def record(argv: list[str]) -> None:
    path = os.environ.get("FAKE_K3D_LOG")
    if not path:
        return
    config = None
    for i, arg in enumerate(argv):
        if arg in ("--config", "-c") and argv[:2] == ["cluster", "create"] and i + 1 < len(argv):
            try:
                with open(argv[i + 1], encoding="utf-8") as fh:
                    config = fh.read()
            except OSError:
                config = None
    env = {k: os.environ[k] for k in ("DOCKER_HOST", "DOCKER_CONTEXT", "LOG_COLORS") if k in os.environ}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"argv": argv, "config": config, "env": env}) + "\n")


# The keys k3d's v1alpha5 schema allows, object by object (k3d-io/k3d
# pkg/config/v1alpha5/schema.json); None: that object allows any key.
_ANY = None
_FILTERED = {"nodeFilters": {}}
SCHEMA: dict[str, Any] = {
    "apiVersion": {}, "kind": {}, "metadata": {"name": {}}, "servers": {}, "agents": {},
    "kubeAPI": {"host": {}, "hostIP": {}, "hostPort": {}}, "image": {}, "network": {},
    "subnet": {}, "token": {},
    "volumes": [{"volume": {}, **_FILTERED}], "ports": [{"port": {}, **_FILTERED}],
    "files": [{"description": {}, "source": {}, "destination": {}, **_FILTERED}],
    "env": [{"envVar": {}, **_FILTERED}], "hostAliases": _ANY, "registries": _ANY,
    "options": {
        "k3d": {"wait": {}, "timeout": {}, "disableLoadbalancer": {}, "disableImageVolume": {},
                "disableRollback": {}, "loadbalancer": {"configOverrides": {}}},
        "k3s": {"extraArgs": [{"arg": {}, **_FILTERED}],
                "nodeLabels": [{"label": {}, **_FILTERED}]},
        "kubeconfig": {"updateDefaultKubeconfig": {}, "switchCurrentContext": {}},
        "runtime": _ANY,
    },
}


def unknown_keys(doc: Any, schema: Any, path: str = "") -> list[str]:
    if schema is None or schema == {}:
        return []
    if isinstance(schema, list):
        out: list[str] = []
        for i, item in enumerate(doc if isinstance(doc, list) else []):
            out += unknown_keys(item, schema[0], f"{path}[{i}]")
        return out
    if not isinstance(doc, dict):
        return []
    out = []
    for key, value in doc.items():
        where = f"{path}.{key}" if path else str(key)
        if key not in schema:
            out.append(where)
        else:
            out += unknown_keys(value, schema[key], where)
    return out


def client() -> Any:
    import docker

    try:
        cli = docker.from_env(timeout=30)
        cli.ping()
        return cli
    except Exception as exc:
        fatal(f"Failed to get runtime: Cannot connect to the Docker daemon: {exc}")


def labels_run() -> dict[str, str]:
    run = os.environ.get("FAKE_K3D_RUN", "")
    return {RUN_LABEL: run} if run else {}


def valid_name(name: str) -> bool:
    return len(name) <= 32 and bool(
        re.fullmatch(r"[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)*", name)
    )


def cluster_containers(cli: Any, name: str | None = None) -> list[Any]:
    filters = ["app=k3d"] + ([f"k3d.cluster={name}"] if name else [])
    return list(cli.containers.list(all=True, filters={"label": filters}))


def matches(filters: list[str], role: str, index: int) -> bool:
    for f in filters:
        parts = f.split(":")
        group = parts[0].rstrip("s")
        if group == "all":
            return True
        if group != role:
            continue
        sel = parts[1] if len(parts) > 1 else "*"
        if sel in ("*", ""):
            return True
        if "-" in sel:
            lo, hi = sel.split("-")
            if int(lo) <= index <= int(hi):
                return True
        elif str(index) in sel.split(","):
            return True
    return False


def opt(argv: list[str], *names: str) -> str | None:
    for i, a in enumerate(argv):
        for n in names:
            if a == n and i + 1 < len(argv):
                return argv[i + 1]
            if a.startswith(n + "="):
                return a.split("=", 1)[1]
    return None


def positional(argv: list[str], flags_with_values: set[str]) -> list[str]:
    out: list[str] = []
    skip = False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in flags_with_values:
            skip = True
            continue
        if a.startswith("-"):
            continue
        out.append(a)
    return out


def delete_cluster(cli: Any, name: str) -> bool:
    found = cluster_containers(cli, name)
    for c in found:
        info(f"Deleting node '{c.name}'")
        c.remove(force=True)
    for net in cli.networks.list(names=[f"k3d-{name}"]):
        if net.name == f"k3d-{name}":
            info(f"Deleting cluster network '{net.name}'")
            net.remove()
    return bool(found)


def cluster_create(argv: list[str]) -> None:
    config_path = opt(argv, "--config", "-c")
    cfg: dict[str, Any] = {}
    if config_path:
        with open(config_path, encoding="utf-8") as fh:
            cfg = yaml.safe_load(fh) or {}
        if cfg.get("apiVersion") != "k3d.io/v1alpha5" or cfg.get("kind") != "Simple":
            fatal(f"Schema Validation failed for config file {config_path}: apiVersion/kind")
        bad = unknown_keys(cfg, SCHEMA)
        if bad:
            # k3d validates the file against the schema before anything else
            # (cmd/util/config/config.go → pkg/config/jsonschema.go, ValidateSchemaFile).
            fatal(f"Schema Validation failed for config file {config_path}: "
                  + "; ".join(f"{b}: Additional property {b.rsplit('.', 1)[-1]} is not allowed" for b in bad))
    pos = positional(argv[2:], {"--config", "-c", "-s", "--servers", "-a", "--agents", "--k3s-arg"})
    name = pos[0] if pos else (cfg.get("metadata") or {}).get("name", "k3s-default")
    servers = int(opt(argv, "-s", "--servers") or cfg.get("servers", 1))
    agents = int(opt(argv, "-a", "--agents") or cfg.get("agents", 0))
    if not valid_name(name):
        fatal(f"Failed to create cluster '{name}': invalid cluster name")
    extra = ((cfg.get("options") or {}).get("k3s") or {}).get("extraArgs") or []
    cli = client()
    if cluster_containers(cli, name):
        fatal(f"Failed to create cluster '{name}' because a cluster with that name already exists")
    image = os.environ.get("FAKE_K3D_IMAGE") or cfg.get("image") or "k3dtui-test/busybox:latest"
    info("Prep: Network")
    net = cli.networks.create(f"k3d-{name}", driver="bridge", labels={"app": "k3d", **labels_run()})
    info(f"Created network 'k3d-{name}'")
    info(f"Created image volume k3d-{name}-images")
    api_port = 40000 + (abs(hash(name)) % 20000)
    base = {
        "app": "k3d",
        "k3d.cluster": name,
        "k3d.version": "v5.9.0",
        "k3d.cluster.network": f"k3d-{name}",
        "k3d.cluster.network.id": net.id,
        "k3d.cluster.network.external": "false",
        "k3d.cluster.imageVolume": f"k3d-{name}-images",
        "k3d.cluster.url": f"https://k3d-{name}-server-0:6443",
        "k3d.server.api.port": str(api_port),
        "k3d.server.api.host": "0.0.0.0",
        "k3d.server.api.hostIP": "0.0.0.0",
        **labels_run(),
    }
    nodes = [("server", i) for i in range(servers)] + [("agent", i) for i in range(agents)]
    try:
        for n, (role, index) in enumerate(nodes):
            if os.environ.get("FAKE_K3D_FAIL") == "create" and n == 1:
                error(f"Failed Cluster Start: Failed to add one or more agents: Node "
                      f"k3d-{name}-{role}-{index} failed to get ready: error waiting for log "
                      "line `successfully registered node` from node")
                raise RuntimeError("create failed")
            args = [e["arg"] for e in extra if matches(e.get("nodeFilters") or ["server:*"], role, index)]
            info(f"Creating node 'k3d-{name}-{role}-{index}'")
            cli.containers.run(
                image, ["sleep", "3600"], name=f"k3d-{name}-{role}-{index}", detach=True,
                network=f"k3d-{name}", hostname=f"k3d-{name}-{role}-{index}",
                labels={**base, "k3d.role": role, ARGS_LABEL: json.dumps(args)},
            )
        info(f"Creating LoadBalancer 'k3d-{name}-serverlb'")
        cli.containers.run(
            image, ["sleep", "3600"], name=f"k3d-{name}-serverlb", detach=True,
            network=f"k3d-{name}", labels={**base, "k3d.role": "loadbalancer"},
        )
    except Exception as exc:
        if not isinstance(exc, RuntimeError):
            error(f"Failed to create node: {exc}")
        error("Failed to create cluster >>> Rolling Back")
        delete_cluster(cli, name)
        fatal("Cluster creation FAILED, all changes have been rolled back!")
    info("Starting cluster")
    info(f"Cluster '{name}' created successfully!")
    info("You can now use it like this:\nkubectl cluster-info")


def node_json(c: Any) -> dict[str, Any]:
    """One node as k3d prints it: k3d's json tags, omitempty honoured, untagged fields under
    their Go names (k3d-io/k3d pkg/types/types.go, Node)."""
    c.reload()
    labels = c.labels
    nets = c.attrs["NetworkSettings"]["Networks"]
    ip = ""
    for nname, n in nets.items():
        if nname == labels.get("k3d.cluster.network"):
            ip = n.get("IPAddress", "")
    state = c.attrs["State"]
    role = labels.get("k3d.role", "")
    node: dict[str, Any] = {
        "name": c.name,
        "role": role,
        "image": c.attrs["Config"]["Image"],
        "Cmd": c.attrs["Config"].get("Cmd"),
        "restart": True,
        "created": c.attrs["Created"],
        "runtimeLabels": {k: v for k, v in labels.items() if k.startswith("k3d.") or k == "app"},
        "Networks": [labels.get("k3d.cluster.network", "")],
        "ExtraHosts": None,
        "serverOpts": {"kubeAPI": {"Port": "6443/tcp", "Binding": {"HostIp": "0.0.0.0", "HostPort": labels.get("k3d.server.api.port", "")}, "host": "0.0.0.0"}} if role == "server" else {"kubeAPI": None},
        "agentOpts": {},
        "GPURequest": "",
        "Memory": "",
        "State": {"Running": bool(state.get("Running")), "Status": state.get("Status", ""), "Started": state.get("StartedAt", "")},
        "IP": {"IP": ip, "Static": False},
        "K3dEntrypoint": True,
    }
    return node


def cluster_list(argv: list[str]) -> None:
    cli = client()
    by_name: dict[str, list[Any]] = {}
    for c in cluster_containers(cli):
        by_name.setdefault(c.labels.get("k3d.cluster", ""), []).append(c)
    names = positional(argv[2:], {"-o", "--output"})
    out = []
    for name in sorted(by_name):
        if names and name not in names:
            continue
        nodes = [node_json(c) for c in sorted(by_name[name], key=lambda c: c.name)]
        nets = cli.networks.list(names=[f"k3d-{name}"])
        net = nets[0] if nets else None
        if net is not None:
            net.reload()
        ipam_cfg = ((net.attrs.get("IPAM") or {}).get("Config") or [{}])[0] if net else {}
        servers = [n for n in nodes if n["role"] == "server"]
        agents = [n for n in nodes if n["role"] == "agent"]
        # k3d's Cluster plus the counts of clusterList.go's jsonOutput; clusterToken is
        # omitted (empty unless --token), isExternal omitted when false (omitempty).
        entry: dict[str, Any] = {
            "name": name,
            "network": {
                "name": f"k3d-{name}",
                "id": net.id if net else "",
                "ipam": {"ipPrefix": ipam_cfg.get("Subnet", ""), "ipsUsed": [n["IP"]["IP"] for n in nodes], "Managed": False},
                "Members": None,
            },
            "nodes": nodes,
            "InitNode": None,
            "kubeAPI": {"Port": "6443/tcp", "Binding": {"HostIp": "0.0.0.0", "HostPort": ""}, "host": "0.0.0.0"},
            "serverLoadBalancer": {"node": next((n for n in nodes if n["role"] == "loadbalancer"), None), "config": None},
            "imageVolume": f"k3d-{name}-images",
            "volumes": [f"k3d-{name}-images"],
            "serversRunning": sum(1 for n in servers if n["State"]["Running"]),
            "serversCount": len(servers),
            "agentsRunning": sum(1 for n in agents if n["State"]["Running"]),
            "agentsCount": len(agents),
        }
        if any(n["role"] == "loadbalancer" for n in nodes):
            entry["hasLoadbalancer"] = True
        out.append(entry)
    fmt = opt(argv, "-o", "--output")
    if fmt == "json":
        print(json.dumps(out))
    else:
        print("NAME   SERVERS   AGENTS   LOADBALANCER")
        for c in out:
            print(f"{c['name']}   {c['serversRunning']}/{c['serversCount']}   {c['agentsRunning']}/{c['agentsCount']}   {str(c['hasLoadbalancer']).lower()}")


def cluster_delete(argv: list[str]) -> None:
    cli = client()
    names = positional(argv[2:], set())
    if not names:
        names = ["k3s-default"]
    for name in names:
        info(f"Deleting cluster '{name}'")
        if not delete_cluster(cli, name):
            info("No nodes found for given cluster")
            continue
        info("Removing cluster details from default kubeconfig...")
        info(f"Successfully deleted cluster {name}!")


def cluster_start(argv: list[str]) -> None:
    cli = client()
    for name in positional(argv[2:], set()):
        found = cluster_containers(cli, name)
        if not found:
            fatal(f"Failed to get cluster {name}: No nodes found for given cluster")
        for c in found:
            info(f"Starting node '{c.name}'")
            c.start()
        info(f"Started cluster '{name}'")


def node_power(argv: list[str]) -> None:
    """`k3d node stop|start NAME...`: the named node containers (k3d's NodeStop/NodeStart)."""
    cli = client()
    names = positional(argv[2:], set())
    if not names:
        fatal("requires at least 1 arg(s), only received 0")
    for name in names:
        found = cli.containers.list(all=True, filters={"label": ["app=k3d"], "name": f"^/?{name}$"})
        if not found:
            fatal(f"Failed to get node '{name}': No node found")
        for c in found:
            if argv[1] == "stop":
                c.stop(timeout=1)
            else:
                c.start()


def kubeconfig_get(argv: list[str]) -> None:
    cli = client()
    names = positional(argv[2:], set())
    name = names[0] if names else "k3s-default"
    found = [c for c in cluster_containers(cli, name) if c.labels.get("k3d.role") == "server"]
    if not found:
        fatal(f"Failed to get cluster '{name}': No nodes found for given cluster")
    port = found[0].labels.get("k3d.server.api.port", "6443")
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": f"k3d-{name}", "cluster": {"server": f"https://0.0.0.0:{port}", "certificate-authority-data": "ZmFrZQ=="}}],
        "contexts": [{"name": f"k3d-{name}", "context": {"cluster": f"k3d-{name}", "user": f"admin@k3d-{name}"}}],
        "current-context": f"k3d-{name}",
        "preferences": {},
        "users": [{"name": f"admin@k3d-{name}", "user": {"client-certificate-data": "ZmFrZQ==", "client-key-data": "ZmFrZQ=="}}],
    }
    print("---")
    print(yaml.safe_dump(doc, sort_keys=False), end="")


def image_import(argv: list[str]) -> None:
    cli = client()
    name = opt(argv, "-c", "--cluster") or "k3s-default"
    images = positional(argv[2:], {"-c", "--cluster", "-m", "--mode"})
    if not images:
        fatal("No images specified for import")
    nodes = [c for c in cluster_containers(cli, name) if c.labels.get("k3d.role") in ("server", "agent")]
    if not nodes:
        fatal(f"Failed to get cluster '{name}': No nodes found for given cluster")
    for image in images:
        try:
            cli.images.get(image)
        except Exception:
            fatal(f"Failed to import image(s) into cluster '{name}': image '{image}' not found")
    info(f"Importing image(s) into cluster '{name}'")
    info(f"Saving {len(images)} image(s) from runtime...")
    if os.environ.get("FAKE_K3D_FAIL") == "import":
        info(f"Importing images '{images}' into node '{nodes[0].name}'...")
        error(f"failed to import images in node '{nodes[0].name}': Exec process in node "
              f"'{nodes[0].name}' failed with exit code '1': ctr: content digest "
              "sha256:4f8b0e6a3d2c1b0a99887766554433221100ffeeddccbbaa0099887766554433: not found")
        fatal(f"Failed to import image(s) into cluster '{name}': error loading image to cluster, "
              "first error: failed to import images in node")
    for c in nodes:
        info(f"Importing images into node '{c.name}'...")
    info(f"Successfully imported {len(images)} image(s) into 1 cluster(s)")


def main(argv: list[str]) -> None:
    record(argv)
    if argv[:1] in (["version"], ["--version"]):
        v = os.environ.get("FAKE_K3D_VERSION", "v5.9.0")
        print(f"k3d version {v}")
        print("k3s version v1.31.5-k3s1 (default)")
        return
    verb = argv[:2]
    handlers = {
        ("cluster", "create"): cluster_create,
        ("cluster", "list"): cluster_list,
        ("cluster", "ls"): cluster_list,
        ("cluster", "delete"): cluster_delete,
        ("cluster", "start"): cluster_start,
        ("kubeconfig", "get"): kubeconfig_get,
        ("node", "stop"): node_power,
        ("node", "start"): node_power,
        ("image", "import"): image_import,
    }
    handler = handlers.get(tuple(verb))  # type: ignore[arg-type]
    if handler is None:
        fatal(f"unknown command {' '.join(argv)!r}")
    handler(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
