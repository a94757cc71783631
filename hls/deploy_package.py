"""The accelerator's deployment package, FINN's layout (``step_deployment_package``: ``bitfile/``, ``driver/``),
plus what fracskip's host side needs; the board driver that reads it is ``fracskip.runtime.accelerator_driver``.

``write_package(build_dir, out, model, fifo_depths, bitfile_dir=None)``:

- ``driver/settings.json``: FINN's own ``MakePYNQDriver`` (``FINNDMAOverlay``) on the accelerator graph after
  ``ZynqBuild``'s own preparation (InsertIODMA at the board's AXI width, InsertDWC, SpecializeLayers, Floorplan,
  CreateDataflowPartition, node and tensor renaming). None of these needs Vivado. FINN names the IODMAs of the
  block design in ``MakeZYNQProject`` (``idma0``, ``odma0``, ``odma1``: partitions without producer, then without
  consumer, in graph order) and only then can the driver list them; without Vivado that step never runs, so the
  same names are given here by the same rule (``provenance.dma_names`` says which happened).
- ``driver/fracskip.json`` + ``driver/fracskip_host.npz``: the host ops before the accelerator (the stem's
  NCHW -> NHWC transpose) and after it (the head's float scale and bias), from the parent graphs of the build's
  stem and head cores; the class names; the decisions stream's layout (gate g -> block, the bit menu, BitOPs of each
  choice, so the board reports compute without the manifest); provenance.
- ``bitfile/``: the .bit and .hwh (or .xclbin) of a real shell build, copied from ``bitfile_dir``; absent
  otherwise, and ``provenance.bitstream`` says so. A package without it drives the Verilator model only.
- ``simulation/``: not for the board. The accelerator graph (``accelerator.onnx``, HDL paths inside point into the
  build's FINN folder), for ``fracskip deploy PACKAGE --simulate``: the emitted HDL (FINN's fifo.sv at the sized
  depths: the Verilator model the build's own check compiled), or, with ``fifo_depths.json``, the graph FIFO sizing
  simulated (run-time-depth FIFOs) at those depths (the binary the sizing compiled).

``python -m fracskip.hls.deploy_package BUILD -o PACKAGE`` writes it from ``BUILD/accelerator/`` (made by
``python -m fracskip.hls.accelerator BUILD``, which sizes the FIFOs by simulation).
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np

from ..errors import FracskipError, ToolMissingError, reported
from ..outdir import require_complete, staged
from ..runtime import DEPLOY_TIMEOUT_S
from ..runtime import accelerator_driver as ad
from ..runtime.controller import bitops_by_kept

log = logging.getLogger(__name__)

SIM_MODEL, SIM_DEPTHS = "simulation/accelerator.onnx", "simulation/fifo_depths.json"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
LAYOUT_OPS = ("Transpose", "Reshape", "Flatten", "Identity")  # what may sit between the accelerator's own cores


def class_names(dataset: str | None, n: int) -> list[str]:
    from ..training.data import FASHION_MNIST_CLASSES

    names = {"fashion-mnist": FASHION_MNIST_CLASSES, "cifar10": CIFAR10_CLASSES}.get(dataset or "")
    return list(names) if names and len(names) == n else [f"class {i}" for i in range(n)]


# ---------------------------------------------------------------- FINN's driver settings


def shell_prepare(model, board: dict, work: Path):
    """ZynqBuild's model preparation (finn-plus 1.6.1, no instrumentation): IODMAs, width converters, the
    IODMA's HLS variant, floorplan, one dataflow partition per IODMA and one for the accelerator; then the DMA
    instance names MakeZYNQProject gives them. Returns (the partitioned parent model, whether names were set here)."""
    from finn.transformation.fpgadataflow.create_dataflow_partition import CreateDataflowPartition
    from finn.transformation.fpgadataflow.floorplan import Floorplan
    from finn.transformation.fpgadataflow.insert_dwc import InsertDWC
    from finn.transformation.fpgadataflow.insert_iodma import InsertIODMA
    from finn.transformation.fpgadataflow.specialize_layers import SpecializeLayers
    from finn.util.basic import pynq_native_port_width
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.general import GiveReadableTensorNames, GiveUniqueNodeNames
    from qonnx.transformation.infer_data_layouts import InferDataLayouts

    from . import ops  # noqa: F401  fracskip's RTL ops, for FINN's transformations
    from .transforms import integer_eltwise_rtl, partition_check_once

    width = pynq_native_port_width.get(board["name"], 64)
    parts = work / "partitions"
    model = model.transform(InferDataLayouts())
    with integer_eltwise_rtl(), partition_check_once():
        for trn in (InsertIODMA(width), InsertDWC(), SpecializeLayers(board["part"]), Floorplan(),
                    CreateDataflowPartition(partition_model_dir=str(parts))):
            model = model.transform(trn).transform(GiveUniqueNodeNames()).transform(GiveReadableTensorNames())
    named_here = False
    idx = {"idma": 0, "odma": 0}
    for node in model.graph.node:  # MakeZYNQProject's rule
        inst = getCustomOp(node)
        kind = "idma" if model.find_producer(node.input[0]) is None else \
            "odma" if not model.find_consumers(node.output[0]) else None
        if kind and not inst.get_nodeattr("instance_name"):
            inst.set_nodeattr("instance_name", f"{kind}{idx[kind]}")
            named_here = True
        if kind:
            idx[kind] += 1
    return model, named_here


def finn_driver_settings(model, board: dict, shell_model=None) -> tuple[dict, bool]:
    """FINN's MakePYNQDriver: (settings.json content, DMA names given here). On ``shell_model``, the model FINN's
    shell build returned (its DMAs named by the block design or the Vitis link), as FINN's step_make_driver does;
    otherwise on ``model`` prepared as ZynqBuild prepares it. FINN's partitions and driver folder are made in a
    scratch folder, removed afterwards."""
    from finn.transformation.fpgadataflow.make_driver import MakePYNQDriver

    from . import finn_env

    platform = board.get("driver", "zynq-iodma")
    if shell_model is None and board["shell_flow"] != "vivado_zynq":
        raise FracskipError(f"{board['name']}: without a shell build only Zynq boards get a package; for Alveo, "
                            "FINN names the kernels' instances in its Vitis link step (`--until bitstream`)")
    with finn_env.scratch() as work:
        parent, named_here = (shell_model, False) if shell_model is not None else \
            shell_prepare(model, board, Path(work))
        parent = parent.transform(MakePYNQDriver(platform, "FINNDMAOverlay", clk_period_ns=board["clk_ns"],
                                                 board=board["name"]))
        folder = Path(parent.get_metadata_prop("pynq_driver_dir"))
        return json.loads((folder / "settings.json").read_text()), named_here


def finn_plus_version() -> str:
    """The installed finn-plus's version, from its distribution's metadata (``finn`` has no ``__version__``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("finn-plus")
    except PackageNotFoundError:
        return "of unknown version (no finn-plus distribution installed)"


# ---------------------------------------------------------------- fracskip's additions


def host_side(build_dir: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The host ops around the accelerator: the stem core's host ops before it, the head core's after it (the
    cores' own parent graphs, as version 1's driver ran them); the ops between cores may only move data."""
    from .host_ops import PARENT_FILE, core_model_path, host_programs, read_model

    params: dict[str, np.ndarray] = {}
    progs = {}
    for core in ("stem", "head"):
        parent = read_model(core_model_path(build_dir, core, PARENT_FILE))
        progs[core] = host_programs(parent, core, params)
        if core == "stem":
            shape = [int(s) for s in parent.get_tensor_shape(parent.graph.input[0].name)]
    inner = progs["stem"][1] + progs["head"][0]
    if any(o["op"] not in LAYOUT_OPS for o in inner):
        raise FracskipError(f"host ops {[o['op'] for o in inner]} sit between the stem and the head cores; inside "
                            "one accelerator only layout ops may: rebuild the cores")
    pre, post = progs["stem"][0], progs["head"][1]
    used = {o["param"] for o in pre + post if "param" in o}
    return {"pre": pre, "post": post, "input_shape": shape}, {k: v for k, v in params.items() if k in used}


def decisions_layout(man) -> dict:
    """Gate g's decision is a menu index for block ``blocks[g]``; its BitOPs per choice, as the controller counts.
    With channel heads each block gives [d, keep] (``words_per_gate`` 2; keep: group j kept at bit j) and
    ``channels`` holds per gate its groups and, per menu entry with groups, the BitOPs by groups kept."""
    out = {"gates": [b["gate"] for b in man.gated_blocks], "blocks": [b["index"] for b in man.gated_blocks],
           "bit_menu": list(man.bit_menu), "dtype": "INT16", "words_per_gate": 2 if man.channel_group else 1,
           "bitops": [[blk["paths"][str(b)]["bitops"] for b in man.bit_menu] for blk in man.gated_blocks],
           "fixed_bitops": man.fixed_bitops, "full_8bit_bitops": man.data["bitops"]["full_8bit"]}
    if man.channel_group:
        out["channels"] = {
            "group": man.channel_group,
            "groups": man.channel_groups,
            "bitops_by_kept": [[bitops_by_kept(blk["paths"][str(b)]) for b in man.bit_menu]
                               for blk in man.gated_blocks]}
    return out


# ---------------------------------------------------------------- the package


def write_package(build_dir: str | Path, out: str | Path, model, fifo_depths: dict[str, int] | None = None,
                  bitfile_dir: str | Path | None = None, force: bool = False, shell_model=None) -> Path:
    """The deployment package of the accelerator ``model`` (HW graph with its HDL) of ``build_dir``; with
    ``fifo_depths`` (by FIFO name) ``model`` is the graph FIFO sizing simulated and those are its depths. Written
    into a temporary folder beside ``out`` and renamed at the end: a failure leaves nothing that looks like a
    package. ``shell_model``: the model a real shell build returned (``hls.shell``), which FINN's driver reads."""
    from ..runtime.manifest import Manifest

    build_dir, out = Path(build_dir), Path(out)
    check_output(build_dir, out, force, bitfile_dir)
    bitfiles = None if bitfile_dir is None else bitfile_files(bitfile_dir)
    summary = json.loads((build_dir / "summary.json").read_text())
    board = summary["board"]
    man = Manifest.load(build_dir / "export")
    fifos = {n.name for n in model.get_nodes_by_op_type("StreamingFIFO_rtl")}
    if fifo_depths is not None and set(fifo_depths) - fifos:
        raise FracskipError(f"FIFO depths for FIFOs the accelerator lacks: {sorted(set(fifo_depths) - fifos)[:5]}")
    with staged(out) as tmp:
        settings, named_here = finn_driver_settings(model, board, shell_model)
        (tmp / "driver").mkdir()
        (tmp / ad.SETTINGS).write_text(json.dumps(settings, indent=2) + "\n")
        host, params = host_side(build_dir)
        np.savez(tmp / ad.HOST_NPZ, **params)
        bitfile = None
        if bitfiles is not None:
            (tmp / "bitfile").mkdir()
            for f in bitfiles:
                shutil.copyfile(f, tmp / "bitfile" / f.name)
            bitfile = "bitfile/" + bitfiles[0].name
        calib = build_dir / "calibration.json"
        dataset = json.loads(calib.read_text()).get("dataset") if calib.is_file() else None
        n_classes = int(np.prod(model.get_tensor_shape(model.graph.output[0].name)[1:]))
        extra = {
            "format": ad.FORMAT, "board": board["name"], "bitfile": bitfile, "host": host,
            "classes": class_names(dataset, n_classes), "dataset": dataset,
            "outputs": ["logits (the head's integers; the host applies host.post)", "decisions"],
            "decisions": decisions_layout(man),
            "provenance": {
                "bitstream": bitfile or "absent: made without Vivado from the accelerator's HDL (no .bit, no .hwh); "
                                        "it drives the Verilator model only (fracskip deploy --simulate)",
                "driver": f"FINN's MakePYNQDriver (finn-plus {finn_plus_version()}) after ZynqBuild's model "
                          "preparation",
                "dma_names": "given here by MakeZYNQProject's rule (no block design was made)" if named_here
                             else "FINN's block design",
                "build": str(build_dir.resolve()),
            },
        }
        (tmp / ad.EXTRA).write_text(json.dumps(extra, indent=1) + "\n")
        (tmp / "simulation").mkdir()
        model.save(str(tmp / SIM_MODEL))
        if fifo_depths is not None:
            (tmp / SIM_DEPTHS).write_text(json.dumps(fifo_depths, indent=1) + "\n")
        ad.load_package(tmp)  # what the board will read, checked
    return out


def check_output(build_dir: Path, out: Path, force: bool, bitfile_dir: str | Path | None = None) -> None:
    """``out`` may be written: not a file, empty unless ``force``, and holding none of what the package is made
    from (``force`` would delete the build, its export or its FINN folder, which the package's simulation model
    points into)."""
    if out.exists() and not out.is_dir():
        raise FracskipError(f"{out} is a file; pass a folder for the package (it is created if missing)")
    target = out.resolve()
    inputs = [build_dir, *(build_dir / d for d in ("export", "cores", "accelerator"))]
    for i in inputs + ([Path(bitfile_dir)] if bitfile_dir is not None else []):
        i = i.resolve()
        if i == target or target in i.parents:
            raise FracskipError(f"{out} holds {i}, which the package is made from: writing there would "
                                f"{'delete' if force else 'mix with'} it; choose another output folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise FracskipError(f"{out} exists and is not empty: pass another folder (or --force to replace it)")


def bitfile_files(bitfile_dir: str | Path) -> list[Path]:
    """The files of a shell build's bitfile folder that the package carries, the bitstream first: one .bit with its
    .hwh (pynq reads the .hwh of the .bit's name), or one .xclbin."""
    d = Path(bitfile_dir)
    if not d.is_dir():
        raise FracskipError(f"--bitfile {d}: no such folder; pass the bitfile folder of a shell build "
                            "(BUILD/accelerator/bitfile)")
    files = sorted(f for f in d.iterdir() if f.is_file() and f.suffix in (".bit", ".hwh", ".xclbin"))
    main = [f for f in files if f.suffix in (".bit", ".xclbin")]
    if len(main) != 1:
        names = ", ".join(f.name for f in main) or "no .bit or .xclbin"
        raise FracskipError(f"--bitfile {d} holds {len(main)} bitstreams ({names}): pass the bitfile folder of one "
                            "shell build")
    if main[0].suffix == ".bit" and not main[0].with_suffix(".hwh").is_file():
        raise FracskipError(f"--bitfile {d}: {main[0].name} without {main[0].with_suffix('.hwh').name}, which pynq "
                            "reads to load it; pass the bitfile folder of a Zynq shell build whole")
    return main + [f for f in files if f not in main]


def sized_accelerator(build_dir: str | Path):
    """The build's accelerator as emitted (``BUILD/accelerator/``, FIFOs sized)."""
    from .accelerator import ACC_DIR, MODELS
    from .host_ops import read_model

    require_complete(build_dir)
    sized = Path(build_dir) / ACC_DIR / "intermediate_models" / MODELS[2]
    if not sized.is_file():
        raise FracskipError(f"{sized} is missing: the build has no accelerator with sized FIFOs; `fracskip build "
                            f"EXPORT --board B -o {build_dir} --until hdl` makes one (or `python -m "
                            f"fracskip.hls.accelerator {build_dir}`)")
    return read_model(sized)


def package_from_build(build_dir: str | Path, out: str | Path, bitfile_dir: str | Path | None = None,
                       force: bool = False) -> Path:
    """``write_package`` of the build's accelerator as emitted."""
    check_output(Path(build_dir), Path(out), force, bitfile_dir)  # before the accelerator graph is read
    if bitfile_dir is not None:
        bitfile_files(bitfile_dir)
    return write_package(build_dir, out, sized_accelerator(build_dir), None, bitfile_dir, force)


# ---------------------------------------------------------------- simulation and the golden


def open_simulated(package: str | Path, cache_dir: Path | None = None, batch_size: int = 64,
                   progress: bool = False, timeout_s: float = DEPLOY_TIMEOUT_S):
    """(Package, DMAOverlay on the accelerator's Verilator model): the board driver's own DMA code, its DMAs
    streaming the buffers through the simulated accelerator (``sim_board.AcceleratorSimOverlay``); ``timeout_s``
    as on a board."""
    import importlib.util

    from .sim_board import AcceleratorSimOverlay

    pkg = ad.load_package(package)
    if pkg.platform != "zynq-iodma":
        raise FracskipError(f"{package} is an {pkg.platform} package (XRT kernels): --simulate models the IODMAs' "
                            "AXI-lite registers of zynq-iodma only. Run the build's accelerator in Verilator with "
                            "`fracskip simulate BUILD --backend rtlsim` instead")
    missing = [m for m in ("finn", "qonnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ToolMissingError(f"--simulate runs the accelerator's Verilator model, which needs the development "
                               f"install ({', '.join(missing)} missing; `make setup` in the repository makes it); "
                               "on a board, drop --simulate")
    sim = AcceleratorSimOverlay(pkg, cache_dir=cache_dir, progress=progress)
    return pkg, sim, ad.DMAOverlay(sim, sim.allocate, pkg.io, pkg.platform, batch_size, timeout_s)


def golden(pkg: ad.Package, images: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """The golden of the accelerator: the numpy controller on the exported graphs (decisions, keep bits, pooled
    sums, logits) and FINN's python execution of the head core on its pooled sums (the head's integers). With
    ``labels``: its accuracy (``accuracy_golden``) and ``fracskip eval``'s on the same images (``accuracy_eval``:
    the trained model the export came from, evaluated by eval's own function)."""
    from finn.core.onnx_exec import execute_onnx

    from ..runtime.controller import Controller
    from ..runtime.host import HostProgram
    from ..runtime.manifest import Manifest
    from ..backends.qonnx_backend import QONNXBackend
    from .accelerator import python_model
    from .host_ops import PARENT_FILE, core_model_path, host_programs, read_model

    build = Path(pkg.extra["provenance"]["build"])
    if not (build / "export").is_dir():
        raise FracskipError(f"the golden needs the build the package came from ({build}), which is gone: rebuild "
                            "the package there, or pass the build folder again")
    man = Manifest.load(build / "export")
    logits, trace = Controller(man, QONNXBackend(man, progress=False), record=True).run(images)
    pooled = np.concatenate([c["in"] for c in trace.calls if c["core"] == "head"])
    params: dict[str, np.ndarray] = {}
    parent = read_model(core_model_path(build, "head", PARENT_FILE))
    x = HostProgram(host_programs(parent, "head", params)[0], params)(pooled)
    head = python_model(read_model(core_model_path(build, "head")))
    iname, oname = head.graph.input[0].name, head.graph.output[0].name
    ints = np.concatenate([execute_onnx(head, {iname: x[i:i + 1]})[oname] for i in range(len(x))])
    out = {"logits": logits, "decisions": trace.choices.astype(np.int64), "head": ints.reshape(len(images), -1),
           "keep": None if trace.keep is None else trace.keep.astype(np.int64)}
    if labels is not None:
        import torch

        from ..training import data as D
        from ..training.checkpoint import load_model
        from ..training.evaluate import evaluate

        labels = np.asarray(labels).reshape(-1)
        out["accuracy_golden"] = float((logits.argmax(1) == labels).mean())
        net, _ = load_model(str(man.file(man.data["source_checkpoint"]["file"])))
        split = D.Split(torch.as_tensor(np.asarray(images, np.uint8)), torch.as_tensor(labels.astype(np.int64)))
        out["accuracy_eval"] = float(evaluate(net, split, progress=False)["accuracy"])
    return out


def compare(run, gold: dict[str, np.ndarray]) -> dict:
    """The simulated run against the golden: images whose decisions (and keep bits) match, whose every output
    integer matches."""
    n = len(run.decisions)
    dec = (run.decisions == gold["decisions"]).all(axis=1)
    out = {}
    if run.keep is not None:
        keep = (run.keep == gold["keep"]).all(axis=1)
        out["keep_decisions_match_pct"] = 100.0 * float(keep.mean())
        dec &= keep
    exact = dec & (run.head == gold["head"]).all(axis=1)
    return {"decisions_match_pct": 100.0 * float(dec.mean()), **out, "bit_exact_pct": 100.0 * float(exact.mean()),
            "logits_max_abs_diff": float(np.abs(run.logits - gold["logits"]).max()) if n else 0.0,
            "argmax_equal_golden_pct": 100.0 * float((run.logits.argmax(1) == gold["logits"].argmax(1)).mean())}


def main(argv: list[str] | None = None) -> None:
    """``python -m fracskip.hls.deploy_package BUILD -o PACKAGE [--bitfile DIR]``."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("build")
    ap.add_argument("-o", "--output", required=True)
    ap.add_argument("--bitfile", help="the bitfile folder of a shell build (.bit + .hwh, or .xclbin)")
    ap.add_argument("--force", action="store_true", help="replace a non-empty output folder")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    with reported():
        print(package_from_build(a.build, a.output, a.bitfile, a.force))


if __name__ == "__main__":
    main()
