"""Everything that knows a concrete network: specs, builders, weights, the Probe."""

from toolbox.nets.network import Network
from toolbox.nets.probe import Observation, Probe
from toolbox.nets.registry import load_network
from toolbox.nets.spec import LayerSpec, ModelSpec, available_specs, load_spec

__all__ = ["LayerSpec", "ModelSpec", "Network", "Observation", "Probe", "available_specs", "load_network",
           "load_spec"]
