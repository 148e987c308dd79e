"""Print the `layers:` list of a model spec: the outputs of every EfficientNet-Lite block.

Usage: python scripts/list_block_outputs.py efficientnet_lite0
(the spec's other keys must already be in models/<name>.yaml).
"""

import sys

from toolbox.nets import load_network
from toolbox.settings import load_settings


def main(name: str) -> None:
    model = load_network(load_settings(None, {"model": name})).model
    names = ["stem_relu"]
    blocks = sorted({int(l.name.split("_")[0][5:]) for l in model.layers if l.name.startswith("block")})
    for b in blocks:
        add = f"block{b}_add"
        names.append(add if any(l.name == add for l in model.layers) else f"block{b}_project_bn")
    names.append("head_relu")
    for n in names:
        print(f"  - {{name: {n}, channels: {model.get_layer(n).output.shape[-1]}}}")


if __name__ == "__main__":
    main(sys.argv[1])
