"""The Job controller and the TTL-after-finished controller (``batch/v1``, Kubernetes 1.31).

Job controller (kubernetes/kubernetes ``pkg/controller/job/job_controller.go``, and the
Kubernetes docs "Jobs"):

- pods from ``spec.template`` (whose labels the API server gave the Job's
  ``batch.kubernetes.io/controller-uid``/``job-name`` and legacy ``controller-uid``/``job-name``),
  owned by the Job (``controller: true``, ``blockOwnerDeletion: true``) and carrying the
  ``batch.kubernetes.io/job-tracking`` finalizer, removed once the pod's end is counted
  (``trackJobStatusAndRemoveFinalizers``), so a pod deleted before it is counted still counts;
- names ``<job>-<random5>``, or for ``completionMode: Indexed`` ``<job>-<index>-<random5>``
  (``podGenerateNameWithIndex``) with the ``batch.kubernetes.io/job-completion-index``
  annotation and label, ``spec.hostname: <job>-<index>`` and ``JOB_COMPLETION_INDEX`` from
  that annotation in every container's env (``addCompletionIndexEnvVariables``);
- at most ``parallelism`` active pods, as many as ``completions`` still need (Indexed: one
  per index not yet succeeded, lowest first); a failed pod's replacement waits the
  back-off (10 s doubled per failure, capped at 6 min: ``settings.job_backoff``);
- status ``active``, ``ready``, ``terminating``, ``succeeded``, ``failed``,
  ``completedIndexes``, ``uncountedTerminatedPods``, ``startTime``, ``completionTime``;
- failure: more failed pods than ``backoffLimit``, or with ``restartPolicy: OnFailure`` as
  many container restarts (``BackoffLimitExceeded``, "Job has
  reached the specified backoff limit") or running longer than ``activeDeadlineSeconds``
  since ``startTime`` (``DeadlineExceeded``, "Job was active longer than specified
  deadline"): the ``FailureTarget`` condition first, the active pods deleted, then
  ``Failed`` once none is left terminating (``delayTerminalCondition``: on in 1.31, where
  ``JobPodReplacementPolicy`` is on by default);
- success: ``completions`` pods (or indexes) succeeded, or without ``completions`` one pod
  succeeded and none is active: ``SuccessCriteriaMet`` ("Reached expected number of
  succeeded pods", reason ``CompletionsReached``), then ``Complete`` with ``completionTime``;
- ``suspend: true``: no pods; the active ones are deleted.

TTL-after-finished controller (``pkg/controller/ttlafterfinished``): a finished Job with
``ttlSecondsAfterFinished`` is deleted that long after its ``Complete``/``Failed``
condition's ``lastTransitionTime``, with ``propagationPolicy: Foreground`` and a uid
precondition: its pods go first, then the Job; what the Job owns (a ConfigMap whose
``ownerReferences`` name it) goes with it through the garbage collector.
"""

from __future__ import annotations

import asyncio
import copy
import time
from typing import Any

from k3dtui.sim import gvrs, registry
from k3dtui.sim.controllers import util
from k3dtui.sim.controllers.base import Controller, delete_pod
from k3dtui.sim.store import ApiError, Event, Obj

TRACKING_FINALIZER = "batch.kubernetes.io/job-tracking"
INDEX_KEY = "batch.kubernetes.io/job-completion-index"
COMPONENT = "job-controller"
MAX_BACKOFF = 360.0  # seconds (MaxJobPodFailureBackOff)


def controller_of(obj: Obj) -> dict[str, Any] | None:
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def is_finished(job: Obj) -> bool:
    return any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def finish_time(job: Obj) -> float | None:
    for c in (job.get("status") or {}).get("conditions") or []:
        if c.get("type") in ("Complete", "Failed") and c.get("status") == "True":
            return util.parse_time(c.get("lastTransitionTime")) or None
    return None


def format_indexes(indexes: set[int]) -> str:
    """``completedIndexes``: sorted, runs written ``a-b`` (``1,3-5,7``)."""
    out: list[str] = []
    ordered = sorted(indexes)
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def parse_indexes(text: str | None) -> set[int]:
    out: set[int] = set()
    for part in (text or "").split(","):
        part = part.strip()
        if not part:
            continue
        lo, _, hi = part.partition("-")
        try:
            out.update(range(int(lo), int(hi or lo) + 1))
        except ValueError:
            continue
    return out


