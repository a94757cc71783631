"""What the project's own small RTL ops share: one generated Verilog file per node, named after its top module."""

from __future__ import annotations

import os

from .wrapped_rtl import associate_clock


class SingleFileRTL:
    """Mixin for an RTLBackend op whose HDL is one generated ``<top>.v`` in ``code_gen_dir_ipgen``, the text of
    its ``verilog()``. The top module's name is fixed at HDL generation (``gen_top_module``): FINN renames nodes
    after generating their HDL (GiveUniqueNodeNames in ZynqBuild, and again per partition), and keeps the HDL
    whose folder exists, so the file list and the IPI cell must not be derived from the node's current name."""

    def _top(self) -> str:
        return self.get_nodeattr("gen_top_module") or self.get_verilog_top_module_name()

    def generate_hdl(self, model, fpgapart, clk):
        self.write_hdl(self.verilog())

    def write_hdl(self, text: str) -> None:
        code_dir = self.get_nodeattr("code_gen_dir_ipgen")
        top = self.get_verilog_top_module_name()
        with open(os.path.join(code_dir, f"{top}.v"), "w") as f:
            f.write(associate_clock(text, top, self.get_verilog_top_module_intf_names()))
        self.set_nodeattr("gen_top_module", top)
        self.set_nodeattr("ipgen_path", code_dir)
        self.set_nodeattr("ip_path", code_dir)

    def get_rtl_file_list(self, abspath=False):
        prefix = (self.get_nodeattr("code_gen_dir_ipgen") + "/") if abspath else ""
        return [f"{prefix}{self._top()}.v"]

    def code_generation_ipi(self):
        cmd = [f"add_files -norecurse {f}" for f in self.get_rtl_file_list(abspath=True)]
        cmd.append(f"create_bd_cell -type module -reference {self._top()} {self.onnx_node.name}")
        return cmd
