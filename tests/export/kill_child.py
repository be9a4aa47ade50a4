"""Child process for the atomic-replace tests (run as a script, killed by the test or by itself).

    kill_child.py export OUT SEED UMASK        the real exporter: a small MoMKE written to OUT
    kill_child.py publish SRC OUT STEP UMASK   SRC copied beside OUT and published over it, the
                                               process SIGKILLing itself at filesystem step STEP
                                               (0: no kill; prints how many steps there were)
ANYMODAL_TEST_NO_EXCHANGE=1 makes the publish fall back to two renames (systems without
renameat2's RENAME_EXCHANGE).
"""

import os
import shutil
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "support"))  # anymodal_testing


def export(out, seed):
    from anymodal.export.bundle import write_bundle
    from anymodal_testing.helpers import make_model, run_config

    model = make_model(seed=seed)
    print("started", flush=True)
    write_bundle(model, run_config(), out)


def publish(src, out, kill_at):
    from anymodal.runtime import atomic_fs

    steps = [0]

    def counted(fn):
        def wrapper(*args, **kwargs):
            steps[0] += 1
            if steps[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            return fn(*args, **kwargs)
        return wrapper

    for name in ("replace", "fsync", "mkdir", "open"):
        setattr(atomic_fs.os, name, counted(getattr(os, name)))
    atomic_fs.shutil.rmtree = counted(shutil.rmtree)
    exchange = atomic_fs._exchange
    atomic_fs._exchange = counted(lambda a, b: False if os.environ.get("ANYMODAL_TEST_NO_EXCHANGE")
                                  else exchange(a, b))
    tmp = atomic_fs.make_temp_dir(out)
    for f in sorted(Path(src).rglob("*")):  # copied file by file: each copy is a step
        dst = tmp / f.relative_to(src)
        if f.is_dir():
            dst.mkdir()
        else:
            counted(shutil.copyfile)(f, dst)
    atomic_fs.publish_dir(tmp, out)
    print("steps", steps[0], flush=True)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    os.umask(int(args[-1], 8))
    if mode == "export":
        export(Path(args[0]), int(args[1]))
    else:
        publish(Path(args[0]), Path(args[1]), int(args[2]))
