"""awx/ configuration as code, judged without a live AWX: syntax, lint, every awx.awx argument against the installed
modules' real argument specs, and the credential types and surveys against AWX's own validation rules."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys

import jsonschema
import pytest
import yaml
from awxtools import (
    AWX_ENV_BLOCKED,
    AWX_INJECTORS_SCHEMA,
    AWX_INVENTORY_UPDATE_ENV,
    AWX_INPUTS_SCHEMA,
    BIN,
    COLL,
    awx_injector_template_errors,
    awx_launch_extra_vars,
    awx_survey_errors,
    awx_survey_value_errors,
    isolated_env,
    render_injectors,
)

from gpuops.testing import REPO

AWX = REPO / "awx"
PLAYBOOK = AWX / "configure.yml"
CRED_TYPES = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((AWX / "credential_types").glob("*.yml"))}
SURVEYS = {p.stem: yaml.safe_load(p.read_text()) for p in sorted((AWX / "surveys").glob("*.yml"))}
# the run spec every entry point takes (the pipeline contract): a survey may ask only for these
RUN_SPEC = {"run_id", "name", "repo", "nodes", "gpu", "gpu_count", "providers", "max_price_per_hour",
            "interruptible", "image", "bootstrap", "command", "env", "secret_env", "outputs", "keep_on_failure",
            "ttl", "target", "runs_dir", "max_cost", "idle_timeout", "health_replacements", "ssh_private_key_file"}
ENTRY_POINTS = {"pipeline", "teardown", "reap", "status"}


def _tasks() -> list[dict]:
    plays = yaml.safe_load(PLAYBOOK.read_text())
    return [t for play in plays for t in play.get("tasks", [])]


def _awx_tasks() -> list[tuple[str, str, dict]]:
    out = []
    for task in _tasks():
        mods = [k for k in task if k.startswith("awx.awx.")]
        if mods:
            out.append((task["name"], mods[0].split(".")[-1], task[mods[0]]))
    return out


def _by_module(module: str) -> list[dict]:
    return [args for _, mod, args in _awx_tasks() if mod == module]


def _play_vars() -> dict:
    return yaml.safe_load(PLAYBOOK.read_text())[0]["vars"]


def _run(tool, *args, env, cwd, timeout=300):
    return subprocess.run([str(BIN / tool), *args], capture_output=True, text=True, env=env, cwd=str(cwd),
                          timeout=timeout)


# ------------------------------------------------------------------------------------------ the playbook itself
def test_syntax_check(awx_collections, tmp_path):
    res = _run("ansible-playbook", "-i", "localhost,", str(PLAYBOOK), "--syntax-check",
               env=isolated_env(awx_collections, tmp_path), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_files_load_as_awx_receives_them(awx_collections, tmp_path):
    """The first task runs without a controller: the credential type and survey files load, and the injector
    templates reach the awx.awx modules unrendered (AWX renders them per credential, Ansible must not)."""
    res = _run("ansible-playbook", "-i", "localhost,", str(PLAYBOOK), "--tags", "validate",
               env=isolated_env(awx_collections, tmp_path), cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"ok: \[localhost\]", res.stdout) and "ok=1" in res.stdout, res.stdout


def test_ansible_lint_with_the_real_awx_collection(awx_collections, tmp_path):
    """`make lint` mocks the awx.awx modules (no Galaxy there); here they are real, so the lint rules that read
    module argument specs (args, no-log-password, ...) run too."""
    cfg = yaml.safe_load((REPO / ".ansible-lint").read_text())
    assert "awx.awx.job_template" in cfg.get("mock_modules", [])
    cfg.pop("mock_modules")
    (tmp_path / "lint.yml").write_text(yaml.safe_dump(cfg))
    env = isolated_env(awx_collections, tmp_path, {"HOME": os.environ.get("HOME", str(tmp_path))})
    res = _run("ansible-lint", "--offline", "-c", str(tmp_path / "lint.yml"), "--profile", "production",
               "awx/", "inventories/awx/", "execution-environment.yml", "collections/requirements.yml",
               env=env, cwd=REPO, timeout=600)
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    assert "Passed" in res.stdout + res.stderr


# --------------------------------------------------------------------------- arguments vs. awx.awx argument specs
@pytest.fixture(scope="module")
def awx_specs(awx_collections) -> dict:
    modules = sorted({mod for _, mod, _ in _awx_tasks()})
    res = subprocess.run([sys.executable, str(REPO / "tests" / "awx" / "awx_argspec.py"), *modules],
                         capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(awx_collections)})
    assert res.returncode == 0, res.stderr
    specs = json.loads(res.stdout)
    assert all(s["file"].startswith(str(awx_collections)) for s in specs.values())
    return specs


def _templated(value) -> bool:
    return isinstance(value, str) and "{{" in value


def _doc_to_spec(options: dict) -> dict:
    spec = {}
    for name, opt in options.items():
        entry = {k: opt[k] for k in ("type", "elements", "choices", "aliases", "required") if k in opt}
        if isinstance(opt.get("suboptions"), dict):
            entry["options"] = _doc_to_spec(opt["suboptions"])
        spec[name] = entry
    return spec


def _loosen(spec: dict, params: dict) -> dict:
    """A templated value is only known at run time: accept any type and value for it, check its name only."""
    out = {}
    for name, opt in spec.items():
        names = [name, *opt.get("aliases", [])]
        if any(_templated(params.get(n)) for n in names):
            opt = {k: v for k, v in opt.items() if k not in ("type", "elements", "choices", "options")}
            opt["type"] = "raw"
        elif isinstance(opt.get("options"), dict):
            sub = params.get(next((n for n in names if n in params), name))
            sample = sub[0] if isinstance(sub, list) and sub else sub if isinstance(sub, dict) else {}
            opt = {**opt, "options": _loosen(opt["options"], sample)}
        out[name] = opt
    return out


def _validate(spec: dict, params: dict, rules: dict) -> list[str]:
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    validator = ArgumentSpecValidator(_loosen(spec, params), **{
        k: rules[k] for k in ("mutually_exclusive", "required_together", "required_one_of", "required_if",
                              "required_by") if rules.get(k)})
    result = validator.validate(params)
    return [str(e) for e in result.errors]


@pytest.mark.parametrize("index", range(len(_awx_tasks())), ids=[t[0] for t in _awx_tasks()])
def test_arguments_match_the_installed_argument_spec(awx_specs, index):
    name, module, params = _awx_tasks()[index]
    spec = awx_specs[module]
    errors = _validate(spec["argument_spec"], params, spec)
    assert not errors, f"{name} (awx.awx.{module}): {errors}"


def test_workflow_nodes_match_the_documented_node_options(awx_specs):
    """workflow_nodes is only `list of dict` in the code; its node keys are specified in the module's docs."""
    node_spec = _doc_to_spec(awx_specs["workflow_job_template"]["doc_options"]["workflow_nodes"]["suboptions"])
    nodes = _by_module("workflow_job_template")[0]["workflow_nodes"]
    for node in nodes:
        errors = _validate(node_spec, node, {})
        assert not errors, f"workflow node {node.get('identifier')}: {errors}"


