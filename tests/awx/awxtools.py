"""Helpers of the AWX / execution environment / Galaxy tarball tests (fixtures are in conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from gpuops.testing import REPO

BIN = Path(sys.executable).parent
COLL = REPO / "collections" / "ansible_collections" / "gpu" / "ops"
CACHE = REPO / ".cache" / "awx-tests"


def collection_version() -> str:
    return yaml.safe_load((COLL / "galaxy.yml").read_text())["version"]


def isolated_env(collections_path: Path | str, home: Path, extra: dict | None = None) -> dict:
    """An environment in which Ansible sees ONLY `collections_path`: no ANSIBLE_* from the caller, no
    ansible.cfg of the repository (it points collections_path at ./collections), no collections on sys.path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    cfg = home / "ansible.cfg"
    if not cfg.exists():
        cfg.write_text("[defaults]\n")
    env.update({
        "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        "HOME": str(home),
        "ANSIBLE_CONFIG": str(cfg),
        "ANSIBLE_COLLECTIONS_PATH": str(collections_path),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(home / ".ansible-tmp"),
    })
    env.update(extra or {})
    return env


@dataclass
class InstalledCopy:
    collections_path: Path   # holds ansible_collections/gpu/ops, and nothing else
    workdir: Path            # outside the repository: no ./collections, no ansible.cfg next to it

    def env(self, extra: dict | None = None) -> dict:
        return isolated_env(self.collections_path, self.workdir, extra)

    def run(self, tool: str, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, timeout=timeout,
                              env=self.env(env), cwd=str(self.workdir))

    def run_playbook(self, name: str, *args: str, env: dict | None = None,
                     timeout: float = 600) -> subprocess.CompletedProcess:
        """`ansible-playbook gpu.ops.<name> ARGS` against the installed copy only."""
        return self.run("ansible-playbook", f"gpu.ops.{name}", *args, env=env, timeout=timeout)


# --------------------------------------------------------------------------------------- AWX behaviour, ported
# From ansible/awx at e21dd0a (awx/main/fields.py CredentialTypeInputField/CredentialTypeInjectorField and
# awx/main/models/credential.py CredentialType.inject_credential): what AWX accepts as a custom credential type
# and how it turns a credential into a job's environment, extra vars and files. Kept small and literal so the
# tests judge our files by AWX's rules, not by ours.
AWX_INPUTS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "required": {"type": "array", "items": {"type": "string"}},
        "fields": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "type": {"enum": ["string", "boolean"]},
                    "format": {"enum": ["ssh_private_key", "url"]},
                    "choices": {"type": "array", "minItems": 1, "items": {"type": "string"}, "uniqueItems": True},
                    "id": {"type": "string", "pattern": "^[a-zA-Z_]+[a-zA-Z0-9_]*$"},
                    "label": {"type": "string"},
                    "help_text": {"type": "string"},
                    "multiline": {"type": "boolean"},
                    "secret": {"type": "boolean"},
                    "ask_at_runtime": {"type": "boolean"},
                    "default": {},
                },
                "additionalProperties": False,
                "required": ["id", "label"],
            },
        },
    },
}
AWX_INJECTORS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "file": {"type": "object", "patternProperties": {r"^template(\.[a-zA-Z_]+[a-zA-Z0-9_]*)?$": {"type": "string"}},
                 "additionalProperties": False},
        "env": {"type": "object", "patternProperties": {"^[a-zA-Z_]+[a-zA-Z0-9_]*$": {"type": "string",
                                                                                       "pattern": "^[\x00-\x7F]*$"}},
                "additionalProperties": False},
        "extra_vars": {"type": "object", "patternProperties": {
            r"^[a-zA-Z_\{\}]+[a-zA-Z0-9_\{\}]*$": {"anyOf": [{"type": "string"}, {"type": "array"},
                                                           {"$ref": "#/properties/extra_vars"}]}},
            "additionalProperties": False},
    },
}
# awx/main/constants.py ENV_BLOCKLIST (the part a credential could plausibly hit) and the ANSIBLE_ prefix rule
AWX_ENV_BLOCKED = {"VIRTUAL_ENV", "PATH", "PYTHONPATH", "JOB_ID", "INVENTORY_ID", "INVENTORY_SOURCE_ID",
                   "INVENTORY_UPDATE_ID", "AD_HOC_COMMAND_ID", "REST_API_URL", "REST_API_TOKEN", "MAX_EVENT_RES",
                   "CALLBACK_QUEUE", "CALLBACK_CONNECTION", "CACHE", "JOB_CALLBACK_DEBUG", "INVENTORY_HOSTVARS",
                   "AWX_HOST", "PROJECT_REVISION", "SUPERVISOR_CONFIG_PATH"}


