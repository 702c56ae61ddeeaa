"""W&B offline runs at realistic shape, written by the real wandb SDK and read back by
W&B's own reader (run as a script, so wandb's global state never touches the tests).

    python wandb_realistic.py write WORK_DIR        # WANDB_MODE=offline, no network
    python wandb_realistic.py dump WANDB_DIR > wandb.json

`write`: two projects, 13 runs: a sweep of six grouped runs (mixed config types,
nested config, 60-step histories with `/` and nested keys, a NaN, summary values never
logged), two runs with the same display name, a failed run (exit code 1), a run that
logs a dataset artifact, a run with media (a table, images, a histogram), and a run
killed with SIGKILL after writing more than one 32 KiB block (no exit record; the file
ends at a block boundary), and one killed before its first block (the file holds only
its header).

`dump`: for every run folder, the records as `wandb leet inspect --json` prints them
(W&B's Go core reading the `.wandb` file; there is no Python reader of offline runs
since the SDK moved to its core) and its `--summary --json` (the state W&B derives: run
id, name, project, tags, notes, config, state, exit code, summary), as JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path


def offline_env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        "WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_DIR": str(root),
        "WANDB_CONFIG_DIR": str(root / ".config"), "WANDB_CACHE_DIR": str(root / ".cache"),
        "WANDB_DATA_DIR": str(root / ".data"), "WANDB_DISABLE_GIT": "true",
        "WANDB_SERVICE": "",  # never a W&B core service another process started
    }


def write(work: str) -> None:
    import numpy as np
    import wandb

    os.chdir(work)
    # first, before this process starts W&B's core service (which a child would share)
    for steps in (3000, 3):  # killed: after several blocks, and before the first one
        subprocess.run([sys.executable, __file__, "killed", str(steps)], check=False, timeout=300)
    Path("train.csv").write_text("a,b\n1,2\n3,4\n")
    for i in range(6):
        run = wandb.init(
            project="mnist", name=f"lr-{i}", group="sweep-1", job_type="train",
            tags=["sweep", f"seed{i % 2}"], notes=f"sweep point {i}",
            config={"lr": 10.0 ** -(i + 1), "epochs": 60, "optimizer": {"name": "adam", "beta1": 0.9},
                    "augment": i % 2 == 0, "layers": [64, 32], "arch": "mlp"},
        )
        for step in range(60):
            run.log({"loss": (i + 1) / (step + 1), "val/acc": step / 60 + i / 100,
                     "grad": {"norm": float("nan") if (i, step) == (2, 30) else 1.0 + step / 7}})
        run.summary["best_acc"] = 0.9 + i / 100
        run.summary["verdict"] = "good" if i % 2 else "bad"
        run.finish()
    for i in range(2):  # the same display name twice: two runs
        run = wandb.init(project="mnist", name="baseline", config={"lr": 0.1, "seed": i})
        for step in range(5):
            run.log({"loss": 1.0 / (step + 1 + i)})
        run.finish()
    run = wandb.init(project="mnist", name="diverged", config={"lr": 10.0})
    run.log({"loss": 5.0})
    run.log({"loss": 50.0})
    run.finish(exit_code=1)
    run = wandb.init(project="cifar", name="prepare", job_type="data", config={"split": 0.8})
    art = wandb.Artifact("train-data", type="dataset")
    art.add_file("train.csv")
    run.log_artifact(art)
    run.log({"rows": 2})
    run.finish()
    run = wandb.init(project="cifar", name="with-media", config={"lr": 0.01})
    for step in range(3):
        run.log({"loss": 1.0 / (step + 1)})
    run.log({"preds": wandb.Table(columns=["x", "y"], data=[[1, 2], [3, 4]])})
    run.log({"img": wandb.Image(np.zeros((4, 4, 3), dtype=np.uint8)),
             "h": wandb.Histogram([1, 2, 3, 4])})
    run.log({"img": wandb.Image(np.ones((4, 4, 3), dtype=np.uint8))})
    run.finish()


def killed(steps: int) -> None:
    import psutil

    os.environ.pop("WANDB_SERVICE", None)  # a core of its own, not a parent's
    import wandb

    run = wandb.init(project="cifar", name=f"killed-{steps}", config={"lr": 0.5})
    for step in range(steps):
        run.log({"loss": 1.0 / (step + 1), "acc": step / steps})
    # W&B's core service first, then the script, as a node failure or the OOM killer
    # does (the script killed alone, its core would still write an exit record)
    children = psutil.Process().children(recursive=True)
    cores = [c for c in children if "wandb-core" in c.name()]
    for child in children:
        child.kill()
    psutil.wait_procs(children, timeout=30)
    # the test expects a crash only where the core was this script's to kill
    Path(f"killed-{steps}.cores").write_text(str(len(cores)))
    os.kill(os.getpid(), signal.SIGKILL)


def dump(wandb_dir: str) -> None:
    from concurrent.futures import ThreadPoolExecutor

    cli = str(Path(sys.executable).parent / "wandb")
    folders = sorted(d for d in Path(wandb_dir).iterdir() if d.name.startswith("offline-run-"))

    def inspect(folder: Path) -> dict:
        records = subprocess.run([cli, "leet", "inspect", "--json", str(folder)], check=True,
                                 capture_output=True, text=True, timeout=120).stdout
        summary = subprocess.run([cli, "leet", "inspect", "--summary", "--json", str(folder)],
                                 check=True, capture_output=True, text=True, timeout=120).stdout
        return {"records": [json.loads(line) for line in records.splitlines() if line.strip()],
                "summary": json.loads(summary)}

    with ThreadPoolExecutor(max_workers=2) as pool:  # each call mostly starts W&B's CLI
        out = dict(zip((f.name for f in folders), pool.map(inspect, folders), strict=True))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    if sys.argv[1] == "write":
        write(sys.argv[2])
    elif sys.argv[1] == "killed":
        killed(int(sys.argv[2]))
    else:
        dump(sys.argv[2])
