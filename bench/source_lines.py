"""Source lines of a linked image's alternative sites: `altlink manifest --source-lines`
beside `manifest` alone and beside binutils' `aarch64-linux-gnu-addr2line` on the same
addresses, taking turns (docs/performance.md, "Source lines").

    .venv/bin/python bench/source_lines.py [--image VMLINUX] [--reps N] [--before DIR]

The image defaults to Debian's vmlinux (tools/fetch_kernel.py --offline). Each command runs
once first, not counted; the figures are the best run (median in brackets) of wall time,
CPU (user + system) and peak RSS, from wait4. Output goes to /dev/null. ``--before DIR``
adds `manifest --source-lines` run from another checkout's package (``git worktree add DIR
COMMIT``), once per round.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed(cmd, stdin=None, env=None):
    with open(os.devnull, "wb") as out:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=stdin, stdout=out, stderr=subprocess.DEVNULL, env=env,
                             cwd="/")  # not a checkout: python -m would import its package
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) not in (0, 1):
        sys.exit(f"failed: {' '.join(map(str, cmd))}")
    return wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--image")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--before")
    args = ap.parse_args()
    image = args.image
    if image is None:
        kdir = subprocess.run([sys.executable, str(ROOT / "tools" / "fetch_kernel.py"),
                               "--offline", "-q"], capture_output=True, text=True).stdout.strip()
        image = str(Path(kdir) / "vmlinux")
    image = os.path.abspath(image)
    env_py = [sys.executable, "-m", "altlink", "manifest"]
    proc = subprocess.run([*env_py, image], capture_output=True, text=True)
    sites = [e["site"]["address"] for e in json.loads(proc.stdout)["entries"]]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(sites) + "\n")
        addresses = f.name
    commands = {
        "altlink manifest --source-lines": lambda: timed([*env_py, "--source-lines", image]),
        "altlink manifest": lambda: timed([*env_py, image]),
        "aarch64-linux-gnu-addr2line": lambda: timed(
            ["aarch64-linux-gnu-addr2line", "-e", image], stdin=open(addresses)),
    }
    if args.before:
        env = dict(os.environ, PYTHONPATH=str(Path(args.before).resolve()))
        commands[f"manifest --source-lines from {args.before}"] = lambda: timed(
            [*env_py, "--source-lines", image], env=env)
    load = [os.getloadavg()[0]]
    runs: dict[str, list] = {name: [] for name in commands}
    for rep in range(args.reps + 1):
        for name, run in commands.items():
            r = run()
            load.append(os.getloadavg()[0])
            if rep:
                runs[name].append(r)
    os.unlink(addresses)
    print(f"{image}: {len(sites)} sites; load (1 min) {load[0]:.2f} at the start, "
          f"{load[-1]:.2f} at the end, {max(load):.2f} at most; {os.cpu_count()} CPUs")
    print("| command | wall, best (median) | CPU, best | peak RSS |")
    print("|---|---|---|---|")
    for name, rs in runs.items():
        wall = [r[0] for r in rs]
        print(f"| {name} | {min(wall):.2f} s ({statistics.median(wall):.2f} s) | "
              f"{min(r[1] for r in rs):.2f} s | {max(r[2] for r in rs):.0f} MB |")


if __name__ == "__main__":
    main()
