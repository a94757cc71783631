"""The development backends of the runtime controller (``fracskip.runtime.controller.Backend``): the trained
torch/Brevitas modules (``torch_backend``) and the exported graphs under qonnx/FINN's executor
(``qonnx_backend``, the golden reference). The Verilator model of a build is ``fracskip.hls.accelerator``'s.
They import torch, qonnx and FINN, so they live here; ``fracskip.runtime`` is what a board runs (numpy, pynq)."""
