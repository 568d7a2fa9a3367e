"""Executors: construction and options, what must be picklable, and the Ray executor
on a local Ray instance (skipped when Ray is not installed)."""

from __future__ import annotations

import importlib.util
import os
import signal
import sys
import types
from pathlib import Path

import pytest
import toy_models

from lightning_ticktock import TickTockDriver, TickTockError
from lightning_ticktock.executors import (
    InProcessExecutor,
    LocalProcessExecutor,
    make_executor,
)
from lightning_ticktock.executors.ray import (
    RayNotInstalledError,
    _node_capacity,
    import_ray,
    ray_task_options,
)
from lightning_ticktock.space import Choice, Float, Int

SPACE = [Float("lr", 1e-3, 0.3, log=True), Int("epochs", 1, 2), Choice("delay", [0.0])]
OK = {"lr": 0.1, "epochs": 1, "delay": 0.0}
DIE_LR = 0.0123  # a trial with this learning rate kills its worker process
DEATHS_ENV = "TICKTOCK_TEST_DEATHS"

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None,
                               reason="ray is not installed: pip install 'lightning-ticktock[ray]'")


def model_or_die(params):
    if abs(params["lr"] - DIE_LR) < 1e-12:
        where = os.environ.get(DEATHS_ENV)
        if where:
            with open(where, "a") as f:
                f.write(f"{os.getpid()}\n")
        os.kill(os.getpid(), signal.SIGKILL)
    return toy_models.make_model(params)


def make_driver(**kw):
    base = {"model_fn": toy_models.make_model, "trainer_fn": toy_models.trainer_fn,
            "space": SPACE, "max_cost": 60.0, "seed": 0, "quiet": True, "n_initial": 20}
    base.update(kw)
    return TickTockDriver(**base)


# ------------------------------------------------------------------ construction


def test_make_executor_kinds_and_errors():
    ex = make_executor(None, 1)
    assert isinstance(ex, InProcessExecutor) and not ex.needs_pickle
    ex = make_executor(None, 3, gpus=[])
    assert isinstance(ex, LocalProcessExecutor) and ex.n_workers == 3 and ex.needs_pickle
    ex.shutdown()
    with pytest.raises(TickTockError, match="runs one trial at a time; got n_workers=2"):
        make_executor("inprocess", 2)
    with pytest.raises(TickTockError, match="executor='slurm' must be one of"):
        make_executor("slurm", 2)
    with pytest.raises(TickTockError, match="start_method='fork' must be"):
        LocalProcessExecutor(2, start_method="fork")