def render_injectors(cred_type: dict, inputs: dict, private_data_dir: Path) -> tuple[dict, dict, dict]:
    """What AWX gives a job for one credential of `cred_type` with `inputs`: (env, extra_vars, files by label).

    Files are written into `private_data_dir/env` with mode 0600, as AWX does; templates render in Jinja's
    immutable sandbox with the credential's inputs and `tower.filename[.label]`."""
    import stat
    import tempfile
    from types import SimpleNamespace

    from jinja2 import sandbox

    namespace: dict = dict(inputs)
    for field in cred_type["inputs"].get("fields", []):
        if field.get("format") == "ssh_private_key" and field["id"] in namespace \
                and not namespace[field["id"]].endswith("\n"):
            namespace[field["id"]] += "\n"
    jinja = sandbox.ImmutableSandboxedEnvironment()
    tower = SimpleNamespace()
    files = {}
    (private_data_dir / "env").mkdir(parents=True, exist_ok=True)
    for label, tmpl in cred_type["injectors"].get("file", {}).items():
        fd, path = tempfile.mkstemp(dir=private_data_dir / "env")
        with os.fdopen(fd, "w") as fh:
            fh.write(jinja.from_string(tmpl).render(**namespace, tower=tower))
        os.chmod(path, stat.S_IRUSR | stat.S_IWUSR)
        if "." not in label:
            tower.filename = path
        else:
            if not hasattr(tower, "filename"):
                tower.filename = SimpleNamespace()
            setattr(tower.filename, label.split(".", 1)[1], path)
        files[label] = Path(path)
    env = {k: jinja.from_string(v).render(**namespace, tower=tower)
           for k, v in cred_type["injectors"].get("env", {}).items()}

    def build(node):
        if isinstance(node, dict):
            return {build(k): build(v) for k, v in node.items()}
        if isinstance(node, list):
            return [build(x) for x in node]
        return jinja.from_string(node).render(**namespace, tower=tower)

    return env, build(cred_type["injectors"].get("extra_vars", {})), files


def awx_injector_template_errors(cred_type: dict) -> list[str]:
    """AWX refuses injector templates that reference undefined fields or the wrong `tower.filename` form."""
    from types import SimpleNamespace

    from jinja2 import StrictUndefined, UndefinedError, sandbox

    ns: dict = {f["id"]: "EXAMPLE" for f in cred_type["inputs"].get("fields", [])}
    labels = [k for k in cred_type["injectors"].get("file", {}) if k.startswith("template")]
    tower = SimpleNamespace()
    if "template" in labels:
        tower.filename = "EXAMPLE_FILENAME"
        if len(labels) > 1:
            return ["Must use multi-file syntax when injecting multiple files"]
    elif labels:
        tower.filename = SimpleNamespace(**{label.split(".")[1]: "EXAMPLE_FILENAME" for label in labels})
    ns["tower"] = tower
    jinja = sandbox.ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    errors = []

    def check(where, tmpl):
        try:
            jinja.from_string(tmpl).render(ns)
        except UndefinedError as e:
            errors.append(f"{where} uses an undefined field ({e})")

    for section in ("file", "env"):
        for key, tmpl in cred_type["injectors"].get(section, {}).items():
            check(f"{section}.{key}", tmpl)

    def walk(key, node):
        if isinstance(node, dict):
            for k, v in node.items():
                check(f"extra_vars key {k}", k)
                walk(k, v)
        elif isinstance(node, list):
            for x in node:
                walk(key, x)
        else:
            check(f"extra_vars.{key}", node)

    walk(None, cred_type["injectors"].get("extra_vars", {}))
    return errors


AWX_SURVEY_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
                    "integer": int, "float": (float, int)}


