"""STAND-IN for the Kubernetes API server's admission of the objects Kaapana creates (the box
has no API server): what it refuses, it refuses the way the API server answers (an
``ApiException`` with status 422, reason "Unprocessable Entity"), before the pod runner or
the ConfigMap store runs anything.

- The object's structure: Kubernetes' own OpenAPI schema of the API version (the
  ``kubernetes-validate`` package, strict: unknown fields are refused).
- Names and labels: what the schema cannot say. The rules are apimachinery's
  (``k8s.io/apimachinery/pkg/util/validation``): ``metadata.name`` of a ConfigMap or Pod and
  a namespace must be a DNS-1123 subdomain / label (``IsDNS1123Subdomain``, at most 253
  characters; ``IsDNS1123Label``, at most 63), a label key a qualified name
  (``IsQualifiedName``) and a label value at most 63 characters of ``IsValidLabelValue``'s
  form. No package that installs here carries apimachinery's validation, so its
  published expressions are written out once, below.
"""

from __future__ import annotations

import json
import re

import kubernetes
import kubernetes_validate

#: The Kubernetes version whose schema objects are checked against (Kaapana 0.6.0 runs on
#: microk8s 1.31/1.33; kubernetes-validate ships 1.31's schema).
KUBERNETES_VERSION = "1.31.0"

# apimachinery/pkg/util/validation/validation.go
_DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = re.compile(rf"^{_DNS1123_LABEL}(\.{_DNS1123_LABEL})*$")
DNS1123_LABEL = re.compile(rf"^{_DNS1123_LABEL}$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _is_dns1123_subdomain(value: str) -> bool:
    return len(value) <= 253 and bool(DNS1123_SUBDOMAIN.match(value))


def _is_qualified_name(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and not _is_dns1123_subdomain(prefix):
        return False
    return len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


def _without_nulls(value):
    """The object as the API server decodes it: a JSON null in a map (KaapanaBaseOperator's
    ``limits: {cpu: null}``) is an absent entry to Go's decoder, not a value to check."""
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value]
    return value


def problems(obj) -> list[str]:
    """What the API server would refuse in ``obj`` (a kubernetes client model or a dict)."""
    body = _without_nulls(kubernetes.client.ApiClient().sanitize_for_serialization(obj))
    found = []
    try:
        kubernetes_validate.validate(body, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as error:
        found.append(f"{'.'.join(str(p) for p in error.path) or 'object'}: {error.message}")
    except kubernetes_validate.SchemaNotFoundError as error:
        found.append(str(error))
    metadata = body.get("metadata") or {}
    name = metadata.get("name") or ""
    if not _is_dns1123_subdomain(name):
        found.append(f"metadata.name: Invalid value: {name!r}: a lowercase RFC 1123 subdomain must consist of lower "
                     "case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                     "character (at most 253 characters)")
    namespace = metadata.get("namespace")
    if namespace is not None and not (len(namespace) <= 63 and DNS1123_LABEL.match(namespace)):
        found.append(f"metadata.namespace: Invalid value: {namespace!r}: not an RFC 1123 label")
    for key, value in (metadata.get("labels") or {}).items():
        if not _is_qualified_name(key):
            found.append(f"metadata.labels: Invalid value: {key!r}: not a qualified name")
        if not (len(str(value)) <= 63 and LABEL_VALUE.match(str(value))):
            found.append(f"metadata.labels: Invalid value: {value!r}: a valid label must be an empty string or "
                         "consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                         "alphanumeric character (at most 63 characters)")
    return found


def admit(obj) -> None:
    """Raise what the API server answers to an object it refuses (422), else nothing."""
    found = problems(obj)
    if found:
        kind = getattr(obj, "kind", None) or (obj.get("kind") if isinstance(obj, dict) else type(obj).__name__)
        name = getattr(getattr(obj, "metadata", None), "name", None)
        error = kubernetes.client.exceptions.ApiException(status=422, reason="Unprocessable Entity")
        error.body = json.dumps({"kind": "Status", "status": "Failure", "reason": "Invalid", "code": 422,
                                 "message": f"{kind} {name!r} is invalid: " + "; ".join(found)})
        raise error
