"""Every quantizer choice of the DFS network, in one place.

FINN needs static scales, so weights use per-channel scales computed from the weights themselves and
activations use a learned per-tensor scale; activations after ReLU are unsigned. Every block boundary
uses one fixed 8-bit unsigned format (``IFACE_SCALE``) so that any path of the next block can follow,
and skipping a block (passing its input on unchanged) keeps the format.
"""

from __future__ import annotations

import brevitas.nn as qnn
import numpy as np
from brevitas.inject.enum import ScalingImplType
from brevitas.quant import Int8WeightPerChannelFloat, Uint8ActPerTensorFloat

#: The bit menu: 0 means "skip the block"; the others run weights and input activations at that width.
DEFAULT_BIT_MENU: tuple[int, ...] = (0, 2, 4, 8)
#: Bit-width of the stem, the first (ungated) block and the head.
FULL_BITS = 8
#: The block-interface format: UINT8 with this constant scale, i.e. values 0 .. 255 * 2**-5 (< 8.0).
IFACE_SCALE = 2.0**-5
def pool_scale(hw: int) -> float:
    """Interface scale / (H*W): global average pooling of interface integers. The float32 value, as the exported
    graph stores it, so that a float64 evaluation computes what the exported head computes."""
    return float(np.float32(IFACE_SCALE / hw))


#: The image input: raw uint8 pixels divided by 255, quantized exactly.
INPUT_SCALE = 1.0 / 255.0


class WeightQuant(Int8WeightPerChannelFloat):
    """Signed, narrow-range, per-output-channel scale from the absmax of the weights."""


class ActQuant(Uint8ActPerTensorFloat):
    """Unsigned activation, per-tensor scale initialised from statistics and then learned."""


class IfaceQuant(Uint8ActPerTensorFloat):
    """The fixed 8-bit block-interface format (constant scale, shared by every block)."""

    scaling_impl_type = ScalingImplType.CONST
    scaling_init = 255 * IFACE_SCALE


class InputQuant(Uint8ActPerTensorFloat):
    """Raw 8-bit pixels scaled by 1/255: quantizing them is exact, and FINN sees a UINT8 graph input."""

    scaling_impl_type = ScalingImplType.CONST
    scaling_init = 255 * INPUT_SCALE


def conv(cin: int, cout: int, k: int, stride: int, bits: int) -> qnn.QuantConv2d:
    return qnn.QuantConv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False,
                           weight_quant=WeightQuant, weight_bit_width=bits)


def linear(cin: int, cout: int, bits: int) -> qnn.QuantLinear:
    return qnn.QuantLinear(cin, cout, bias=True, weight_quant=WeightQuant, weight_bit_width=bits)


def act(bits: int) -> qnn.QuantReLU:
    """ReLU quantized to ``bits`` unsigned bits with a learned scale."""
    return qnn.QuantReLU(act_quant=ActQuant, bit_width=bits, return_quant_tensor=True)


def requant(bits: int) -> qnn.QuantIdentity:
    """Requantize the (unsigned) 8-bit interface to ``bits`` bits at the entry of a low-precision path."""
    return qnn.QuantIdentity(act_quant=ActQuant, bit_width=bits, return_quant_tensor=True)


def iface() -> qnn.QuantReLU:
    """ReLU into the shared 8-bit interface format."""
    return qnn.QuantReLU(act_quant=IfaceQuant, bit_width=8, return_quant_tensor=True)


def image_input() -> qnn.QuantIdentity:
    return qnn.QuantIdentity(act_quant=InputQuant, bit_width=8, return_quant_tensor=True)
