"""The simulated API's per-kind rules: defaults, validation, names and delete semantics.

One implementation of each rule, called by the API server's handlers and by the
controllers alike (a pod a ReplicaSet creates is defaulted as one a client POSTs; a pod a
controller deletes is deleted gracefully as through the API):

- ``rules``: the table of :class:`KindRules` and the write paths (create, update, delete)
- ``names``: ``generateName`` and the DNS rules for names
- ``validation``: the 422 ``Invalid`` Status, metadata checks, ``fieldValidation``
- ``pods``, ``workloads``, ``services``, ``namespaces``, ``crds``: each kind's rules

It sits above the store and below the API server and the controllers.
"""

from __future__ import annotations

from k3dtui.sim.registry.names import NAME_ALPHABET, generate_name
from k3dtui.sim.registry.rules import (
    Deletion,
    KindRules,
    apply_defaults,
    create,
    delete,
    delete_quietly,
    fill_defaults,
    prepare_create,
    prepare_update,
    rules_for,
)
from k3dtui.sim.registry.validation import Invalid, check_strict

__all__ = [
    "NAME_ALPHABET",
    "Deletion",
    "Invalid",
    "KindRules",
    "apply_defaults",
    "check_strict",
    "create",
    "delete",
    "delete_quietly",
    "fill_defaults",
    "generate_name",
    "prepare_create",
    "prepare_update",
    "rules_for",
]
