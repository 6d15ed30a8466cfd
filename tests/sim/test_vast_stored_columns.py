"""/api/v1/instances/ filters and sorts on columns computed apart from the full row; they must agree."""

import pytest

from gpuops.sim.api_vast import instance_json, stored_columns
from gpuops.sim.catalog import load_catalog
from gpuops.sim.engine import Engine, Instance


@pytest.mark.parametrize("phase,reason", [("running", None), ("provisioning", None), ("starting", None),
                                          ("exited", "user"), ("exited", "preempted"), ("error", None)])
def test_stored_columns_equal_the_rendered_row(tmp_path, phase, reason):
    engine = Engine(load_catalog(), tmp_path)
    m = next(iter(engine.catalog.vast_machines.values()))
    inst = Instance(id=engine.new_vast_id(), provider="vast", name="cols", hardware=m.hardware, gpu_type=m.gpu_name,
                    gpu_count=m.num_gpus, price_per_hour=m.dph_total, image="img", created_at=engine.clock.now(),
                    machine_id=m.machine_id, api_only=True, interruptible=reason == "preempted", bid=0.2)
    engine.add_instance(inst)
    inst.phase, inst.stop_reason = phase, reason
    full = instance_json(engine, inst)
    cols = stored_columns(engine, inst)
    assert cols == {k: full[k] for k in cols}
