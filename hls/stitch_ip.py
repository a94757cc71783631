"""The accelerator graph through FINN's own ``CreateStitchedIP`` (Vivado IP integrator), and a completeness check of
what FINN hands to Vivado, so that a missing file or an unconnected stream is found before an hour of synthesis.

``CreateStitchedIP`` writes ``make_project.tcl`` (one IPI cell per node from the node's ``code_generation_ipi()``,
every stream connected by interface name, clock and reset to every cell, the graph's streams made external) and
runs ``vivado -mode batch -source make_project.tcl`` in its project folder; FINN finds the tool through
``FINN_TOOL_DIR_OVERRIDE`` or ``PATH`` (``finn.util.basic.resolve_xilinx_tool``).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

TCL = "make_project.tcl"
_MODULE = re.compile(r"^\s*module\s+([A-Za-z_][A-Za-z0-9_$]*)", re.MULTILINE)
_ASSOC = re.compile(r'X_INTERFACE_PARAMETER\s*=\s*"ASSOCIATED_BUSIF\s+([^",]*)\s*,\s*ASSOCIATED_RESET\s+(\w+)"\s*\*\)'
                    r"(?:\s*\(\*.*?\*\))*\s*input\s+(?:wire\s+|logic\s+)?(\w+)", re.DOTALL)


def create_stitched_ip(model, part: str, clk_ns: float):
    """FINN's CreateStitchedIP of ``model`` (every node with its HDL generated, PrepareIP done)."""
    from finn.transformation.fpgadataflow.create_stitched_ip import CreateStitchedIP

    return model.transform(CreateStitchedIP(part, clk_ns))


def stitch_problems(model, tcl: str) -> list[str]:
    """What the IPI script ``tcl`` lacks for ``model``: an added file that does not exist, a library module that an
    added file instantiates but no added file declares, an RTL file of a node not added, a node without its cell, clock or reset, a cell whose module is not among the added files or lacks a
    port of the node's interfaces, a module whose clock does not associate its streams and reset, an internal
    stream not connected producer to consumer, a graph stream not made external."""
    from qonnx.custom_op.registry import getCustomOp

    lines = tcl.splitlines()
    added = {_expand(ln.split()[-1]) for ln in lines if ln.startswith("add_files")}
    project = next((ln.split()[2] for ln in lines if ln.startswith("create_project ")), None)
    # files below the project folder are Vivado's own output (the block design's wrapper)
    problems = [f"{f} is added but does not exist" for f in sorted(added)
                if not Path(f).is_file() and not (project and f.startswith(project + "/"))]
    modules = _declared_modules(added)
    problems += _unresolved_instances(modules)
    cells = _cells(lines)
    graph_io = {t.name for t in model.graph.input} | {t.name for t in model.graph.output}
    for k, node in enumerate(model.graph.node):
        inst = getCustomOp(node)
        missing = [f for f in inst.get_rtl_file_list(abspath=True) if str(f) not in added]
        problems += [f"{node.name}: RTL file {f} is not added" for f in missing]
        intf = inst.get_verilog_top_module_intf_names()
        cell = cells.get(node.name)
        if cell is None:
            problems.append(f"{node.name}: no IPI cell")
        else:
            problems += [f"{node.name}: {p}" for p in _cell_problems(cell, node.name, intf, lines, modules)]
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


def _expand(path: str) -> str:
    """``$::env(NAME)`` in a TCL path replaced by the variable's value here (Vivado inherits this environment)."""
    return re.sub(r"\$::env\((\w+)\)", lambda m: os.environ.get(m[1], m[0]), path)


def _declared_modules(files) -> dict[str, Path]:
    """{module: the added HDL file that declares it}."""
    found: dict[str, Path] = {}
    for f in sorted(files):
        p = Path(f)
        if p.suffix in (".v", ".sv") and p.is_file():
            for m in _MODULE.finditer(p.read_text(errors="replace")):
                found.setdefault(m[1], p)
    return found


