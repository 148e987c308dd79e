"""deepvis: see what a convolutional network has learned, from Python.

    import deepvis
    net = deepvis.load("efficientnet_lite0")            # a name, a .keras/.h5/spec file, or a keras.Model
    photo = deepvis.read_image("examples/chelsea.png")  # RGB uint8, any size
    net.predict(photo)                                   # top classes with probabilities
    deepvis.units(net, "block9_add", [3, 17])            # unit images at the defaults
    deepvis.attribute(net, photo, "block9_add:17", method="guided")  # a map at the photo's size
    deepvis.dream(net, photo)                            # at the photo's size
    deepvis.accentuate(net, photo, "block9_add:17")
    deepvis.circuit(net, photo, "block13_add:26")        # strongest inputs and outputs with their shares
    deepvis.crops(net, "examples/", "block9_add")        # each unit's top crops over a folder of photos
    deepvis.live(net, "examples/")                       # the live window (headless=True: dashboards to files)

Each call takes the options of its command as keywords, with the same defaults (the settings
the network was loaded with) and checks; a mistake is a one-line ``deepvis.DeepvisError``.
Results hold their arrays (``np.asarray(result)``), show themselves in Jupyter and ``save``.
The ``deepvis`` command is made of the same calls.
"""

from toolbox import __version__
from toolbox.library import (
    Circuit,
    Classes,
    Crops,
    DeepvisError,
    Map,
    Net,
    Picture,
    Result,
    UnitImages,
    accentuate,
    attribute,
    circuit,
    crops,
    dream,
    live,
    load,
    read_image,
    units,
)

__all__ = ["Circuit", "Classes", "Crops", "DeepvisError", "Map", "Net", "Picture", "Result", "UnitImages",
           "__version__", "accentuate", "attribute", "circuit", "crops", "dream", "live", "load", "read_image", "units"]
