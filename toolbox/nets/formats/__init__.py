"""Readers of foreign weight files, none of which runs anything a file holds:

- ``torch_file``: a PyTorch state dict in the legacy (pre-1.6) pickle format (EfficientNet-Lite);
- ``torchscript_file``: a TorchScript archive's module tree and tensors (the 2015 Inception v3);
- ``caffe_file``: a Caffe ``.caffemodel``'s layers with weights (GoogLeNet);
- ``graphdef_file``: a frozen TensorFlow ``GraphDef``'s constants and attributes (GoogLeNet).

What they share lives beside them, not inside one of them: ``guards`` (the refusal, the file
and element limits, reading a whole file under its limit), ``protobuf`` (the wire format the
Caffe and GraphDef readers walk) and ``torch_pickle`` (the metered unpickler and the checks of
a tensor against its storage that both PyTorch readers use). No reader imports another.
"""