def test_unknown_argument_is_caught(awx_specs):
    """The check above can fail: a misspelt option and a wrong literal type are both reported."""
    spec = awx_specs["job_template"]
    errors = _validate(spec["argument_spec"], {"name": "x", "survey_enable": True, "forks": "many"}, spec)
    assert any("survey_enable" in e for e in errors) and any("forks" in e for e in errors), errors


# -------------------------------------------------------------------------------------- objects and their wiring
def test_job_templates_run_the_entry_playbooks():
    jts = {args["playbook"]: args for args in _by_module("job_template")}
    assert set(jts) == {f"playbooks/{n}.yml" for n in ENTRY_POINTS}
    for path, args in jts.items():
        name = path.split("/")[1][:-4]
        assert args["name"].endswith(f" {name}")
        assert args["credentials"] == "{{ gpuops_awx_job_credentials }}"
        entry = REPO / path
        if entry.is_file():  # the thin entry points import the collection's playbook of the same name
            doc = yaml.safe_load(entry.read_text())
            assert any(p.get("ansible.builtin.import_playbook", p.get("import_playbook")) == f"gpu.ops.{name}"
                       for p in doc), f"{path} does not import gpu.ops.{name}"
    assert jts["playbooks/reap.yml"]["allow_simultaneous"] is False  # two reapers would race
    assert jts["playbooks/pipeline.yml"]["allow_simultaneous"] is True


