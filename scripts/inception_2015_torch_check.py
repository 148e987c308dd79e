"""Compare deepvis's inception_v3_2015 with the TorchScript archive run by torch itself.

torch is never a dependency of deepvis: give the Python of a throwaway venv that has it, e.g.

    python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch numpy
    scripts/venv-run python scripts/inception_2015_torch_check.py --torch-python /tmp/torchvenv/bin/python

The example photos are fitted to 299 px by deepvis; torch runs ``torch.jit.load(archive)`` on
the same pixels ((x - 128) / 128, NCHW) and its ``mixed_4`` / ``mixed_10`` submodules' outputs
are compared with deepvis's ``mixed4`` / ``mixed10``: per photo, max |difference| over max
|torch value|, and the relative L2 error.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TORCH_SIDE = """
import sys, numpy as np, torch
archive, folder = sys.argv[1], sys.argv[2]
m = torch.jit.load(archive, map_location="cpu").eval()
x = torch.from_numpy((np.load(folder + "/inputs.npy") - 128.0) / 128.0).permute(0, 3, 1, 2).float().contiguous()
with torch.no_grad():
    h = x
    for name, module in m.net.layers.named_children():
        h = module(h)
        if name in ("mixed_4", "mixed_10"):
            np.save(f"{folder}/torch_{name}.npy", h.permute(0, 2, 3, 1).numpy())
print("torch", torch.__version__)
"""

PHOTOS = ("chelsea.png", "coffee.png", "astronaut.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--torch-python", required=True, help="a Python that can import torch")
    args = parser.parse_args()
    from toolbox.images import read_image
    from toolbox.nets import Probe, load_network
    from toolbox.nets.registry import _package_file
    from toolbox.settings import bundled, load_settings

    net = load_network(load_settings(None, {"model": "inception_v3_2015"}))
    images = np.stack([net.fit_input(read_image(bundled("examples") / p)).astype(np.float32) for p in PHOTOS])
    ours = Probe(net, ["mixed4", "mixed10"]).batch(images)
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / "inputs.npy", images)
        subprocess.run([args.torch_python, "-c", TORCH_SIDE, str(_package_file(net.spec)), folder], check=True)
        theirs = {"mixed4": np.load(Path(folder) / "torch_mixed_4.npy"),
                  "mixed10": np.load(Path(folder) / "torch_mixed_10.npy")}
    worst = 0.0
    for layer in ("mixed4", "mixed10"):
        for i, photo in enumerate(PHOTOS):
            a, b = ours[layer][i].astype(np.float64), theirs[layer][i].astype(np.float64)
            peak = np.abs(a - b).max() / np.abs(b).max()
            l2 = np.linalg.norm(a - b) / np.linalg.norm(b)
            worst = max(worst, peak)
            print(f"{layer:8s} {photo:14s} max|diff|/max|torch| {peak:.1e}   relative L2 {l2:.1e}")
    print(f"worst: {worst:.1e} ({'within' if worst <= 1e-4 else 'OUTSIDE'} 1e-4)")
    sys.exit(0 if worst <= 1e-4 else 1)


if __name__ == "__main__":
    main()
