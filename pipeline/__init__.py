"""Orchestration only, no ML: the stage contract (stage.py), config loading (config.py), the
DAG (dag.py), cache keys (cache.py), the artifact store (store.py) and the runner (runner.py).
It imports nothing from edgepipe.models, and a stage only through the module the DAG names."""