def test_workflow_tears_down_when_the_pipeline_fails():
    wf = _by_module("workflow_job_template")[0]
    nodes = {n["identifier"]: n for n in wf["workflow_nodes"]}
    jt_names = {args["playbook"].split("/")[1][:-4]: args["name"] for args in _by_module("job_template")}
    assert nodes["pipeline"]["unified_job_template"]["name"] == jt_names["pipeline"]
    assert nodes["teardown"]["unified_job_template"]["name"] == jt_names["teardown"]
    assert nodes["pipeline"]["related"] == {"failure_nodes": [{"identifier": "teardown"}]}
    assert "related" not in nodes["teardown"]
    # the workflow asks for the run spec, so run_id reaches the teardown node as an extra var
    assert wf["survey_spec"] == "{{ gpuops_awx_survey_pipeline }}"
    assert next(q for q in SURVEYS["pipeline"]["spec"] if q["variable"] == "run_id")["required"] is True


def test_reaper_schedule():
    sched = _by_module("schedule")[0]
    reap = next(a for a in _by_module("job_template") if a["playbook"] == "playbooks/reap.yml")
    assert sched["unified_job_template"] == reap["name"]
    assert reap["ask_variables_on_launch"] is True  # AWX refuses a schedule's extra_data otherwise
    # AWX's rrule rules (awx/api/serializers.py SchedulePreviewSerializer.validate_rrule): one DTSTART with a
    # UTC time or TZID, one RRULE, no SECONDLY frequency, COUNT at most 999
    rrule = _play_vars()["gpuops_awx_reap_rrule"]
    assert re.fullmatch(r"DTSTART:\d{8}T\d{6}Z RRULE:FREQ=MINUTELY;INTERVAL=(\d+)", rrule), rrule
    assert 5 <= int(rrule.rsplit("=", 1)[1]) <= 60  # often enough to matter, rare enough to stay cheap


def test_inventory_sources_use_cached_cloud_files_with_their_credential():
    sources = _by_module("inventory_source")
    task = next(t for t in _tasks() if "item.provider" in t.get("awx.awx.inventory_source", {}).get("source_path", ""))
    cloud, loop = task["awx.awx.inventory_source"], task["loop"]
    assert {i["provider"] for i in loop} == {"runpod", "vast"}
    for item in loop:
        path = REPO / cloud["source_path"].replace("{{ item.provider }}", item["provider"])
        cfg = yaml.safe_load(path.read_text())
        assert cfg["plugin"] == "gpu.ops.cloud" and cfg["providers"] == [item["provider"]]
        assert cfg["cache"] is True and cfg["cache_plugin"] == "ansible.builtin.jsonfile"
        assert path.name.endswith("cloud.yml")  # the plugin reads only such files
    assert cloud["update_on_launch"] is True and "update_cache_timeout" in cloud
    homelab = next(s for s in sources if s["source_path"] == "inventories/homelab/hosts.yml")
    assert (REPO / homelab["source_path"]).is_file()