def _library_modules() -> set[str]:
    """Modules declared in the HDL libraries the nodes draw on: FINN's rtllib (``FINN_RTLLIB``, else the installed
    one) and fracskip's own ``rtl/`` folders (the units' and the shared ``hls/rtl/``)."""
    from .rtl import rtl_dir as shared_rtl
    from .rtlsim.rtllib import installed_rtllib

    roots = [Path(os.environ["FINN_RTLLIB"]) if os.environ.get("FINN_RTLLIB") else installed_rtllib()]
    roots += [Path(__file__).parent / d / "rtl" for d in ("ops", "bitserial", "lutmvu")] + [shared_rtl()]
    names: set[str] = set()
    for root in roots:
        for f in [*root.rglob("*.v"), *root.rglob("*.sv")]:
            names.update(m[1] for m in _MODULE.finditer(f.read_text(errors="replace")))
    return names


def _unresolved_instances(modules: dict[str, Path]) -> list[str]:
    """A library module that an added file instantiates but no added file declares (a source missing from a node's
    file list: Vivado would fail to elaborate that cell)."""
    from .rtlsim.stitch import _strip_comments

    wanted = _library_modules() - set(modules)
    if not wanted:
        return []
    inst = re.compile(r"\b(" + "|".join(sorted(map(re.escape, wanted), key=len, reverse=True))
                      + r")\s*(?:#\s*\(|[A-Za-z_][A-Za-z0-9_$]*\s*\()")
    out = []
    for f in sorted(set(modules.values())):
        for name in sorted({m[1] for m in inst.finditer(_strip_comments(f.read_text(errors="replace")))}):
            out.append(f"module {name}, instantiated in {f}, is declared in no added file")
    return out


def _cells(lines: list[str]) -> dict[str, tuple[str, str | None]]:
    """{top-level IPI cell: ('module', the referenced module) or ('hier', None)}."""
    cell = re.compile(r"create_bd_cell -type (module|hier)(?: -reference (\S+))? ([^/\s]+)")
    return {m[3]: (m[1], m[2]) for ln in lines if (m := cell.fullmatch(ln.strip()))}


def _cell_problems(cell, name: str, intf: dict, lines: list[str], modules: dict[str, Path]) -> list[str]:
    """A module cell: its module is declared in an added file, has the clock, the reset and the three AXI-stream
    signals of every interface the node declares, and its clock port associates every stream and the reset
    (``X_INTERFACE_PARAMETER``, as FINN's own wrappers do). A hierarchy cell: its clock, reset and interface pins
    are created."""
    from .rtlsim.stitch import module_ports

    kind, ref = cell
    clk, rst = intf["clk"][0], intf["rst"][0]
    streams = [n for n, _ in list(intf["s_axis"]) + list(intf["m_axis"])]
    if kind == "hier":
        want = [f"create_bd_pin -dir I -type clk /{name}/{clk}", f"create_bd_pin -dir I -type rst /{name}/{rst}"]
        out = [f"hierarchy pin {w.split()[-1]} not created" for w in want if w not in lines]
        pins = {ln.split()[-1] for ln in lines if ln.startswith("create_bd_intf_pin ")}
        return out + [f"hierarchy interface /{name}/{s} not created" for s in streams if f"/{name}/{s}" not in pins]
    if ref not in modules:
        return [f"module {ref} (its IPI cell) is declared in no added file"]
    ports = module_ports([modules[ref]], ref)
    out = [f"module {ref} has no port {p}" for p in (clk, rst) if p not in ports]
    out += [f"module {ref} has no port {s}_{sig} (interface {s})" for s in streams
            for sig in ("TDATA", "TVALID", "TREADY") if f"{s}_{sig}" not in ports]
    text = modules[ref].read_text(errors="replace")
    head = re.search(rf"\bmodule\s+{re.escape(ref)}\b", text)
    assoc = next((m for m in _ASSOC.finditer(text, head.end()) if m[3] == clk), None)
    if assoc is None:
        return out + [f"module {ref}: clock {clk} has no ASSOCIATED_BUSIF/ASSOCIATED_RESET"]
    bound = set(assoc[1].split(":"))
    out += [f"module {ref}: stream {s} is not associated with clock {clk}" for s in streams if s not in bound]
    if assoc[2] != rst:
        out.append(f"module {ref}: clock {clk} is associated with reset {assoc[2]}, not {rst}")
    return out

