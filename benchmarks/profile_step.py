"""Where a training step's time goes: TensorFlow's profiler over one epoch, summed by op type.

    python benchmarks/profile_step.py --model "IWAE k=50"        # top op types and ops, graph mode
    python benchmarks/profile_step.py --model VAE --top 30

Trains the IWAE paper's model (as `run.py` does) for two warm-up epochs, profiles the third with
`tf.profiler.experimental`, and prints the self time of each TensorFlow op type and of the most
expensive ops, as milliseconds per training step. The xprof converter (`pip install xprof`, in the
`bench` extra) reads the trace. Work inside XLA-fused kernels is not listed as TF ops.
"""
import argparse
import collections
import json
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def op_stats(logdir):
    """[{type, operation, occurrences, total_self_time (µs)}] from the profile in `logdir`."""
    from xprof.convert import raw_to_tool_data

    files = [str(p) for p in Path(logdir).glob("plugins/profile/*/*.xplane.pb")]
    data, _ = raw_to_tool_data.xspace_to_tool_data(files, "framework_op_stats", {})
    table = json.loads(data)
    table = table[0] if isinstance(table, list) else table
    ids = [col["id"] for col in table["cols"]]
    rows = [dict(zip(ids, [cell.get("v") if cell else None for cell in row["c"]])) for row in table["rows"]]
    return [r for r in rows if r["type"] != "IDLE"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="IWAE k=50", help='"VAE", "IWAE k=5" or "IWAE k=50"')
    p.add_argument("--mode", choices=("graph", "xla"), default="graph")
    p.add_argument("--top", type=int, default=15)
    p.add_argument("--steps-per-execution", type=int, default=1,
                   help="compile()'s steps_per_execution (default 1: what Keras users get)")
    a = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.path.insert(0, str(HERE))
    import keras
    import tensorflow as tf
    import tfvae
    from iwae_mnist import paper_model
    from run import MODELS, data_source

    name, split, _ = data_source()
    ds = tfvae.datasets.load(name, split, batch_size=100, binarize="dynamic", seed=0, drop_remainder=True)
    steps = int(ds.cardinality())
    keras.utils.set_random_seed(0)
    cls, k = MODELS[a.model]
    model = paper_model(getattr(tfvae, cls), k, 0)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, epsilon=1e-4), jit_compile=a.mode == "xla",
                  steps_per_execution=a.steps_per_execution)
    model.fit(ds, epochs=2, verbose=0)
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(logdir)
        model.fit(ds, epochs=1, verbose=0)
        tf.profiler.experimental.stop()
        rows = op_stats(logdir)
    by_type = collections.Counter()
    for r in rows:
        by_type[r["type"]] += r["total_self_time"]
    total = sum(by_type.values())
    print(f"{a.model}, {a.mode} mode, steps_per_execution {a.steps_per_execution}, {steps} steps "
          "profiled; self time summed over threads, ms per step")
    print(f"{'op type':32s} {'ms/step':>8s} {'share':>6s}")
    for op_type, us in by_type.most_common(a.top):
        print(f"{op_type:32s} {us / 1e3 / steps:8.2f} {us / total:6.1%}")
    print(f"\n{'op (name tail)':72s} {'type':24s} {'ms/step':>8s}")
    for r in sorted(rows, key=lambda r: -r["total_self_time"])[:a.top]:
        print(f"{r['operation'][-72:]:72s} {r['type'][:24]:24s} {r['total_self_time'] / 1e3 / steps:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