def pod_index(pod: Obj) -> int | None:
    raw = (pod["metadata"].get("annotations") or {}).get(INDEX_KEY)
    try:
        return int(str(raw))
    except (TypeError, ValueError):
        return None


def past_backoff_limit_on_failure(job: Obj, active: list[Obj]) -> bool:
    """``restartPolicy: OnFailure``: the restarts of the active pods' containers count
    against ``backoffLimit`` (``pastBackoffLimitOnFailure``)."""
    spec = job.get("spec") or {}
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = sum(int(cs.get("restartCount", 0)) for p in active
                   for cs in ((p.get("status") or {}).get("initContainerStatuses") or [])
                   + ((p.get("status") or {}).get("containerStatuses") or []))
    limit = int(spec.get("backoffLimit", 6))
    return restarts > 0 if limit == 0 else restarts >= limit


def _condition(ctype: str, reason: str, message: str, now: str) -> dict[str, Any]:
    return {"type": ctype, "status": "True", "reason": reason, "message": message,
            "lastProbeTime": now, "lastTransitionTime": now}


def _has(job_status: dict[str, Any], ctype: str) -> dict[str, Any] | None:
    for c in job_status.get("conditions") or []:
        if c.get("type") == ctype and c.get("status") == "True":
            return dict(c)
    return None