def test_awx_inventory_file_lists_and_caches_simulator_nodes(sim, runpod_node, tmp_path):
    """The file AWX syncs, run as AWX's inventory update runs it (ansible-inventory --list --export with the
    credential's env var): a pod without gpu.ops labels is listed with the group_vars (not a failed sync), a second
    listing is served from the cache, and without cache or API the sync fails instead of coming back empty."""
    env = isolated_env(COLL.parents[2], tmp_path, {
        **AWX_INVENTORY_UPDATE_ENV,
        "RUNPOD_API_KEY": sim.env["RUNPOD_API_KEY"], "RUNPOD_API_URL": sim.env["RUNPOD_API_URL"]})
    src = REPO / "inventories" / "awx" / "runpod.cloud.yml"
    first = _run("ansible-inventory", "-i", str(src), "--list", "--export", env=env, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    data = json.loads(first.stdout)
    assert runpod_node.name in data["_meta"]["hostvars"], first.stdout + first.stderr
    assert "gpu_nodes" in data and "UserKnownHostsFile" in data["gpu_nodes"]["vars"]["ansible_ssh_common_args"]
    env["RUNPOD_API_URL"] = "http://127.0.0.1:9/v2"  # nothing listens there: only the cache can answer
    second = _run("ansible-inventory", "-i", str(src), "--list", "--export", env=env, cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    assert runpod_node.name in json.loads(second.stdout)["_meta"]["hostvars"]
    # no cache and the API refuses (a revoked key): the sync must fail, or AWX (overwrite: true) would delete
    # every host it knows
    (tmp_path / "cold").mkdir()
    cold = _run("ansible-inventory", "-i", str(src), "--list", "--export", cwd=tmp_path, env={
        **env, "HOME": str(tmp_path / "cold"), "RUNPOD_API_URL": sim.env["RUNPOD_API_URL"],
        "RUNPOD_API_KEY": "revoked-key"})
    assert cold.returncode != 0 and "runpod" in cold.stderr, cold.stdout


# --------------------------------------------------------------------------------------------- credential types
@pytest.mark.parametrize("name", sorted(CRED_TYPES))
def test_credential_type_passes_awx_validation(name):
    ct = CRED_TYPES[name]
    assert ct["kind"] == "cloud"  # custom credential types may only be cloud or net
    jsonschema.validate(ct["inputs"], AWX_INPUTS_SCHEMA)
    jsonschema.validate(ct["injectors"], AWX_INJECTORS_SCHEMA)
    assert awx_injector_template_errors(ct) == []
    fields = {f["id"]: f for f in ct["inputs"]["fields"]}
    assert set(ct["inputs"]["required"]) <= set(fields)
    for env_var in ct["injectors"].get("env", {}):
        assert not env_var.startswith("ANSIBLE_") and env_var not in AWX_ENV_BLOCKED
    for fid, field in fields.items():  # every key or token is masked in AWX's UI, API and job env
        if re.search(r"key|token|secret|password", fid) and "public" not in fid:
            assert field.get("secret") is True, f"{name}: {fid} must be secret"


def test_credential_types_inject_what_gpu_ops_reads():
    env_vars = {v for ct in CRED_TYPES.values() for v in ct["injectors"].get("env", {})}
    assert {"RUNPOD_API_KEY", "VAST_API_KEY", "GPUOPS_SSH_PRIVATE_KEY"} <= env_vars
    # what the modules read: each provider declares its key's variable (module_base builds the options from it)
    for provider, var in (("runpod", "RUNPOD_API_KEY"), ("vast", "VAST_API_KEY")):
        source = (COLL / "plugins" / "module_utils" / f"{provider}.py").read_text()
        assert re.search(r'ProviderOption\(\s*"%s_api_key",\s*"%s"' % (provider, var), source), \
            f"the modules no longer read {var}"
    assert "GPUOPS_SSH_PRIVATE_KEY" in (REPO / "inventories" / "awx" / "group_vars" / "gpu_nodes.yml").read_text()
    extra = CRED_TYPES["ssh_key"]["injectors"]["extra_vars"]
    assert "ssh_private_key_file" in extra and "ssh_private_key_file" in RUN_SPEC


def test_injected_ssh_key_files_are_usable(tmp_path):
    """Render the SSH credential as AWX does: key files 0600, paths in env and extra vars, and ssh-keygen reads
    the private key (AWX adds the trailing newline ssh needs) and derives the public key given with it."""
    key = tmp_path / "k"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    inputs = {"ssh_private_key": key.read_text().rstrip("\n"), "ssh_public_key": (tmp_path / "k.pub").read_text()}
    env, extra, files = render_injectors(CRED_TYPES["ssh_key"], inputs, tmp_path / "pdd")
    priv = files["template.key"]
    assert env["GPUOPS_SSH_PRIVATE_KEY"] == extra["ssh_private_key_file"] == str(priv)
    assert extra["ssh_public_key_file"] == str(files["template.pub"])
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    derived = subprocess.run(["ssh-keygen", "-y", "-f", str(priv)], capture_output=True, text=True)
    assert derived.returncode == 0, derived.stderr
    assert derived.stdout.split()[:2] == files["template.pub"].read_text().split()[:2]


def test_api_key_injectors_render_the_secret_into_env_only(tmp_path):
    for name, var in (("runpod", "RUNPOD_API_KEY"), ("vast", "VAST_API_KEY")):
        env, extra, files = render_injectors(CRED_TYPES[name], {"api_key": "sk-test-123"}, tmp_path / name)
        assert env == {var: "sk-test-123"} and extra == {} and files == {}


# ------------------------------------------------------------------------------------------------------ surveys
@pytest.mark.parametrize("name", sorted(SURVEYS))
def test_survey_passes_awx_validation(name):
    survey = SURVEYS[name]
    assert awx_survey_errors(survey) == []
    for q in survey["spec"]:
        assert q["variable"] in RUN_SPEC, f"{name}: {q['variable']} is not a run spec field"
        default = q.get("default")
        if default in (None, ""):
            continue
        if q["type"] in ("text", "textarea"):  # AWX checks min/max as lengths for text, as values for numbers
            assert q.get("min", 0) <= len(default) <= q.get("max", 1024), q
        elif q["type"] in ("integer", "float"):
            assert q.get("min", default) <= default <= q.get("max", default), q


def test_survey_check_can_fail():
    bad = {"name": "x", "description": "", "spec": [
        {"question_name": "a", "variable": "v", "type": "multiplechoice", "required": True, "choices": ["a"],
         "default": "b"},
        {"question_name": "b", "variable": "v", "type": "boolean", "required": "yes"}]}
    errors = awx_survey_errors(bad)
    assert len(errors) == 4, errors  # default not a choice, required not bool, duplicate variable, bad type


def test_pipeline_survey_asks_for_the_run_specs_main_fields():
    asked = {q["variable"] for q in SURVEYS["pipeline"]["spec"]}
    assert {"run_id", "nodes", "gpu", "gpu_count", "providers", "max_price_per_hour", "interruptible", "image",
            "command", "max_cost", "ttl", "target", "keep_on_failure", "runs_dir"} <= asked


def test_survey_defaults_survive_launch_validation():
    """AWX re-validates each default at launch and silently drops one that fails. Only multiselect defaults are
    dropped (AWX stores them as newline-separated strings but wants lists at launch): then the pipeline's own
    default applies, which is documented in docs/awx.md."""
    for name, survey in SURVEYS.items():
        for q in survey["spec"]:
            if "default" in q and q["type"] != "multiselect":
                assert awx_survey_value_errors(q, q["default"]) == [], f"{name}: {q['variable']}"


def test_launch_extra_vars_as_awx_builds_them():
    answers = {"run_id": "exp-42", "command": "python train.py", "providers": ["vast"]}
    ev = awx_launch_extra_vars(SURVEYS["pipeline"], answers)
    assert ev["nodes"] == 1 and ev["gpu_count"] == 1 and ev["max_price_per_hour"] == 0.7
    assert ev["interruptible"] == "false" and ev["keep_on_failure"] == "false"  # strings: no boolean survey type
    assert ev["providers"] == ["vast"] and ev["runs_dir"] == "/runs" and ev["target"] == "cloud"
    assert "providers" not in awx_launch_extra_vars(SURVEYS["pipeline"], {"run_id": "exp-42", "command": "x"})
    assert awx_survey_value_errors(SURVEYS["pipeline"]["spec"][0], "x") != []  # run_id shorter than its min
