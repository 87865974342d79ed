"""Generate k3dtui/sim/apiserver/pbschema.py: the protobuf field table the simulated API
server decodes request bodies with.

The source of truth is Kubernetes' own ``generated.proto`` files (field numbers, types) and
``types.go`` (JSON names, ``,inline`` fields, which fields are Go pointers), read from git
checkouts of k8s.io/api and k8s.io/apimachinery at a release tag::

    python scripts/gen_sim_protobuf.py /path/to/kubernetes/api /path/to/kubernetes/apimachinery v0.31.9

Only the messages reachable from the top-level kinds of the groups below are kept.
"""

from __future__ import annotations

import pprint
import re
import subprocess
import sys
from pathlib import Path

API_DIRS = ("core/v1", "apps/v1", "batch/v1", "policy/v1", "autoscaling/v1", "autoscaling/v2",
            "coordination/v1", "discovery/v1", "networking/v1", "rbac/v1", "scheduling/v1",
            "storage/v1", "authentication/v1", "authorization/v1", "admissionregistration/v1")
MACHINERY_DIRS = ("pkg/apis/meta/v1", "pkg/runtime", "pkg/api/resource", "pkg/util/intstr",
                  "pkg/runtime/schema")
# the delete and eviction bodies client-go sends
EXTRA_ROOTS = ("k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions",)

SCALARS = {"string", "bytes", "int32", "int64", "bool", "double", "float", "uint32", "uint64",
           "sint32", "sint64", "fixed32", "fixed64"}


def git_show(repo: Path, tag: str, path: str) -> str:
    return subprocess.run(["git", "--git-dir", str(repo), "show", f"{tag}:{path}"],
                          capture_output=True, text=True, check=True).stdout


def git_ls(repo: Path, tag: str, folder: str) -> list[str]:
    out = subprocess.run(["git", "--git-dir", str(repo), "ls-tree", "--name-only", f"{tag}", folder + "/"],
                         capture_output=True, text=True, check=True).stdout
    return out.split()


_FIELD = re.compile(r"^\s*(optional|repeated|required)?\s*(map<\s*(\w+)\s*,\s*([\w.]+)\s*>|[\w.]+)\s+(\w+)\s*=\s*(\d+)")


def parse_proto(text: str) -> tuple[str, dict[str, list[tuple[int, str, str, str]]]]:
    """(package, {message: [(number, proto_name, label, type)]}) of one generated.proto."""
    package = re.search(r"^package ([\w.]+);", text, re.M).group(1)  # type: ignore[union-attr]
    messages: dict[str, list[tuple[int, str, str, str]]] = {}
    current: str | None = None
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("//") or not s:
            continue
        m = re.match(r"^message (\w+) \{", s)
        if m:
            current = m.group(1)
            messages[current] = []
            continue
        if s == "}":
            current = None
            continue
        f = _FIELD.match(s)
        if f and current:
            label = f.group(1) or "optional"
            if f.group(3):
                typ = f"map:{f.group(3)}:{f.group(4)}"
                label = "map"
            else:
                typ = f.group(2)
            messages[current].append((int(f.group(6)), f.group(5), label, typ))
    return package, messages


_GO_FIELD = re.compile(r"^\s*(\w+(?:\.\w+)?)\s*(\S*)\s+`([^`]*)`")


def parse_types_go(text: str) -> dict[str, dict[int, tuple[str, bool, bool]]]:
    """{struct: {number: (json name, inline, pointer)}} from the struct tags of a types.go."""
    out: dict[str, dict[int, tuple[str, bool, bool]]] = {}
    current: str | None = None
    for line in text.splitlines():
        m = re.match(r"^type (\w+) struct \{", line)
        if m:
            current = m.group(1)
            out[current] = {}
            continue
        if line.startswith("}"):
            current = None
            continue
        if current is None:
            continue
        f = _GO_FIELD.match(line)
        if not f:
            continue
        tags = f.group(3)
        pb = re.search(r'protobuf:"[^,]+,(\d+),', tags)
        js = re.search(r'json:"([^"]*)"', tags)
        if not pb or not js:
            continue
        jname = js.group(1).split(",")[0]
        inline = ",inline" in js.group(1)
        typ = f.group(2) if f.group(2) else f.group(1)
        out[current][int(pb.group(1))] = (jname, inline, typ.startswith("*"))
        strategy = re.search(r'patchStrategy:"([^"]*)"', tags)
        key = re.search(r'patchMergeKey:"([^"]*)"', tags)
        if strategy:
            PATCH_TAGS.setdefault(current, {})[jname] = (strategy.group(1), key.group(1) if key else "")
    return out


