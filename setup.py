"""Packages and data (everything else is in setup.cfg).

models/ and examples/ stay at the top of the checkout, where users edit the specs, and are
shipped inside the package as toolbox.data.models and toolbox.data.examples, so that a
plain (non-editable) install finds them too (see toolbox.settings.bundled).
"""

from setuptools import find_packages, setup

DATA = {"toolbox.data.models": "models", "toolbox.data.examples": "examples"}

setup(
    packages=find_packages(include=["toolbox", "toolbox.*", "deepvis"]) + list(DATA),  # deepvis: the library
    package_dir=DATA,
    package_data={"toolbox.data.models": ["*.yaml", "*.txt"], "toolbox.data.examples": ["*.png", "*.jpg", "*.md"],
                  "toolbox.optvis": ["natural_spectrum.npy"],  # the maco preset's magnitude spectrum
                  "toolbox.outputs": ["class_meanings.tsv.gz"]},  # ImageNet classes by WordNet meaning
)
