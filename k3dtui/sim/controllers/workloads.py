"""Deployment → ReplicaSet → Pods, and DaemonSets: the controllers a person watches at work."""

from __future__ import annotations

import copy
import json
import math
from typing import Any

from k3dtui.sim import gvrs, registry
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import Controller, Ctx, delete_pod
from k3dtui.sim.kinds import builtin_kind
from k3dtui.sim.store import ApiError, Event, Obj, Store

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
_pod_kind = builtin_kind(gvrs.PODS)
_rs_kind = builtin_kind(gvrs.REPLICASETS)
assert _pod_kind is not None and _rs_kind is not None
POD_KIND, RS_KIND = _pod_kind, _rs_kind


# -- pods from templates -------------------------------------------------------------
def pod_from_template(store: Store, owner: Obj, template: dict[str, Any], base: str, namespace: str) -> Obj:
    """A pod for ``owner`` from its template, named from ``base`` (``generateName``) and
    defaulted and validated by the registry as a pod a client creates; not stored yet."""
    tmeta = template.get("metadata") or {}
    m: dict[str, Any] = {
        "generateName": base,
        "namespace": namespace,
        "labels": dict(tmeta.get("labels") or {}),
        "ownerReferences": [util.owner_ref(owner)],
    }
    if tmeta.get("annotations"):
        m["annotations"] = dict(tmeta["annotations"])
    pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": copy.deepcopy(template.get("spec") or {})}
    return registry.prepare_create(store, POD_KIND, pod)


# annotations a deployment does not pass to its ReplicaSets
# (pkg/controller/deployment/util/deployment_util.go skipCopyAnnotation)
_NOT_COPIED = frozenset({
    "kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
    "deployment.kubernetes.io/desired-replicas", "deployment.kubernetes.io/max-replicas",
    "deprecated.deployment.rollback.to",
})


def _copied_annotations(d: Obj) -> dict[str, str]:
    return {k: v for k, v in (d["metadata"].get("annotations") or {}).items() if k not in _NOT_COPIED}


def _revision(rs: Obj) -> int:
    try:
        return int((rs["metadata"].get("annotations") or {}).get(REVISION, "0"))
    except ValueError:
        return 0


def _normal_template(template: Any) -> Any:
    """A pod template as compared by EqualIgnoreHash: no pod-template-hash label, and no
    null values (``creationTimestamp: null`` as typed clients send it)."""
    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    out = clean(copy.deepcopy(template or {}))
    meta = out.setdefault("metadata", {})
    labels = {k: v for k, v in (meta.get("labels") or {}).items() if k != HASH_LABEL}
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    for k in [k for k, v in meta.items() if v in ({}, [])]:
        del meta[k]
    return out


def same_template(rs: Obj, template: dict[str, Any]) -> bool:
    defaulted: Obj = {"spec": {"template": copy.deepcopy(template)}}
    registry.workloads.default_template(defaulted)
    ours = _normal_template((rs.get("spec") or {}).get("template"))
    return bool(ours == _normal_template(defaulted["spec"]["template"]))


def template_hash(template: dict[str, Any]) -> str:
    text = json.dumps(template, sort_keys=True, separators=(",", ":"))
    return util.safe_encode(str(util.fnv32a(text.encode())))


def _spec_replicas(obj: Obj) -> int:
    return int((obj.get("spec") or {}).get("replicas", 0) or 0)


def _status_int(obj: Obj, key: str) -> int:
    return int((obj.get("status") or {}).get(key, 0) or 0)


def _resolve(value: Any, total: int, *, up: bool) -> int:
    """An IntOrString like maxSurge: ``2`` or ``"25%"`` of ``total`` (rounded up or down)."""
    if isinstance(value, str) and value.endswith("%"):
        try:
            frac = float(value[:-1]) / 100 * total
        except ValueError:
            return 0
        return math.ceil(frac) if up else math.floor(frac)
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _omit_zero(status: dict[str, Any], *keys: str) -> None:
    for k in keys:
        if not status.get(k):
            status.pop(k, None)


