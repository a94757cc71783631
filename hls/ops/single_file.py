"""What the project's own small RTL ops share: one generated Verilog file per node, named after its top module."""

from __future__ import annotations

from pathlib import Path

from .wrapped_rtl import WrappedRTL


class SingleFileRTL(WrappedRTL):
    """Mixin for an RTLBackend op whose HDL is one generated ``<top>.v`` in ``code_gen_dir_ipgen``, the text of
    its ``verilog()``: a wrapped op with no core of its own (see ``WrappedRTL`` on the top module's name)."""

    def generate_hdl(self, model, fpgapart, clk):
        self.write_top(self.verilog(self.name_top()))

    def rtl_sources(self) -> list[Path]:
        return []
