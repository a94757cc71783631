"""What the project's own small RTL ops share: one generated Verilog file per node, named after its top module."""

from __future__ import annotations

import os


class SingleFileRTL:
    """Mixin for an RTLBackend op whose HDL is one generated ``<top>.v`` in ``code_gen_dir_ipgen``, the text of
    its ``verilog()``."""

    def generate_hdl(self, model, fpgapart, clk):
        self.write_hdl(self.verilog())
        self.set_nodeattr("gen_top_module", self.get_verilog_top_module_name())

    def write_hdl(self, text: str) -> None:
        code_dir = self.get_nodeattr("code_gen_dir_ipgen")
        with open(os.path.join(code_dir, f"{self.get_verilog_top_module_name()}.v"), "w") as f:
            f.write(text)
        self.set_nodeattr("ipgen_path", code_dir)
        self.set_nodeattr("ip_path", code_dir)

    def get_rtl_file_list(self, abspath=False):
        prefix = (self.get_nodeattr("code_gen_dir_ipgen") + "/") if abspath else ""
        return [f"{prefix}{self.get_verilog_top_module_name()}.v"]

    def code_generation_ipi(self):
        cmd = [f"add_files -norecurse {f}" for f in self.get_rtl_file_list(abspath=True)]
        cmd.append(f"create_bd_cell -type module -reference {self.get_verilog_top_module_name()} {self.onnx_node.name}")
        return cmd