# -- Deployment ----------------------------------------------------------------------
class DeploymentController(Controller):
    watches = frozenset({gvrs.DEPLOYMENTS, gvrs.REPLICASETS})

    def keys_for(self, event: Event) -> list[tuple[str, str]]:
        if event.gvr == gvrs.DEPLOYMENTS:
            if event.type == "DELETED":
                return []
            return [(event.namespace, event.name)]
        for ref in event.obj["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "Deployment" and ref.get("controller"):
                return [(event.namespace, str(ref.get("name")))]
        return []

    def start(self) -> None:
        self.enqueue_all(gvrs.DEPLOYMENTS)

    def reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        d = self.store.peek(gvrs.DEPLOYMENTS, ns, name)
        if d is None or util.is_terminating(d):
            return
        spec = d.get("spec") or {}
        desired = int(spec.get("replicas", 1) if spec.get("replicas") is not None else 1)
        template = copy.deepcopy(spec.get("template") or {})
        h = template_hash(template)
        uid = d["metadata"]["uid"]
        owned = [rs for rs in self.ctx.dependents(uid, gvrs.REPLICASETS) if util.controller_uid(rs) == uid]
        # the new ReplicaSet is the one whose template equals the deployment's, the
        # pod-template-hash label aside (pkg/controller/deployment/util/deployment_util.go
        # FindNewReplicaSet, EqualIgnoreHash): a rollback finds the old one again
        new_rs = next((rs for rs in sorted(owned, key=lambda r: r["metadata"].get("creationTimestamp", ""))
                       if same_template(rs, template)), None)
        if new_rs is None:  # a template written around the registry's defaults
            new_rs = next((rs for rs in owned if rs["metadata"]["name"] == f"{name}-{h}"), None)
        rs_name = new_rs["metadata"]["name"] if new_rs is not None else f"{name}-{h}"
        old = sorted(
            (rs for rs in owned if rs["metadata"]["name"] != rs_name),
            key=lambda rs: rs["metadata"].get("creationTimestamp", ""),
        )
        old_live = [rs for rs in old if _spec_replicas(rs) > 0 or _status_int(rs, "replicas") > 0]
        strategy = spec.get("strategy") or {}
        recreate = strategy.get("type") == "Recreate"
        rolling = strategy.get("rollingUpdate") or {}
        surge = _resolve(rolling.get("maxSurge", "25%"), desired, up=True)
        unavailable = _resolve(rolling.get("maxUnavailable", "25%"), desired, up=False)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        total = sum(_spec_replicas(rs) for rs in owned)
        revision = max([int((rs["metadata"].get("annotations") or {}).get(REVISION, "0")) for rs in owned] or [0])
        if new_rs is None:
            revision += 1
            if not old_live:
                start = desired
            elif recreate:
                start = 0
            else:
                start = max(0, min(desired, desired + surge - total))
            labels = dict((template.get("metadata") or {}).get("labels") or {})
            labels[HASH_LABEL] = h
            template.setdefault("metadata", {})["labels"] = labels
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})[HASH_LABEL] = h
            rs: Obj = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": rs_name,
                    "namespace": ns,
                    "labels": labels,
                    "annotations": {
                        **_copied_annotations(d),
                        REVISION: str(revision),
                        "deployment.kubernetes.io/desired-replicas": str(desired),
                        "deployment.kubernetes.io/max-replicas": str(desired + surge),
                    },
                    "ownerReferences": [util.owner_ref(d)],
                },
                "spec": {
                    "replicas": start,
                    "minReadySeconds": int(spec.get("minReadySeconds", 0) or 0),
                    "selector": selector,
                    "template": template,
                },
                "status": {"replicas": 0},
            }
            try:
                new_rs = registry.create(self.store, RS_KIND, rs)
            except ApiError:
                return
            if start:
                self.ctx.record(
                    d, "ScalingReplicaSet", f"Scaled up replica set {rs_name} from 0 to {start}",
                    component="deployment-controller",
                )
            total += start
        else:
            self._bump_revision(new_rs, old)
            self._copy_annotations(d, new_rs)
        current = _spec_replicas(new_rs)
        if not old_live:
            # plain scaling
            if current != desired:
                self._scale(d, new_rs, desired, current)
        elif recreate:
            for rs in old_live:
                if _spec_replicas(rs):
                    self._scale(d, rs, 0, _spec_replicas(rs))
            if sum(_status_int(rs, "replicas") for rs in old_live) == 0 and current != desired:
                self._scale(d, new_rs, desired, current)
        else:
            # rolling update: surge the new ReplicaSet, then retire old pods while enough are available
            if current > desired:
                self._scale(d, new_rs, desired, current)
            elif current < desired:
                room = desired + surge - total
                if room > 0:
                    target = min(desired, current + room)
                    self._scale(d, new_rs, target, current)
                    total += target - current
            if any(_status_int(rs, "observedGeneration") < int(rs["metadata"].get("generation", 1))
                   for rs in owned):
                # a ReplicaSet has not caught up with its last scale: wait for its status
                self._status(ns, name, rs_name, desired)
                return
            available = sum(min(_spec_replicas(rs), _status_int(rs, "availableReplicas")) for rs in owned)
            can_remove = available - (desired - unavailable)
            for rs in old_live:
                cur = _spec_replicas(rs)
                if cur == 0:
                    continue
                unhealthy = max(0, cur - _status_int(rs, "availableReplicas"))
                dec = min(cur, unhealthy + max(0, can_remove))
                if dec <= 0:
                    continue
                can_remove -= max(0, dec - unhealthy)
                self._scale(d, rs, cur - dec, cur)

        def ann(obj: Obj) -> None:
            obj["metadata"].setdefault("annotations", {})[REVISION] = str(
                (new_rs["metadata"].get("annotations") or {}).get(REVISION, revision)
            )

        self.store.mutate(gvrs.DEPLOYMENTS, ns, name, ann)
        self._status(ns, name, rs_name, desired)
        self._cleanup(d, old)

    def _copy_annotations(self, d: Obj, new_rs: Obj) -> None:
        """The deployment's annotations (a change-cause, say) go to its new ReplicaSet."""
        wanted = _copied_annotations(d)
        have = new_rs["metadata"].get("annotations") or {}
        if all(have.get(k) == v for k, v in wanted.items()):
            return

        def fn(obj: Obj) -> None:
            obj["metadata"].setdefault("annotations", {}).update(wanted)

        updated = self.store.mutate(gvrs.REPLICASETS, new_rs["metadata"]["namespace"], new_rs["metadata"]["name"], fn)
        if updated is not None:
            new_rs.clear()
            new_rs.update(updated)

    def _bump_revision(self, new_rs: Obj, old: list[Obj]) -> None:
        """The new ReplicaSet's revision is one above the old ones'; an old ReplicaSet that
        becomes the new one again (a rollback) keeps its former revisions in
        ``deployment.kubernetes.io/revision-history``
        (pkg/controller/deployment/util/deployment_util.go SetNewReplicaSetAnnotations)."""
        new_revision = max([_revision(rs) for rs in old] or [0]) + 1
        current = _revision(new_rs)
        if current >= new_revision:
            return

        def fn(obj: Obj) -> None:
            anns = obj["metadata"].setdefault("annotations", {})
            before = anns.get(REVISION)
            anns[REVISION] = str(new_revision)
            if before:
                history = [h for h in str(anns.get(REVISION_HISTORY, "")).split(",") if h]
                anns[REVISION_HISTORY] = ",".join([*history, str(before)])

        updated = self.store.mutate(gvrs.REPLICASETS, new_rs["metadata"]["namespace"], new_rs["metadata"]["name"], fn)
        if updated is not None:
            new_rs.clear()
            new_rs.update(updated)

    def _cleanup(self, d: Obj, old: list[Obj]) -> None:
        """Old ReplicaSets with no pods beyond ``revisionHistoryLimit`` are deleted, the
        oldest revisions first (pkg/controller/deployment/sync.go cleanupDeployment)."""
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        idle = sorted((rs for rs in old if _spec_replicas(rs) == 0 and _status_int(rs, "replicas") == 0
                       and not util.is_terminating(rs)), key=_revision)
        for rs in idle[: max(0, len(idle) - int(limit))]:
            registry.delete_quietly(self.store, gvrs.REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"])

    def _scale(self, d: Obj, rs: Obj, to: int, frm: int) -> None:
        def fn(obj: Obj) -> None:
            obj["spec"]["replicas"] = to
            obj["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/desired-replicas"] = str(
                (d.get("spec") or {}).get("replicas", 1)
            )

        self.store.mutate(gvrs.REPLICASETS, rs["metadata"]["namespace"], rs["metadata"]["name"], fn)
        verb = "up" if to > frm else "down"
        self.ctx.record(
            d, "ScalingReplicaSet", f"Scaled {verb} replica set {rs['metadata']['name']} from {frm} to {to}",
            component="deployment-controller",
        )

    def _status(self, ns: str, name: str, rs_name: str, desired: int) -> None:
        d = self.store.peek(gvrs.DEPLOYMENTS, ns, name)
        if d is None:
            return
        owned = self.ctx.dependents(d["metadata"]["uid"], gvrs.REPLICASETS)
        replicas = ready = available = updated = 0
        for rs in owned:
            st = rs.get("status") or {}
            replicas += int(st.get("replicas", 0) or 0)
            ready += int(st.get("readyReplicas", 0) or 0)
            available += int(st.get("availableReplicas", 0) or 0)
            if rs["metadata"]["name"] == rs_name:
                updated = int(st.get("replicas", 0) or 0)
        new_rs = next((rs for rs in owned if rs["metadata"]["name"] == rs_name), None)
        new_avail = int(((new_rs or {}).get("status") or {}).get("availableReplicas", 0) or 0)
        max_unavailable = math.floor(desired * 0.25)
        generation = d["metadata"].get("generation", 1)

        def fn(obj: Obj) -> None:
            st = obj.setdefault("status", {})
            before_counts = tuple(int(st.get(k, 0) or 0) for k in
                                  ("replicas", "updatedReplicas", "readyReplicas", "availableReplicas"))
            st["observedGeneration"] = generation
            st["replicas"] = replicas
            st["updatedReplicas"] = updated
            st["readyReplicas"] = ready
            st["availableReplicas"] = available
            st["unavailableReplicas"] = max(0, max(desired, replicas) - available)
            _omit_zero(st, "replicas", "updatedReplicas", "readyReplicas", "availableReplicas", "unavailableReplicas")
            if available >= desired - max_unavailable:
                util.set_condition(obj, "Available", "True", "MinimumReplicasAvailable",
                                   "Deployment has minimum availability.", probe_time=False)
            else:
                util.set_condition(obj, "Available", "False", "MinimumReplicasUnavailable",
                                   "Deployment does not have minimum availability.", probe_time=False)
            # pkg/controller/deployment/progress.go syncRolloutStatus: Progressing's
            # lastUpdateTime moves with each step of the rollout; a rollout that makes no step
            # for progressDeadlineSeconds is Progressing=False, ProgressDeadlineExceeded
            before = util.condition(obj, "Progressing") or {}
            stepped = (before_counts != (replicas, updated, ready, available)) or before.get("message", "").find(
                f'"{rs_name}"') < 0
            deadline = (obj.get("spec") or {}).get("progressDeadlineSeconds")
            last_update = util.parse_time(before.get("lastUpdateTime"))
            if new_rs is not None and new_avail >= desired and replicas == updated:
                util.set_condition(obj, "Progressing", "True", "NewReplicaSetAvailable",
                                   f'ReplicaSet "{rs_name}" has successfully progressed.', probe_time=False)
                if before.get("reason") != "NewReplicaSetAvailable":
                    stepped = True
            elif (not stepped and before.get("reason") != "NewReplicaSetAvailable" and isinstance(deadline, int)
                  and last_update and _now_ts() - last_update >= deadline):
                util.set_condition(obj, "Progressing", "False", "ProgressDeadlineExceeded",
                                   f'ReplicaSet "{rs_name}" has timed out progressing.', probe_time=False)
            elif before.get("reason") != "ProgressDeadlineExceeded" or stepped:
                util.set_condition(obj, "Progressing", "True", "ReplicaSetUpdated",
                                   f'ReplicaSet "{rs_name}" is progressing.', probe_time=False)
                if isinstance(deadline, int):
                    self.enqueue((ns, name), float(deadline) + 0.05)
            for c in st.get("conditions", []):
                c.setdefault("lastUpdateTime", c.get("lastTransitionTime"))
                if c.get("type") == "Progressing" and stepped:
                    c["lastUpdateTime"] = util.now()

        self.store.mutate(gvrs.DEPLOYMENTS, ns, name, fn)


# -- ReplicaSet ----------------------------------------------------------------------
def _log2_bucket(seconds: float) -> int:
    return int(math.log2(seconds)) if seconds >= 1 else 0


BURST_REPLICAS = 500  # pkg/controller/replicaset/replica_set.go BurstReplicas


class ReplicaSetController(Controller):
    watches = frozenset({gvrs.REPLICASETS, gvrs.PODS})

    def __init__(self, ctx: Ctx) -> None:
        super().__init__(ctx)
        self._batch: dict[tuple[str, str], int] = {}  # a ReplicaSet's next slow-start batch

    def keys_for(self, event: Event) -> list[tuple[str, str]]:
        if event.gvr == gvrs.REPLICASETS:
            return [] if event.type == "DELETED" else [(event.namespace, event.name)]
        refs = event.obj["metadata"].get("ownerReferences") or []
        for ref in refs:
            if ref.get("kind") == "ReplicaSet" and ref.get("controller"):
                return [(event.namespace, str(ref.get("name")))]
        if event.type == "DELETED" or any(r.get("controller") for r in refs) or not util.is_active(event.obj):
            return []
        # an orphan: the ReplicaSets whose selector matches it may adopt it
        labels = util.labels_of(event.obj)
        return [(event.namespace, str(rs["metadata"]["name"])) for rs in self.store.iter(gvrs.REPLICASETS, event.namespace)
                if util.match_selector((rs.get("spec") or {}).get("selector") or {}, labels)]

    def start(self) -> None:
        self.enqueue_all(gvrs.REPLICASETS)

    def reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        rs = self.store.peek(gvrs.REPLICASETS, ns, name)
        if rs is None or util.is_terminating(rs):
            self.sizes.pop(key, None)
            self._batch.pop(key, None)
            return
        uid = rs["metadata"]["uid"]
        pods = [p for p in self.ctx.dependents(uid, gvrs.PODS) if util.controller_uid(p) == uid]
        # pods whose labels no longer match the selector are released: their controller
        # reference goes, and they no longer count (pkg/controller/controller_ref_manager.go
        # ClaimObject: "release the object if it no longer matches")
        selector = (rs.get("spec") or {}).get("selector") or {}
        kept = []
        for p in pods:
            if util.match_selector(selector, util.labels_of(p)):
                kept.append(p)
            else:
                self._release(p, uid)
        # ... and an orphan that matches is adopted (when the ReplicaSet is not being deleted)
        if selector.get("matchLabels") or selector.get("matchExpressions"):
            for p in list(self.store.iter(gvrs.PODS, ns)):
                refs = p["metadata"].get("ownerReferences") or []
                if (any(r.get("controller") for r in refs) or not util.is_active(p)
                        or not util.match_selector(selector, util.labels_of(p))):
                    continue
                adopted = self._adopt(p, rs)
                if adopted is not None:
                    kept.append(adopted)
        pods = kept
        self.sizes[key] = len(pods)
        active = [p for p in pods if util.is_active(p)]
        desired = int((rs.get("spec") or {}).get("replicas", 1) or 0)
        diff = desired - len(active)
        bound = max(1, self.ctx.settings.tick_bound)
        if diff > 0:
            # pkg/controller/replicaset/replica_set.go manageReplicas: at most burstReplicas
            # (500) per sync, created by slowStartBatch in batches of 1, 2, 4, ... Here each
            # batch is one turn of the loop, at most tick_bound pods, and the next batch is
            # queued for the next turn: the API answers in between.
            size = min(diff, self._batch.get(key, 1), bound, BURST_REPLICAS)
            self._create(rs, size)
            if diff > size:
                self._batch[key] = min(size * 2, bound, BURST_REPLICAS)
                self.enqueue(key)
            else:
                self._batch.pop(key, None)
        else:
            self._batch.pop(key, None)
        if diff < 0:
            # deletions too: at most tick_bound per turn (manageReplicas deletes at most
            # burstReplicas per sync), the most expendable first
            size = min(-diff, bound, BURST_REPLICAS)
            for pod in self.rank_for_deletion(active, rs)[:size]:
                pm = pod["metadata"]
                delete_pod(self.store, ns, pm["name"])
                self.ctx.record(rs, "SuccessfulDelete", f"Deleted pod: {pm['name']}",
                                component="replicaset-controller")
            if -diff > size:
                self.enqueue(key)
        self._status(ns, name)

    def _release(self, pod: Obj, uid: str) -> None:
        def fn(p: Obj) -> None:
            refs = [r for r in p["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                p["metadata"]["ownerReferences"] = refs
            else:
                p["metadata"].pop("ownerReferences", None)

        self.store.mutate(gvrs.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], fn)

    def _adopt(self, pod: Obj, rs: Obj) -> Obj | None:
        ref = util.owner_ref(rs)

        def fn(p: Obj) -> None:
            if not any(r.get("controller") for r in p["metadata"].get("ownerReferences") or []):
                p["metadata"].setdefault("ownerReferences", []).append(ref)

        return self.store.mutate(gvrs.PODS, pod["metadata"]["namespace"], pod["metadata"]["name"], fn)

    def _create(self, rs: Obj, count: int) -> None:
        template = (rs.get("spec") or {}).get("template") or {}
        ns = rs["metadata"]["namespace"]
        base = f"{rs['metadata']['name']}-"
        for _ in range(count):
            pod = self.store.create(gvrs.PODS, pod_from_template(self.store, rs, template, base, ns))
            self.ctx.record(rs, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                            component="replicaset-controller")

    def rank_for_deletion(self, active: list[Obj], rs: Obj) -> list[Obj]:
        """Pods to delete first come first (ActivePodsWithRanks)."""
        # rank = active pods of the same owner on the same node (related ReplicaSets too)
        owner = util.controller_uid(rs)
        related: list[Obj] = []
        if owner:
            for other in self.ctx.dependents(owner, gvrs.REPLICASETS):
                related.extend(p for p in self.ctx.dependents(other["metadata"]["uid"], gvrs.PODS) if util.is_active(p))
        else:
            related = active
        per_node: dict[str, int] = {}
        for p in related:
            node = (p.get("spec") or {}).get("nodeName") or ""
            if node:
                per_node[node] = per_node.get(node, 0) + 1
        now = _now_ts()

        def key(p: Obj) -> tuple[Any, ...]:
            spec, status, m = p.get("spec") or {}, p.get("status") or {}, p["metadata"]
            node = spec.get("nodeName") or ""
            phase_rank = {"Pending": 0, "Unknown": 1, "Running": 2}.get(util.phase(p), 2)
            ready = util.is_ready(p)
            cost = int((m.get("annotations") or {}).get(DELETION_COST, "0") or 0)
            ready_c = util.condition(p, "Ready")
            ready_for = now - util.parse_time((ready_c or {}).get("lastTransitionTime")) if ready else 0.0
            restarts = sum(int(c.get("restartCount", 0)) for c in status.get("containerStatuses") or [])
            created = util.parse_time(m.get("creationTimestamp"))
            return (
                1 if node else 0,                   # unscheduled first
                phase_rank,                         # Pending < Unknown < Running
                1 if ready else 0,                  # not ready first
                cost,                               # lower deletion cost first
                -per_node.get(node, 0),             # more co-located replicas first
                _log2_bucket(ready_for) if ready else 0,  # ready for less time first
                -restarts,                          # more restarts first
                _log2_bucket(max(1.0, now - created)),  # newer first
                m.get("uid", ""),
            )

        return sorted(active, key=key)

    def _status(self, ns: str, name: str) -> None:
        rs = self.store.peek(gvrs.REPLICASETS, ns, name)
        if rs is None:
            return
        uid = rs["metadata"]["uid"]
        active = [p for p in self.ctx.dependents(uid, gvrs.PODS) if util.is_active(p)]
        selector = (rs.get("spec") or {}).get("selector") or {}
        labeled = sum(1 for p in active if util.match_selector(selector, util.labels_of(p)))
        ready = sum(1 for p in active if util.is_ready(p))
        generation = rs["metadata"].get("generation", 1)

        def fn(obj: Obj) -> None:
            st = obj.setdefault("status", {})
            st["replicas"] = len(active)
            st["fullyLabeledReplicas"] = labeled
            st["readyReplicas"] = ready
            st["availableReplicas"] = ready
            st["observedGeneration"] = generation
            _omit_zero(st, "fullyLabeledReplicas", "readyReplicas", "availableReplicas")

        self.store.mutate(gvrs.REPLICASETS, ns, name, fn)


def _now_ts() -> float:
    import time

    return time.time()


# -- DaemonSet -----------------------------------------------------------------------
class DaemonSetController(Controller):
    """One pod per eligible node, bound directly (as the DaemonSet controller's node affinity does)."""

    watches = frozenset({gvrs.DAEMONSETS, gvrs.PODS, gvrs.NODES})

    def keys_for(self, event: Event) -> list[tuple[str, str]]:
        if event.gvr == gvrs.DAEMONSETS:
            return [] if event.type == "DELETED" else [(event.namespace, event.name)]
        if event.gvr == gvrs.NODES:
            return [(d["metadata"]["namespace"], d["metadata"]["name"]) for d in self.store.iter(gvrs.DAEMONSETS)]
        for ref in event.obj["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == "DaemonSet" and ref.get("controller"):
                return [(event.namespace, str(ref.get("name")))]
        return []

    def start(self) -> None:
        self.enqueue_all(gvrs.DAEMONSETS)

    def _eligible(self, ds: Obj, node: Obj) -> bool:
        spec = ((ds.get("spec") or {}).get("template") or {}).get("spec") or {}
        labels = util.labels_of(node)
        for k, v in (spec.get("nodeSelector") or {}).items():
            if labels.get(k) != v:
                return False
        tolerated = {t.get("key") for t in spec.get("tolerations") or [] if t.get("operator") == "Exists"}
        for taint in (node.get("spec") or {}).get("taints") or []:
            if (
                taint.get("effect") in ("NoSchedule", "NoExecute")
                and taint.get("key") not in tolerated
                and taint.get("key") != "node.kubernetes.io/unreachable"
            ):
                return False
        return True

    def reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        ds = self.store.peek(gvrs.DAEMONSETS, ns, name)
        if ds is None or util.is_terminating(ds):
            return
        uid = ds["metadata"]["uid"]
        pods = [p for p in self.ctx.dependents(uid, gvrs.PODS) if util.controller_uid(p) == uid]
        by_node: dict[str, list[Obj]] = {}
        for p in pods:
            if util.is_active(p):
                by_node.setdefault((p.get("spec") or {}).get("nodeName") or "", []).append(p)
        nodes = list(self.store.iter(gvrs.NODES))
        eligible = [n for n in nodes if self._eligible(ds, n)]
        template = (ds.get("spec") or {}).get("template") or {}
        tmpl_hash = template_hash(template)
        for node in eligible:
            nname = node["metadata"]["name"]
            if by_node.get(nname):
                continue
            pod = pod_from_template(self.store, ds, template, f"{name}-", ns)
            pod["metadata"]["labels"]["controller-revision-hash"] = tmpl_hash
            pod["metadata"]["labels"]["pod-template-generation"] = str(ds["metadata"].get("generation", 1))
            pod["spec"]["nodeName"] = nname
            util.set_condition(pod, "PodScheduled", "True")
            self.store.create(gvrs.PODS, pod)
            self.ctx.record(ds, "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}",
                            component="daemonset-controller")
        eligible_names = {n["metadata"]["name"] for n in eligible}
        for nname, plist in by_node.items():
            extra = plist if nname not in eligible_names else plist[1:]
            for p in extra:
                delete_pod(self.store, ns, p["metadata"]["name"])
        pods = [p for p in self.ctx.dependents(uid, gvrs.PODS) if util.is_active(p)]
        ready = sum(1 for p in pods if util.is_ready(p))
        generation = ds["metadata"].get("generation", 1)

        def fn(obj: Obj) -> None:
            st = obj.setdefault("status", {})
            st["desiredNumberScheduled"] = len(eligible)
            st["currentNumberScheduled"] = len(pods)
            st["numberMisscheduled"] = 0
            st["numberReady"] = ready
            st["numberAvailable"] = ready
            st["updatedNumberScheduled"] = len(pods)
            st["observedGeneration"] = generation
            if len(eligible) - ready > 0:
                st["numberUnavailable"] = len(eligible) - ready
            else:
                st.pop("numberUnavailable", None)
            _omit_zero(st, "numberAvailable", "updatedNumberScheduled")

        self.store.mutate(gvrs.DAEMONSETS, ns, name, fn)

