"""What the ``gpuops`` exit codes mean and how each is derived.

    0  succeeded      the run record says ``succeeded``, a detached launch's job runs (state ``detached``), an
                      ``up`` run is ``ready``, a command had nothing to do (``down`` of a torn-down run), or, for
                      commands that act rather than run a pipeline, ansible-playbook exited 0
    1  run failed     the run ran and ended badly: record status ``failed``, ``budget_exceeded``, ``preempted``
                      or ``cancelled``
    2  bad input      nothing was spent: the spec file or arguments are wrong (caught before ansible runs; an
                      unknown spec key too), the run's state does not allow the command (docs/lifecycle.md), or
                      ansible rejected them (rc 4 parse error with no task failure, rc 5 bad options), or the first
                      failure is the spec's validation (``gpu.ops.run_spec``, a ``validate_argument_spec`` / ``assert``
                      task, or any task in a play named ``preflight...`` / ``validate...``) and no instance was created,
                      or the run record says it failed in ``preflight`` (no offer under the ceiling) with no instance
    3  infrastructure ansible-playbook could not run or finish its own bookkeeping: runner error/timeout, rc 250
                      or a missing playbook, a pipeline that left no run record, a record still ``running`` after
                      the playbook ended, or a failed action command (down/reap/cost/status --live/offers)

Order: bad input wins over everything (nothing was created); then the run record when there is one; then
ansible's exit code.

``gpuops exec`` passes the job's own exit code through, so its own codes stay out of the usual range: 125 exec
was refused by the run's state or could not do its part (deploy, bootstrap, results home), 130 interrupted
(the job was stopped on every node, the nodes stay), 255 a node was lost or unreachable mid-job.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_RUN_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_INFRA = 3

RUN_FAILED_STATUSES = frozenset({"failed", "budget_exceeded", "preempted", "cancelled"})
VALIDATION_ACTIONS = frozenset({"validate_argument_spec", "assert", "run_spec"})
EXEC_REFUSED = 125
EXEC_INTERRUPTED = 130
EXEC_NODE_LOST = 255
PREFLIGHT_PLAY_PREFIXES = ("preflight", "validate")
ANSIBLE_BAD_INPUT_RCS = frozenset({4, 5})


def _is_bad_input(result) -> bool:
    # rc 4 is also "hosts unreachable": a parse error is only when no task ran into anything
    if result.rc in ANSIBLE_BAD_INPUT_RCS and not result.failures:
        return True
    record = getattr(result, "record", None) or {}
    if record.get("failure_step") == "preflight" and not record.get("instances"):
        return True  # the pipeline's offer check: nothing under the ceiling, unknown GPU; nothing was rented
    if not result.failures:
        return False
    first = result.failures[0]
    action = (first.action or "").rsplit(".", 1)[-1]
    if action == "run_spec":
        return True  # the spec check or the lifecycle refused: this command created nothing
    if result.instances:
        return False
    play = (first.play or "").strip().lower()
    return action in VALIDATION_ACTIONS or play.startswith(PREFLIGHT_PLAY_PREFIXES)


def exit_code_for(result, kind: str = "run") -> int:
    """``kind="run"``: a pipeline run (launch); ``kind="action"``: a command acting on runs (down, reap, cost ...)."""
    if _is_bad_input(result):
        return EXIT_BAD_INPUT
    if kind == "action":
        if result.rc == 0 and result.status != "error":
            return EXIT_OK
        return EXIT_INFRA
    record = result.record
    if record is not None:
        status, state = record.get("status"), record.get("state")
        if status == "succeeded" or (kind == "run" and status == "running" and state == "detached"):
            return EXIT_OK
        if kind == "up" and state == "ready" and result.rc == 0:
            return EXIT_OK
        if status in RUN_FAILED_STATUSES:
            return EXIT_RUN_FAILED
        return EXIT_INFRA  # still "running" (or unknown) after the playbook ended
    if result.status == "error":
        return EXIT_INFRA
    if result.rc == 0:
        return EXIT_OK if result.playbook != "gpu.ops.pipeline" else EXIT_INFRA
    return EXIT_INFRA
