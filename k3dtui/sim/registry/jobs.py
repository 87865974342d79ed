"""Jobs (``batch/v1``): the API server's defaults and checks (Kubernetes 1.31).

- defaults (``pkg/apis/batch/v1/defaults.go`` ``SetDefaults_Job``): ``completions`` and
  ``parallelism`` 1 when both are unset (``parallelism`` 1 when only it is),
  ``backoffLimit`` 6, ``completionMode: NonIndexed``, ``suspend: false``,
  ``podReplacementPolicy: TerminatingOrFailed``, the template defaulted as a pod spec;
- the generated selector (``pkg/registry/batch/job/strategy.go`` ``generateSelector``):
  unless ``manualSelector``, the template gets ``batch.kubernetes.io/controller-uid``,
  ``batch.kubernetes.io/job-name`` and the legacy ``controller-uid``, ``job-name`` labels
  and the selector matches the first; a Job without labels takes its template's;
- checks (``pkg/apis/batch/validation``): the template's ``restartPolicy`` is ``OnFailure``
  or ``Never``; ``Indexed`` needs ``completions``; counts are not negative.
"""

from __future__ import annotations

import uuid

from k3dtui.sim.kinds import Kind
from k3dtui.sim.registry.pods import default_pod_spec, validate_pod_spec
from k3dtui.sim.registry.validation import Invalid
from k3dtui.sim.store import Obj

CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_CONTROLLER_UID = "controller-uid"
LEGACY_JOB_NAME = "job-name"


def default_job(obj: Obj, old: Obj | None) -> None:
    spec = obj.setdefault("spec", {})
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
        spec["parallelism"] = 1
    spec.setdefault("parallelism", 1)
    if spec.get("backoffLimit") is None:
        spec["backoffLimit"] = 2147483647 if spec.get("backoffLimitPerIndex") is not None else 6
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    if spec.get("podFailurePolicy") is None:
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    tmpl = spec.get("template")
    if isinstance(tmpl, dict):
        tmpl.setdefault("metadata", {})
        if isinstance(tmpl.get("spec"), dict):
            default_pod_spec(tmpl["spec"])
    if old is not None:
        return  # the selector and template labels were set at creation and do not change
    if spec.get("manualSelector") and spec.get("selector"):
        return
    meta = obj.setdefault("metadata", {})
    uid = str(meta.setdefault("uid", str(uuid.uuid4())))
    name = str(meta.get("name", ""))
    if isinstance(tmpl, dict):
        labels = tmpl["metadata"].setdefault("labels", {})
        labels[CONTROLLER_UID] = uid
        labels[JOB_NAME] = name
        labels[LEGACY_CONTROLLER_UID] = uid
        labels[LEGACY_JOB_NAME] = name
    spec["selector"] = {"matchLabels": {CONTROLLER_UID: uid}}
    if isinstance(tmpl, dict) and not meta.get("labels"):
        meta["labels"] = dict(tmpl["metadata"]["labels"])  # a Job without labels takes its template's


def validate_job(kind: Kind, obj: Obj, errs: Invalid) -> None:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        errs.required("spec")
        return
    for key in ("parallelism", "completions", "backoffLimit", "activeDeadlineSeconds", "ttlSecondsAfterFinished"):
        value = spec.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            errs.invalid(f"spec.{key}", value, "must be greater than or equal to 0")
    ads = spec.get("activeDeadlineSeconds")
    if isinstance(ads, int) and not isinstance(ads, bool) and ads == 0:
        errs.invalid("spec.activeDeadlineSeconds", ads, "must be greater than 0")
    mode = spec.get("completionMode")
    if mode not in ("NonIndexed", "Indexed"):
        errs.invalid("spec.completionMode", mode, 'supported values: "NonIndexed", "Indexed"')
    if mode == "Indexed" and spec.get("completions") is None:
        errs.add("spec.completions", "spec.completions: Required value: when completion mode is Indexed",
                 "FieldValueRequired")
    tmpl = spec.get("template")
    if not isinstance(tmpl, dict):
        errs.required("spec.template")
        return
    pod_spec = tmpl.get("spec")
    if isinstance(pod_spec, dict) and pod_spec.get("restartPolicy") not in ("OnFailure", "Never"):
        errs.add("spec.template.spec.restartPolicy",
                 f'spec.template.spec.restartPolicy: Unsupported value: "{pod_spec.get("restartPolicy")}": '
                 'supported values: "OnFailure", "Never"', "FieldValueNotSupported")
    validate_pod_spec(pod_spec, errs, "spec.template.spec")
