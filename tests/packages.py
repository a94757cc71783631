"""A minimal deployment package of the accelerator (``fracskip.runtime.accelerator_driver``'s layout), written by
hand for the tests that refuse damaged packages (tests/test_bad_inputs.py, tests/test_loaders_property.py): the
tiny network's streams (28x28 UINT8 pixels in; ten INT24 head outputs and two gates' decisions out), no bitstream.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def settings() -> tuple[dict, dict]:
    """(FINN's driver/settings.json, fracskip's driver/fracskip.json) of the package."""
    io = {"idt": ["DataType['UINT8']"], "odt": ["DataType['INT24']", "DataType['UINT2']"],
          "ishape_normal": [[1, 28, 28, 1]], "ishape_folded": [[1, 28, 28, 1]], "ishape_packed": [[1, 28, 28, 1]],
          "oshape_normal": [[1, 10], [1, 2]], "oshape_folded": [[1, 10, 1], [1, 2, 1]],
          "oshape_packed": [[1, 10, 3], [1, 2, 1]], "idma_names": ["idma0"], "odma_names": ["odma0", "odma1"],
          "num_inputs": 1, "num_outputs": 2}
    finn = {"driver_information": {"driver_type": "FINNDMAOverlay", "platform": "zynq-iodma", "fclk_mhz": 100.0,
                                   "io_shape_dict": io}}
    extra = {"format": "fracskip-accelerator/1",
             "host": {"input_shape": [1, 1, 28, 28], "pre": [{"op": "Transpose", "perm": [0, 2, 3, 1]}],
                      "post": [{"op": "Mul", "param": "scale"}, {"op": "Add", "param": "bias"}]},
             "decisions": {"gates": [0, 1], "blocks": [1, 2], "bit_menu": [0, 4, 8],
                           "bitops": [[0, 4.0, 16.0], [0, 4.0, 16.0]], "fixed_bitops": 10.0,
                           "full_8bit_bitops": 42.0},
             "classes": [str(c) for c in range(10)], "bitfile": None}
    return finn, extra


def write(folder: Path, change=None) -> Path:
    """The package in ``folder``; ``change(folder, settings, extra)`` damages it before it is written (a dict set
    to None is not written)."""
    finn, extra = settings()
    (folder / "driver").mkdir(parents=True)
    np.savez(folder / "driver" / "fracskip_host.npz", scale=np.ones(10, np.float32), bias=np.zeros(10, np.float32))
    if change:
        change(folder, finn, extra)
    for name, content in (("settings.json", finn), ("fracskip.json", extra)):
        if content is not None:
            (folder / "driver" / name).write_text(json.dumps(content))
    return folder
