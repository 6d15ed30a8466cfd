"""Instance-scoped API keys, as the platforms inject them into their containers.

Vast returns ``instance_api_key`` from the create call and injects it into the container as
``CONTAINER_API_KEY`` (with ``CONTAINER_ID``). RunPod gives every pod a pod-scoped key (runpodctl in the pod
uses it) with ``RUNPOD_POD_ID``. Neither vendor documents exactly which calls such a key may make, so the
simulator is deliberately strict: the key may read, change and destroy its own instance and nothing else.
Any other instance, and every account-wide call (lists, offers, create, account SSH keys, GraphQL), is
refused with 403 in the vendor's error shape; a key whose instance is gone is unknown (401), like any
revoked key. docs/design-notes.md lists what is and is not documented.
"""

from __future__ import annotations

import re

# (method, path) an instance key may use; {id} must be its own instance
_RUNPOD = [("GET", r"/v2/pods/{id}"), ("PATCH", r"/v2/pods/{id}"), ("DELETE", r"/v2/pods/{id}"),
           ("POST", r"/v2/pods/{id}/action")]
_VAST = [("GET", r"/api/v0/instances/{id}/?"), ("PUT", r"/api/v0/instances/{id}/?"),
         ("DELETE", r"/api/v0/instances/{id}/?")]


def _compile(rules):
    return [(m, re.compile("^" + p.replace("{id}", r"(?P<id>[^/]+)") + "$")) for m, p in rules]


RULES = {"runpod": _compile(_RUNPOD), "vast": _compile(_VAST), "graphql": []}


def target_instance(api: str, method: str, path: str) -> str | None:
    """The instance id an instance key may act on with this request, or None when no instance key may make it."""
    for m, rx in RULES.get(api, []):
        hit = rx.match(path)
        if hit and m == method:
            return hit.group("id")
    return None


def refusal(api: str, inst_id: str, method: str, path: str) -> str:
    what = "the GraphQL API" if api == "graphql" else f"{method} {path}"
    kind = "pod" if api in ("runpod", "graphql") else "instance"
    return f"this API key is scoped to {kind} {inst_id} and may not call {what}"