def awx_survey_errors(spec: dict) -> list[str]:
    """awx/api/views JobTemplateSurveySpec._validate_spec_data: the checks AWX makes before storing a survey."""
    errors = []
    for field, typ in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(spec.get(field), typ):
            errors.append(f"field {field!r} missing or not a {typ.__name__}")
    if errors or not spec["spec"]:
        return errors or ["'spec' doesn't contain any items"]
    seen = set()
    for idx, item in enumerate(spec["spec"]):
        for field, typ in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
            if not isinstance(item.get(field), typ):
                errors.append(f"question {idx}: {field!r} missing or not a {typ.__name__}")
        if item.get("variable") in seen:
            errors.append(f"question {idx}: variable {item['variable']!r} duplicated")
        seen.add(item.get("variable"))
        qtype = item.get("type")
        if qtype not in AWX_SURVEY_TYPES:
            errors.append(f"question {idx}: type {qtype!r} is not an AWX survey type")
            continue
        if item.get("default", "") != "" and not isinstance(item["default"], AWX_SURVEY_TYPES[qtype]):
            errors.append(f"question {idx}: default {item['default']!r} is not a {qtype}")
        for key in ("min", "max"):
            if item.get(key) is not None and not isinstance(item[key], int):
                errors.append(f"question {idx}: {key} must be an integer")
        if qtype in ("multiplechoice", "multiselect"):
            if "choices" not in item:
                errors.append(f"question {idx}: {qtype} needs choices")
                continue
            choices = item["choices"].splitlines() if isinstance(item["choices"], str) else item["choices"]
            defaults = item.get("default", "")
            defaults = [d for d in defaults.splitlines() if d.strip()] if isinstance(defaults, str) else defaults
            if qtype == "multiplechoice" and len(defaults) > 1:
                errors.append(f"question {idx}: multiple choice can only have one default")
            if any(d not in choices for d in defaults):
                errors.append(f"question {idx}: default {defaults} not among choices {choices}")
    return errors


# awx/main/constants.py STANDARD_INVENTORY_UPDATE_ENV: the environment of every AWX inventory sync
AWX_INVENTORY_UPDATE_ENV = {
    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True",
    "ANSIBLE_INVENTORY_EXPORT": "True",
    "ANSIBLE_VERBOSE_TO_STDERR": "True",
    "ANSIBLE_HOST_PATTERN_MISMATCH": "error",
}


def awx_survey_value_errors(element: dict, value) -> list[str]:
    """awx/main/models/mixins.py SurveyJobTemplateMixin._survey_element_validation for one answer."""
    qtype, var = element["type"], element["variable"]
    lo, hi = element.get("min"), element.get("max")
    if qtype in ("text", "textarea", "password"):
        if not isinstance(value, str):
            return [f"{var}: {value!r} is not a string"]
        if lo not in ("", None) and len(value) < int(lo) or hi not in ("", None) and len(value) > int(hi):
            return [f"{var}: length {len(value)} outside {lo}..{hi}"]
    elif qtype in ("integer", "float"):
        if type(value) not in ((int,) if qtype == "integer" else (float, int)):
            return [f"{var}: {value!r} is not {qtype}"]
        if lo not in ("", None) and value < lo or hi not in ("", None) and value > hi:
            return [f"{var}: {value} outside {lo}..{hi}"]
    elif qtype in ("multiplechoice", "multiselect"):
        choices = element["choices"]
        choices = [c for c in choices.splitlines() if c.strip()] if isinstance(choices, str) else choices
        if qtype == "multiselect":
            if type(value) is not list:
                return [f"{var}: value is expected to be a list"]
            return [f"{var}: {v!r} not in {choices}" for v in value if v not in choices]
        if value not in choices:
            return [f"{var}: {value!r} not in {choices}"]
    return []


def awx_launch_extra_vars(survey: dict, answers: dict, template_extra_vars: dict | None = None) -> dict:
    """The extra vars of a job launched with `answers`, as SurveyJobTemplateMixin._update_unified_job_kwargs
    builds them: the template's extra vars, then each survey default that passes launch-time validation (the
    others are dropped silently), then the answers."""
    out = dict(template_extra_vars or {})
    for element in survey["spec"]:
        default = element.get("default")
        if default is not None and not awx_survey_value_errors(element, default):
            out[element["variable"]] = default
    out.update(answers)
    return out