PATCH_TAGS: dict[str, dict[str, tuple[str, str]]] = {}  # Go struct -> json name -> (strategy, merge key)


def main() -> None:
    api, machinery, tag = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    protos: dict[str, list[tuple[int, str, str, str]]] = {}
    go: dict[str, dict[int, tuple[str, bool, bool]]] = {}
    patch: dict[str, dict[str, tuple[str, str]]] = {}
    roots: list[str] = list(EXTRA_ROOTS)
    sources: list[tuple[Path, str]] = [(api, d) for d in API_DIRS] + [(machinery, d) for d in MACHINERY_DIRS]
    for repo, folder in sources:
        package, messages = parse_proto(git_show(repo, tag, f"{folder}/generated.proto"))
        gofields: dict[str, dict[int, tuple[str, bool, bool]]] = {}
        PATCH_TAGS.clear()
        for path in git_ls(repo, tag, folder):
            if path.endswith(".go") and not path.endswith(("_test.go", "generated.pb.go", "zz_generated.deepcopy.go")):
                gofields.update(parse_types_go(git_show(repo, tag, path)))
        for name, fields in messages.items():
            full = f"{package}.{name}"
            if name in PATCH_TAGS:
                patch[full] = PATCH_TAGS[name]
            protos[full] = fields
            go[full] = gofields.get(name, {})
            if repo == api and any(n == 1 and pn == "metadata" for n, pn, _l, _t in fields) and not name.endswith("List"):
                roots.append(full)
    for scope in ("k8s.io.api.policy.v1.Eviction", "k8s.io.api.autoscaling.v1.Scale"):
        roots.append(scope)

    def resolve(typ: str, package: str) -> str:
        if typ.startswith("."):
            return typ[1:]
        return f"{package}.{typ}"

    table: dict[str, dict[int, tuple[str, str, str, int]]] = {}
    todo = list(dict.fromkeys(roots))
    while todo:
        full = todo.pop()
        if full in table:
            continue
        package = full.rsplit(".", 1)[0]
        entry: dict[int, tuple[str, str, str, int]] = {}
        for number, pname, label, typ in protos[full]:
            if typ.startswith("map:"):
                _, kt, vt = typ.split(":")
                if vt not in SCALARS:
                    vt = resolve(vt, package)
                    todo.append(vt)
                typ = f"map:{kt}:{vt}"
            elif typ not in SCALARS:
                typ = resolve(typ, package)
                todo.append(typ)
            jname, inline, pointer = go[full].get(number, (pname, False, False))
            # flags: 1 repeated, 2 map, 4 inline, 8 Go pointer (a zero value is kept)
            flags = (1 if label == "repeated" else 0) | (2 if label == "map" else 0) | (4 if inline else 0) | (8 if pointer else 0)
            entry[number] = (jname, typ, pname, flags)
        table[full] = entry
    body = pprint.pformat(dict(sorted(table.items())), width=110, compact=True)
    header = (
        '"""Protobuf field table of the Kubernetes API kinds (generated: do not edit).\n\n'
        f"Generated by scripts/gen_sim_protobuf.py from k8s.io/api and k8s.io/apimachinery {tag}:\n"
        "field numbers and types from their ``generated.proto``, JSON names, inline fields and\n"
        "Go pointers from the struct tags of their ``types.go``.\n\n"
        "MESSAGES[full message name][field number] = (json name, type, proto name, flags);\n"
        "type is a scalar (``string``, ``int64``...), a full message name or ``map:<key>:<value>``;\n"
        'flags: 1 repeated, 2 map, 4 inlined into the parent JSON object, 8 a Go pointer.\n'
        "PATCH[full message name][json name] = (patchStrategy, patchMergeKey) from the struct tags.\n"
        '"""\n\n'
        "from __future__ import annotations\n\n"
        f'SOURCE = "k8s.io/api and k8s.io/apimachinery {tag}"\n\n'
        "MESSAGES: dict[str, dict[int, tuple[str, str, str, int]]] = "
    )
    out = Path(__file__).resolve().parent.parent / "k3dtui" / "sim" / "apiserver" / "pbschema.py"
    kept = {m: patch[m] for m in sorted(table) if m in patch}
    tail = "\n\nPATCH: dict[str, dict[str, tuple[str, str]]] = " + pprint.pformat(kept, width=110, compact=True)
    out.write_text(header + body + tail + "\n", encoding="utf-8")
    print(f"{out}: {len(table)} messages")


if __name__ == "__main__":
    main()
