"""Write docs/tour.ipynb: the deepvis session on the bundled photos, executed, with its
outputs stored so a code host shows its pictures. Run it again after changing the library:

    scripts/venv-run python scripts/make_tour.py
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parents[1] / "docs"  # beside the README's pictures; the photos in examples/

CELLS = [
    ("md", "# A tour of deepvis\n\nWhat EfficientNet-Lite0 sees in a photo of a cat, from Python: the calls the "
           "`deepvis` command is made of, with the same defaults. Every result shows itself here, gives its "
           "array to `np.asarray` and has `save(path)`."),
    ("code", "import numpy as np\nimport deepvis\n\nnet = deepvis.load(\"efficientnet_lite0\")  # a name, a file, "
             "or a keras.Model\nnet"),
    ("code", "photo = deepvis.read_image(\"../examples/chelsea.png\")  # RGB uint8, any size\nnet.predict(photo)"),
    ("md", "**Unit images**: what two units of `block9_add` respond to most, made by gradient ascent."),
    ("code", "deepvis.units(net, \"block9_add\", [3, 17])"),
    ("md", "**Attribution**: what in *this* photo drives unit 17 (guided backprop), at the photo's size, "
           "beside its heat over the photo."),
    ("code", "guided = deepvis.attribute(net, photo, \"block9_add:17\", method=\"guided\")\n"
             "print(guided, np.asarray(guided).shape)\nguided"),
    ("md", "**Feature accentuation**: the photo changed just enough to drive the unit harder."),
    ("code", "deepvis.accentuate(net, photo, \"block9_add:17\")"),
    ("md", "**DeepDream** of the photo, at its size."),
    ("code", "deepvis.dream(net, photo, octaves=3)"),
    ("md", "**Circuit**: the strongest inputs of a deeper unit, with their shares of all contributions."),
    ("code", "deepvis.circuit(net, photo, \"block13_add:26\")"),
]


def notebook() -> nbformat.NotebookNode:
    cells = [new_markdown_cell(text) if kind == "md" else new_code_cell(text) for kind, text in CELLS]
    return new_notebook(cells=cells, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                              "language": "python"}})


def execute(nb: nbformat.NotebookNode, folder: Path, timeout: int = 900) -> nbformat.NotebookNode:
    NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return nb


if __name__ == "__main__":
    nbformat.write(execute(notebook(), HERE), HERE / "tour.ipynb")
    print(f"wrote {HERE / 'tour.ipynb'}")