class JobController(Controller):
    watches = frozenset({gvrs.JOBS, gvrs.PODS})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._last_failure: dict[str, tuple[float, int]] = {}  # job uid → (time, failures then)
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}

    def keys_for(self, event: Event) -> list[Any]:
        if event.gvr == gvrs.JOBS:
            return [("job", event.namespace, event.name)]
        keys: list[Any] = []
        ref = controller_of(event.obj)
        if ref is not None and ref.get("kind") == "Job":
            keys.append(("job", event.namespace, str(ref.get("name"))))
        if event.type != "DELETED" and TRACKING_FINALIZER in (event.obj["metadata"].get("finalizers") or []):
            keys.append(("pod", event.namespace, event.name))
        return keys

    def start(self) -> None:
        for job in list(self.store.iter(gvrs.JOBS)):
            self.enqueue(("job", str(job["metadata"]["namespace"]), str(job["metadata"]["name"])))

    def _later(self, ns: str, name: str, delay: float) -> None:
        key = (ns, name)
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        self._timers[key] = asyncio.get_running_loop().call_later(
            max(0.0, delay), self._enqueue_now, ("job", ns, name))

    def reconcile(self, key: tuple[str, str, str]) -> None:
        what, ns, name = key
        if what == "pod":
            self._orphan(ns, name)
        else:
            self._sync(ns, name)

    # -- pods ----------------------------------------------------------------------------------
    def _orphan(self, ns: str, name: str) -> None:
        """A tracked pod whose Job is gone (or is not its controller any more) is released."""
        pod = self.store.peek(gvrs.PODS, ns, name)
        if pod is None or TRACKING_FINALIZER not in (pod["metadata"].get("finalizers") or []):
            return
        ref = controller_of(pod)
        job = self.store.peek(gvrs.JOBS, ns, str((ref or {}).get("name", "")))
        if job is not None and ref is not None and job["metadata"].get("uid") == ref.get("uid"):
            return
        self._release(pod)

    def _release(self, pod: Obj) -> None:
        def drop(p: Obj) -> None:
            kept = [f for f in p["metadata"].get("finalizers") or [] if f != TRACKING_FINALIZER]
            if kept:
                p["metadata"]["finalizers"] = kept
            else:
                p["metadata"].pop("finalizers", None)

        try:
            self.store.mutate(gvrs.PODS, str(pod["metadata"]["namespace"]), str(pod["metadata"]["name"]), drop)
        except ApiError:
            return

    def _pods(self, job: Obj) -> list[Obj]:
        uid = str(job["metadata"].get("uid", ""))
        return [p for p in self.ctx.dependents(uid, gvrs.PODS) if (controller_of(p) or {}).get("uid") == uid]

    def _create_pod(self, job: Obj, index: int | None) -> None:
        meta, spec = job["metadata"], job.get("spec") or {}
        tmpl = copy.deepcopy(spec.get("template") or {})
        tmeta = tmpl.get("metadata") or {}
        pod_spec = tmpl.get("spec") or {}
        labels = dict(tmeta.get("labels") or {})
        annotations = dict(tmeta.get("annotations") or {})
        base = f"{meta['name']}-"
        if index is not None:
            annotations[INDEX_KEY] = str(index)
            labels[INDEX_KEY] = str(index)
            pod_spec["hostname"] = f"{meta['name']}-{index}"
            base = f"{meta['name']}-{index}-"
            for field in ("initContainers", "containers"):
                for c in pod_spec.get(field) or []:
                    env = c.setdefault("env", [])
                    if not any(e.get("name") == "JOB_COMPLETION_INDEX" for e in env):
                        env.append({"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {
                            "apiVersion": "v1", "fieldPath": f"metadata.annotations['{INDEX_KEY}']"}}})
        pod: Obj = {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {
                "generateName": base, "name": registry.generate_name(base), "namespace": meta["namespace"],
                "labels": labels, "ownerReferences": [util.owner_ref(job)],
                "finalizers": [TRACKING_FINALIZER],
            },
            "spec": pod_spec,
        }
        if annotations:
            pod["metadata"]["annotations"] = annotations
        for _ in range(5):
            try:
                created = registry.create(self.store, gvrs.PODS, pod)
            except ApiError as exc:
                if exc.code == 409:
                    pod["metadata"]["name"] = registry.generate_name(base)
                    continue
                self.ctx.record(job, "FailedCreate", f"Error creating: {exc.message}", component=COMPONENT, warning=True)
                return
            self.ctx.record(job, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", component=COMPONENT)
            return

    def _delete_pods(self, job: Obj, pods: list[Obj]) -> None:
        for p in pods:
            delete_pod(self.store, str(p["metadata"]["namespace"]), str(p["metadata"]["name"]))
            self.ctx.record(job, "SuccessfulDelete", f"Deleted pod: {p['metadata']['name']}", component=COMPONENT)

    # -- the Job ---------------------------------------------------------------------------------
    def _sync(self, ns: str, name: str) -> None:
        job = self.store.peek(gvrs.JOBS, ns, name)
        if job is None:
            return
        pods = self._pods(job)
        if job["metadata"].get("deletionTimestamp"):
            # being deleted (foreground): its pods go as they finish
            for p in pods:
                if util.phase(p) in ("Succeeded", "Failed") or p["metadata"].get("deletionGracePeriodSeconds") == 0:
                    self._release(p)
            return
        spec = job.get("spec") or {}
        old_status = copy.deepcopy(job.get("status") or {})
        st = copy.deepcopy(old_status)
        now_s, now = time.time(), util.now()
        uid = str(job["metadata"].get("uid", ""))
        indexed = spec.get("completionMode") == "Indexed"
        completions = spec.get("completions")
        parallelism = int(spec.get("parallelism") or 0)
        if _has(st, "Complete") or _has(st, "Failed"):
            for p in pods:  # a finished Job still counts and releases what ends later
                if TRACKING_FINALIZER in (p["metadata"].get("finalizers") or []) and (
                        util.phase(p) in ("Succeeded", "Failed") or util.is_terminating(p)):
                    self._release(p)
            return
        if not spec.get("suspend"):
            st.setdefault("startTime", now)

        # count the pods that ended, then let them go (trackJobStatusAndRemoveFinalizers)
        completed = parse_indexes(st.get("completedIndexes"))
        succeeded, failed = int(st.get("succeeded") or 0), int(st.get("failed") or 0)
        counted: list[Obj] = []
        new_failures = 0
        for p in pods:
            if TRACKING_FINALIZER not in (p["metadata"].get("finalizers") or []):
                continue
            ph = util.phase(p)
            if ph == "Succeeded":
                idx = pod_index(p)
                if indexed:
                    if idx is not None and completions is not None and 0 <= idx < int(completions):
                        completed.add(idx)
                else:
                    succeeded += 1
                counted.append(p)
            elif ph == "Failed":
                failed += 1
                new_failures += 1
                counted.append(p)
        if indexed:
            succeeded = len(completed)
            st["completedIndexes"] = format_indexes(completed)
        if new_failures:
            self._last_failure[uid] = (now_s, failed)

        active = [p for p in pods if util.phase(p) not in ("Succeeded", "Failed") and not util.is_terminating(p)]
        terminating = [p for p in pods if util.phase(p) not in ("Succeeded", "Failed") and util.is_terminating(p)]

        failure = _has(st, "FailureTarget")
        success = _has(st, "SuccessCriteriaMet")
        if failure is None and success is None:
            limit = int(spec.get("backoffLimit", 6))
            deadline = spec.get("activeDeadlineSeconds")
            started = util.parse_time(st.get("startTime"))
            if failed > limit or past_backoff_limit_on_failure(job, active):
                failure = _condition("FailureTarget", "BackoffLimitExceeded", "Job has reached the specified backoff limit", now)
            elif deadline is not None and started and now_s - started >= float(deadline):
                failure = _condition("FailureTarget", "DeadlineExceeded", "Job was active longer than specified deadline", now)
            elif deadline is not None and started and not spec.get("suspend"):
                self._later(ns, name, started + float(deadline) - now_s + 0.01)
            if failure is not None:
                st.setdefault("conditions", []).append(failure)
                self.ctx.record(job, str(failure["reason"]), str(failure["message"]), component=COMPONENT, warning=True)
            elif (completions is not None and succeeded >= int(completions)) or (
                    completions is None and succeeded > 0 and not active):
                success = _condition("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods", now)
                st.setdefault("conditions", []).append(success)

        if failure is not None or success is not None:
            self._delete_pods(job, active)
            terminating += active
            active = []
            if not terminating:
                ctype = "Failed" if failure is not None else "Complete"
                final = dict(failure if failure is not None else success or {})
                final.update({"type": ctype, "lastProbeTime": now, "lastTransitionTime": now})
                st["conditions"].append(final)
                if ctype == "Complete":
                    st["completionTime"] = now
                    self.ctx.record(job, "Completed", "Job completed", component=COMPONENT)
        elif spec.get("suspend"):
            self._delete_pods(job, active)
            terminating += active
            active = []
        else:
            active = self._manage(job, active, completed if indexed else None, succeeded, parallelism, failed, now_s)

        st["active"] = len(active)
        st["ready"] = sum(1 for p in active if util.is_ready(p))
        st["terminating"] = len(terminating)
        st["succeeded"] = succeeded
        st["failed"] = failed
        st["uncountedTerminatedPods"] = {}
        for k in ("active", "succeeded", "failed"):
            if not st[k]:
                del st[k]
        if st != old_status:
            def write(j: Obj, st: dict[str, Any] = st) -> None:
                j["status"] = st

            self.store.mutate(gvrs.JOBS, ns, name, write)
        for p in counted:
            self._release(p)

    def _manage(self, job: Obj, active: list[Obj], completed: set[int] | None, succeeded: int,
                parallelism: int, failed: int, now_s: float) -> list[Obj]:
        """Create or delete pods toward the wanted active count; returns the active pods
        (the new ones included)."""
        spec = job.get("spec") or {}
        meta = job["metadata"]
        uid = str(meta.get("uid", ""))
        completions = spec.get("completions")
        if completed is not None:
            total = int(completions or 0)
            running_indexes = {pod_index(p) for p in active}
            todo = [i for i in range(total) if i not in completed and i not in running_indexes]
            want_new = max(0, min(parallelism - len(active), len(todo)))
            extra: list[Obj] = [p for p in active if pod_index(p) in completed]
        else:
            want = parallelism if completions is None else min(parallelism, int(completions) - succeeded)
            if completions is None and succeeded > 0:
                want = 0
            want = max(0, want)
            want_new = max(0, want - len(active))
            extra = sorted(active, key=lambda p: str(p["metadata"].get("creationTimestamp", "")))[want:]
            todo = []
        if extra:
            self._delete_pods(job, extra)
            active = [p for p in active if p not in extra]
        if want_new <= 0:
            return active
        last = self._last_failure.get(uid)
        if last is not None and failed > 0:
            delay = min(MAX_BACKOFF, float(self.ctx.settings.job_backoff) * 2 ** max(0, last[1] - 1))
            if now_s < last[0] + delay:
                self._later(str(meta["namespace"]), str(meta["name"]), last[0] + delay - now_s)
                return active
        for n in range(want_new):
            self._create_pod(job, todo[n] if completed is not None else None)
        return self._pods_active(job)

    def _pods_active(self, job: Obj) -> list[Obj]:
        return [p for p in self._pods(job) if util.phase(p) not in ("Succeeded", "Failed") and not util.is_terminating(p)]


class TTLAfterFinishedController(Controller):
    """Deletes finished Jobs ``ttlSecondsAfterFinished`` after they finished."""

    watches = frozenset({gvrs.JOBS})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}

    def keys_for(self, event: Event) -> list[tuple[str, str]]:
        return [] if event.type == "DELETED" else [(event.namespace, event.name)]

    def start(self) -> None:
        self.enqueue_all(gvrs.JOBS)

    def reconcile(self, key: tuple[str, str]) -> None:
        ns, name = key
        job = self.store.peek(gvrs.JOBS, ns, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        ttl = (job.get("spec") or {}).get("ttlSecondsAfterFinished")
        finished = finish_time(job)
        if ttl is None or finished is None:
            return
        left = finished + float(ttl) - time.time()
        if left > 0:
            old = self._timers.pop(key, None)
            if old is not None:
                old.cancel()
            self._timers[key] = asyncio.get_running_loop().call_later(left + 0.01, self._enqueue_now, key)
            return
        self._timers.pop(key, None)
        try:
            done = registry.delete(self.store, gvrs.JOBS, ns, name, {
                "propagationPolicy": "Foreground", "preconditions": {"uid": job["metadata"]["uid"]}})
        except ApiError:
            return
        if done.foreground:
            from k3dtui.sim.controllers.base import spawn

            spawn(finish_foreground(self.ctx, gvrs.JOBS, ns, name, str(job["metadata"]["uid"])))


async def finish_foreground(ctx: Any, gvr: Any, ns: str, name: str, uid: str, timeout: float = 3600.0) -> None:
    """Foreground deletion, as the garbage collector does it for a controller's delete: the
    dependents are deleted (graceful), and once none is left the ``foregroundDeletion``
    finalizer goes and the owner with it."""
    store = ctx.store
    deadline = time.monotonic() + timeout
    asked: set[str] = set()
    while time.monotonic() < deadline:
        current = store.peek(gvr, ns, name)
        if current is None or current["metadata"].get("uid") != uid:
            return
        deps = [d for d in ctx.dependents(uid) if any(r.get("uid") == uid for r in d["metadata"].get("ownerReferences") or [])]
        blocking = [d for d in deps if any(r.get("uid") == uid and r.get("blockOwnerDeletion")
                                           for r in d["metadata"].get("ownerReferences") or [])]
        for d in deps:
            dm = d["metadata"]
            key = str(dm.get("uid"))
            if key in asked or dm.get("deletionTimestamp"):
                continue
            asked.add(key)
            gvr_of = _gvr_of(store, d)
            if gvr_of is not None:  # what they own in turn goes by the garbage collector
                registry.delete_quietly(store, gvr_of, str(dm.get("namespace", "")), str(dm["name"]),
                                        {"propagationPolicy": "Background"})
        if not blocking:
            def drop(o: Obj) -> None:
                kept = [f for f in o["metadata"].get("finalizers") or [] if f != "foregroundDeletion"]
                if kept:
                    o["metadata"]["finalizers"] = kept
                else:
                    o["metadata"].pop("finalizers", None)

            store.mutate(gvr, ns, name, drop)
            return
        await asyncio.sleep(0.05)


def _gvr_of(store: Any, obj: Obj) -> Any:
    api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
    group, _, version = api_version.rpartition("/")
    for gvr in store.resources():
        if gvr.group == group and gvr.version == version:
            for o in store.iter(gvr, str(obj["metadata"].get("namespace", ""))):
                if o["metadata"].get("uid") == obj["metadata"].get("uid") and o.get("kind") == kind:
                    return gvr
    return None