def test_local_workers_get_one_gpu_each_and_share_the_cores():
    ex = LocalProcessExecutor(4, gpus=[0, 1])
    assert [ex._gpu_of(i) for i in range(4)] == [0, 1, 0, 1]
    assert ex._threads == max(1, (os.cpu_count() or 1) // 4)
    assert LocalProcessExecutor(2, gpus=[])._gpu_of(1) is None
    assert LocalProcessExecutor(2, gpus=[], threads=1)._threads == 1


def test_ray_task_options_map_resources():
    assert ray_task_options(None) == {"num_cpus": 1.0, "num_gpus": 0.0, "max_retries": 0}
    assert ray_task_options({"cpu": 2, "GPU": 0.5, "memory": 2e9, "A100": 1}) == {
        "num_cpus": 2.0, "num_gpus": 0.5, "memory": 2_000_000_000,
        "resources": {"A100": 1.0}, "max_retries": 0,
    }


@pytest.mark.parametrize(
    "resources, match",
    [
        ([("cpu", 1)], "must be a dict"),
        ({"cpu": -1}, r"resources_per_trial\['cpu'\]=-1 must be a finite number >= 0"),
        ({"gpu": "one"}, r"resources_per_trial\['gpu'\]='one' must be a number"),
        ({"cpu": True}, "must be a number"),
        ({1: 1}, "key 1 must be a resource name"),
    ],
)
def test_ray_task_options_errors(resources, match):
    with pytest.raises(TickTockError, match=match):
        ray_task_options(resources)
    with pytest.raises(TickTockError, match=match):  # the driver checks them up front
        make_driver(executor="ray", n_workers=2, resources_per_trial=resources)


def test_node_capacity_counts_trials_per_node():
    nodes = [{"Alive": True, "Resources": {"CPU": 8.0, "GPU": 2.0}},
             {"Alive": True, "Resources": {"CPU": 4.0}},
             {"Alive": False, "Resources": {"CPU": 64.0, "GPU": 8.0}}]
    assert _node_capacity(nodes, {"CPU": 2, "GPU": 1}) == 2
    assert _node_capacity(nodes, {"CPU": 2, "GPU": 0}) == 6
    assert _node_capacity(nodes, {"CPU": 1, "A100": 1}) == 0


def test_ray_options_need_executor_ray():
    with pytest.raises(TickTockError, match="options of executor='ray', not of executor='local'"):
        make_driver(n_workers=2, resources_per_trial={"gpu": 1})
    with pytest.raises(TickTockError, match="ray_address='auto'"):
        make_driver(ray_address="auto")


def test_missing_ray_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(RayNotInstalledError, match=r"pip install 'lightning-ticktock\[ray\]'"):
        import_ray()
    with pytest.raises(ImportError, match=r"lightning-ticktock\[ray\]"):
        make_driver(executor="ray", n_workers=2)


# ------------------------------------------------------------------ picklability


def test_lambdas_and_nested_functions_are_refused_for_local_workers():
    def nested_datamodule(params):
        return None

    cases = [
        ({"model_fn": lambda p: None}, "model_fn="),
        ({"datamodule_fn": nested_datamodule}, "datamodule_fn="),
        ({"trainer_fn": lambda p: {}}, "trainer_fn="),
        ({"cost": lambda trainer, module: 1.0}, "cost="),
        ({"trainer_kwargs": {"plugins": [lambda: None]}}, "trainer_kwargs="),
    ]
    for kwargs, name in cases:
        with pytest.raises(TickTockError, match=f"{name}.*cannot be sent to worker processes"
                                                ".*must be importable"):
            make_driver(n_workers=2, **kwargs)
    with pytest.raises(TickTockError, match="must be importable"):
        make_driver(executor="local", model_fn=lambda p: None)  # one local worker too
    make_driver(model_fn=lambda p: None)  # in-process: nothing is sent
    make_driver(n_workers=2, model_fn=toy_models.make_model)  # importable: fine


def test_functions_of_an_interactive_main_are_refused(monkeypatch):
    main = types.ModuleType("__main__")  # a REPL's or a notebook's: no __file__

    def make_model(params):
        return None

    make_model.__module__, make_model.__qualname__ = "__main__", "make_model"
    main.make_model = make_model
    monkeypatch.setitem(sys.modules, "__main__", main)
    with pytest.raises(TickTockError, match="defined in an interactive session"):
        make_driver(n_workers=2, model_fn=make_model)


@needs_ray
def test_ray_sends_lambdas_by_value():
    make_driver(executor="ray", n_workers=2, model_fn=lambda p: None)  # cloudpickle: fine


# ------------------------------------------------------------------ Ray, local instance


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    ray = pytest.importorskip("ray")
    deaths = tmp_path_factory.mktemp("ray") / "deaths"
    # Ray workers do not inherit pytest's sys.path: give them tests/ to import from.
    path = [str(Path(__file__).parent), *filter(None, [os.environ.get("PYTHONPATH")])]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join(path),
                                       DEATHS_ENV: str(deaths)}})
    yield deaths
    ray.shutdown()


@needs_ray
def test_ray_study_records_a_lost_worker_as_failed_and_goes_on(local_ray, tmp_path):
    driver = make_driver(executor="ray", n_workers=2, resources_per_trial={"cpu": 1},
                         model_fn=model_or_die, storage=tmp_path / "s.db",
                         heartbeat_interval=1.0)
    driver.enqueue(dict(OK, lr=DIE_LR))
    driver.enqueue(OK)
    study = driver.run(n_trials=3)
    by_id = {t.id: t for t in study.trials}
    assert sorted(by_id) == [0, 1, 2] and study.n_finished == 3
    assert by_id[0].status == "failed"
    assert "WorkerCrashedError" in by_id[0].error
    assert by_id[1].status == "completed" and by_id[2].status == "completed"
    assert by_id[1].cost > 0 and by_id[1].metrics  # told with the worker's measurements
    # max_retries=0: the crashed task ran once, it was not silently rerun.
    assert len(local_ray.read_text().split()) == 1


@needs_ray
def test_ray_refuses_resources_no_local_node_has(local_ray):
    from lightning_ticktock.executors.ray import RayExecutor

    ex = RayExecutor(2, resources_per_trial={"cpu": 1})
    assert ex.options["max_retries"] == 0
    ex.shutdown()
    ex = RayExecutor(2, resources_per_trial={"gpu": 1})  # Ray was not started by us: warn
    ex.shutdown()
    ex.started_ray = True
    with pytest.raises(TickTockError, match="no trial could ever start"):
        ex._check_resources()
