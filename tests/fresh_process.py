"""The ingest stage run in a fresh Python process (argv: its config as JSON, a store folder),
printing as its last line JSON of its properties, its Examples folder, whether TensorFlow was
imported and the process's peak memory: what ingest costs on its own."""

INGEST_IN_A_FRESH_PROCESS = """
import json, re, sys
from edgepipe.components.ingest import stage as ingest
from edgepipe.pipeline.stage import Context, Runtime
from edgepipe.pipeline.store import Store
config = ingest.Config.model_validate(json.loads(sys.argv[1]))
store = Store(sys.argv[2])
context = Context(pipeline_name="fresh", run_id="fresh", seed=0, runtime=Runtime(),
                  scratch_dir=store.scratch_dir("ingest", "fresh"))
result, outputs = store.execute(ingest.SPEC, "fresh", {}, config, context)
print(json.dumps({"splits": result.properties["splits"], "properties": result.properties,
                  "folder": str(outputs["examples"].path),
                  "tensorflow": "tensorflow" in sys.modules,
                  # VmHWM, not ru_maxrss: that one keeps the parent's peak across exec
                  "peak_mb": int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status")
                                           .read())[1]) / 1024}))
"""
