"""The accelerator graph through FINN's own ``CreateStitchedIP`` (Vivado IP integrator), and a completeness check of
what FINN hands to Vivado, so that a missing file or an unconnected stream is found before an hour of synthesis.

``CreateStitchedIP`` writes ``make_project.tcl`` (one IPI cell per node from the node's ``code_generation_ipi()``,
every stream connected by interface name, clock and reset to every cell, the graph's streams made external) and
runs ``vivado -mode batch -source make_project.tcl`` in its project folder; FINN finds the tool through
``FINN_TOOL_DIR_OVERRIDE`` or ``PATH`` (``finn.util.basic.resolve_xilinx_tool``).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import FracskipError

TCL = "make_project.tcl"


def create_stitched_ip(model, part: str, clk_ns: float):
    """FINN's CreateStitchedIP of ``model`` (every node with its HDL generated, PrepareIP done)."""
    from finn.transformation.fpgadataflow.create_stitched_ip import CreateStitchedIP

    return model.transform(CreateStitchedIP(part, clk_ns))


def stitch_problems(model, tcl: str) -> list[str]:
    """What the IPI script ``tcl`` lacks for ``model``: an RTL file of a node not added, a node without its cell,
    clock or reset, an internal stream not connected producer to consumer, a graph stream not made external."""
    from qonnx.custom_op.registry import getCustomOp

    lines = tcl.splitlines()
    added = {ln.split()[-1] for ln in lines if ln.startswith("add_files")}
    problems = []
    graph_io = {t.name for t in model.graph.input} | {t.name for t in model.graph.output}
    for k, node in enumerate(model.graph.node):
        inst = getCustomOp(node)
        missing = [f for f in inst.get_rtl_file_list(abspath=True) if str(f) not in added]
        problems += [f"{node.name}: RTL file {f} is not added" for f in missing]
        if not any(re.search(rf"create_bd_cell .*\s{re.escape(node.name)}$", ln) for ln in lines):
            problems.append(f"{node.name}: no IPI cell")
        intf = inst.get_verilog_top_module_intf_names()
        for kind, port in (("clock", intf["clk"][0]), ("reset", intf["rst"][0])):
            if not any(f"[get_bd_pins {node.name}/{port}]" in ln for ln in lines):
                problems.append(f"{node.name}: {kind} {port} not connected")
        for i, t in enumerate(node.input):
            if model.get_initializer(t) is not None:
                continue
            s_axis = intf["s_axis"][i][0]
            producer = model.find_producer(t)
            if t in graph_io:
                want = f"make_bd_intf_pins_external [get_bd_intf_pins {node.name}/{s_axis}]"
            elif producer is None:
                problems.append(f"{node.name}: input {t} has no producer")
                continue
            else:
                m_axis = getCustomOp(producer).get_verilog_top_module_intf_names()["m_axis"]
                src = m_axis[list(producer.output).index(t)][0]
                want = (f"connect_bd_intf_net [get_bd_intf_pins {producer.name}/{src}] "
                        f"[get_bd_intf_pins {node.name}/{s_axis}]")
            if want not in lines:
                problems.append(f"{node.name}: stream {t} into {s_axis} not connected ({want!r} missing)")
        for j, t in enumerate(node.output):
            if t in graph_io:
                m_axis = intf["m_axis"][j][0]
                if f"make_bd_intf_pins_external [get_bd_intf_pins {node.name}/{m_axis}]" not in lines:
                    problems.append(f"{node.name}: graph output {t} ({m_axis}) not made external")
    return problems


def check_stitch_project(model) -> Path:
    """The project folder FINN wrote for ``model`` (after ``create_stitched_ip``), with its script checked."""
    proj = model.get_metadata_prop("vivado_stitch_proj")
    if not proj or not (Path(proj) / TCL).is_file():
        raise FracskipError("no stitched-IP project: run create_stitched_ip first")
    problems = stitch_problems(model, (Path(proj) / TCL).read_text())
    if problems:
        raise FracskipError(f"{len(problems)} problem(s) in {Path(proj) / TCL}: " + "; ".join(problems[:10]))
    return Path(proj)
