# The sweep as Snakemake sees it: the validated config and its chunks.
from shortcutbench.config import validate_config
from shortcutbench.sweep import CHUNK_PATTERN, plan_chunks
from shortcutbench.devices import is_gpu


SCHEMA = os.path.join(workflow.basedir, "workflow", "schemas", "config.schema.yaml")
SWEEP = validate_config(config, SCHEMA)
CHUNKS = {chunk.name: chunk for chunk in plan_chunks(SWEEP, "results")}


wildcard_constraints:
    chunk=CHUNK_PATTERN,


def chunk_files():
    return [f"results/cells/{name}.csv" for name in sorted(CHUNKS)]
