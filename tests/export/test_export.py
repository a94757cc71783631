import json
import shutil

import numpy as np
import pytest

from fracskip.errors import FracskipError
from fracskip.export.exporter import export
from fracskip.runtime.controller import Controller
from fracskip.runtime.manifest import FORMAT, Manifest
from fracskip.backends.qonnx_backend import QONNXBackend
from fracskip.backends.torch_backend import TorchBackend
from fracskip.simulate import simulate
from fracskip.training import data as D


def test_manifest_round_trip_and_schema(tiny_export, tmp_path):
    m = Manifest.load(tiny_export)
    assert m.data["format"] == FORMAT
    assert list(m.cores()) == ["stem", "block0_b8", "block1_b0", "block1_b2", "block1_b4", "block1_b8",
                               "block2_b0", "block2_b2", "block2_b4", "block2_b8", "head"]
    for name, core in m.cores().items():
        assert core["bitops"] == m.data["bitops"]["qonnx_inference_cost"][name]
    # saved and loaded again, the manifest is the same, byte for byte
    again = tmp_path / "again"
    shutil.copytree(tiny_export, again)
    Manifest(again, m.data).save()
    assert Manifest.load(again).data == m.data
    assert (again / "manifest.json").read_bytes() == (tiny_export / "manifest.json").read_bytes()


def test_manifest_describes_the_exported_graphs(tiny_export):
    """What the build and the controller read of the manifest is what the graphs are: each core's input shape and
    datatype and its output shape at its place (stem, block interfaces, head), and the files are the folder's."""
    from qonnx.core.modelwrapper import ModelWrapper

    m = Manifest.load(tiny_export)
    assert set(m.data["files"]) == {p.name for p in tiny_export.iterdir()} - {"manifest.json"}
    places = [(m.data["stem"], m.data["stem"])] + [(p, b) for b in m.blocks for p in b["paths"].values()
                                                   if p.get("core")] + [(m.data["head"], m.data["head"])]
    assert len(places) == len(m.cores())
    for core, at in places:
        g = ModelWrapper(str(m.file(core["file"])))
        i, o = g.graph.input[0].name, g.graph.output[0].name
        assert (g.get_tensor_shape(i), str(g.get_tensor_datatype(i))) == (at["in"]["shape"], at["in"]["datatype"])
        assert g.get_tensor_shape(o) == at["out"]["shape"], core["core"]


def test_schema_violation_is_refused(tiny_export, tmp_path):
    bad = tmp_path / "bad"
    shutil.copytree(tiny_export, bad)
    d = json.loads((bad / "manifest.json").read_text())
    del d["blocks"][1]["paths"]
    (bad / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(FracskipError, match="lacks 'paths'"):
        Manifest.load(bad)
    d = json.loads((tiny_export / "manifest.json").read_text())
    d["blocks"][1]["in"]["shape"] = [1, 16]  # was a ValueError unpacking it for the gate's pooling
    with pytest.raises(FracskipError, match=r"blocks\[1\]\.in\.shape \[1, 16\] is not \(N, C, H, W\)"):
        Manifest(bad, d).check_schema()


def test_tampered_and_missing_files_are_refused(tiny_export, tmp_path):
    bad = tmp_path / "tampered"
    shutil.copytree(tiny_export, bad)
    with open(bad / "block1_b4.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(FracskipError, match="sha256"):
        Manifest.load(bad)
    gone = tmp_path / "missing"
    shutil.copytree(tiny_export, gone)
    (gone / "block1_b4.onnx").unlink()
    with pytest.raises(FracskipError, match="missing"):
        Manifest.load(gone)


def test_export_refuses_to_overwrite(tiny_run, tiny_export):
    before = (tiny_export / "manifest.json").read_text()
    with pytest.raises(FracskipError, match="--force"):
        export(tiny_run / "model.pt", tiny_export, progress=False)
    assert (tiny_export / "manifest.json").read_text() == before


def test_golden_controller_matches_torch(tiny_export):
    m = Manifest.load(tiny_export)
    images = D.load("synthetic", "test", limit=6).images.numpy()
    ref = TorchBackend(str(m.file("source_checkpoint.pt")), exact=True)
    ref_logits, ref_choices = ref.reference(images)
    for backend in (ref, QONNXBackend(m)):
        logits, trace = Controller(m, backend).run(images)
        assert np.array_equal(trace.choices, ref_choices), backend.name
        assert np.abs(logits - ref_logits).max() <= 1e-4, backend.name
    logits1, trace1 = Controller(m, QONNXBackend(m)).run(images[:1])  # batch size 1
    assert np.array_equal(trace1.choices, ref_choices[:1])


def test_simulate_reports(tiny_export):
    split = D.load("synthetic", "test", limit=8)
    res, trace = simulate(tiny_export, "qonnx", split.images.numpy(), split.labels.numpy(), batch_size=4)
    assert res["decisions_match_pct"] == 100.0 and res["argmax_agreement_pct"] == 100.0
    assert res["max_logit_abs_diff"] <= 1e-4
    assert res["accuracy"] == res["torch_accuracy"]
    assert trace.bitops.shape == (8,)
    # the controller's compute (the manifest's BitOPs per path) against eval's (torch's cost table): two counts
    from fracskip.training.checkpoint import load_model
    from fracskip.training.evaluate import evaluate

    net, _ = load_model(str(Manifest.load(tiny_export).file("source_checkpoint.pt")))
    ev = evaluate(net, split, progress=False)
    assert res["compute_pct"] == pytest.approx(ev["compute_pct"]) and res["bitops_per_input"] == pytest.approx(
        ev["bitops_per_input"])
    assert 0 < res["compute_pct"] < 100  # the tiny network's gates mix their paths: not a trivial 100 %


def test_simulate_the_raw_qonnx_graphs_and_torch(tiny_export):
    """`fracskip simulate --graphs qonnx` runs the exported QONNX files themselves (Brevitas' Quant nodes, float32),
    not FINN's streamlined graphs; `--backend torch` is the reference run against itself."""
    m = Manifest.load(tiny_export)
    split = D.load("synthetic", "test", limit=8)
    res, _ = simulate(tiny_export, "qonnx", split.images.numpy(), split.labels.numpy(), batch_size=4, progress=False,
                      graphs="qonnx")
    # float32 where torch is float64: a value at a rounding boundary may round the other way (export/verify.py: a
    # code one step off moves the logits it feeds by a step's worth), so the decisions and predictions agree exactly,
    # the logits to a few per cent of their range (the tiny network's logits are small: 0.65 at most here)
    assert res["graphs"] == "qonnx" and res["decisions_match_pct"] == 100.0 and res["argmax_agreement_pct"] == 100.0
    ref = TorchBackend(str(m.file("source_checkpoint.pt")), exact=True).reference(split.images.numpy())[0]
    assert res["max_logit_abs_diff"] <= 0.05 * np.abs(ref).max(), (res["max_logit_abs_diff"], np.abs(ref).max())
    ops = {name: {n.op_type for n in mw.graph.node} for name, mw in QONNXBackend(m, graphs="qonnx").models.items()}
    assert all("Quant" in o for name, o in ops.items() if name != "head"), ops
    assert not any("Quant" in {n.op_type for n in mw.graph.node}
                   for mw in QONNXBackend(m, progress=False).models.values())
    res, _ = simulate(tiny_export, "torch", split.images.numpy(), split.labels.numpy(), progress=False)
    assert res["max_logit_abs_diff"] <= 1e-6 and res["decisions_match_pct"] == 100.0  # float32 against float64


def test_controller_rejects_wrong_input(tiny_export):
    m = Manifest.load(tiny_export)
    ctl = Controller(m, QONNXBackend(m))
    with pytest.raises(FracskipError, match="shape"):
        ctl.run(np.zeros((2, 3, 28, 28), dtype=np.uint8))
    with pytest.raises(FracskipError, match="8-bit"):
        ctl.run(np.full((1, 1, 28, 28), 0.5, dtype=np.float32))
    with pytest.raises(FracskipError, match="empty"):  # was numpy's ValueError here, an AttributeError on torch
        ctl.run(np.zeros((0, 1, 28, 28), dtype=np.uint8))


@pytest.mark.slow
def test_streamlined_cores_equal_brevitas_integers(tiny_export):
    from fracskip.export.verify import verify_streamlined

    m = Manifest.load(tiny_export)
    res = verify_streamlined(m, D.load("synthetic", "test", limit=2).images.numpy(),
                             cores=["stem", "block0_b8", "block1_b0", "block1_b2", "block2_b4", "head"], progress=False)
    for name, r in res.items():
        assert r["equal"], (name, r)  # integers identical (the head: logits within 1e-4)
        assert "Conv" not in r["ops"] and "Quant" not in r["ops"], (name, r["ops"])  # FINN-ONNX, lowered


def test_widths_beyond_the_menu_export_for_the_static_networks(tiny_run, tiny_export, tmp_path):
    """A menu cut by `fracskip budget --menu` keeps the dropped width's paths: the export carries their cores after
    the menu's (``Manifest.routes``), a static run at that width equals the full model's, and the gates still
    choose from the menu only. Gated blocks that disagree on those widths are refused."""
    from fracskip.training.budget import calibrate_budget

    calibrate_budget(tiny_run / "model.pt", None, tmp_path / "cut.pt", images=32, dataset="synthetic", menu=(0, 2, 8))
    m = export(tmp_path / "cut.pt", tmp_path / "exp", progress=False)
    full = Manifest.load(tiny_export)
    assert m.bit_menu == [0, 2, 8] and m.routes == [0, 2, 8, 4] and "block2_b4" in m.cores()
    images = D.load("synthetic", "test", limit=6).images.numpy()
    a, ta = Controller(full, QONNXBackend(full)).run(images, bits=4)
    b, tb = Controller(m, QONNXBackend(m)).run(images, bits=4)
    assert np.array_equal(a, b) and (tb.bits == 4).all() and np.array_equal(ta.bitops, tb.bitops)
    _, gated = Controller(m, QONNXBackend(m)).run(images)
    assert set(np.unique(gated.bits)) <= {0, 2, 8}
    d = json.loads((m.root / "manifest.json").read_text())
    del d["blocks"][2]["paths"]["4"]
    with pytest.raises(FracskipError, match="widths beyond it of the other gated blocks"):
        Manifest(m.root, d).check_schema()


def test_a_float_gate_is_refused_before_any_core_is_written(tiny_run, tmp_path, monkeypatch):
    """A checkpoint of the float gate (written before the integer gate) has nothing the hardware runs: refused at
    once, not after every core has been exported, and nothing is left behind."""
    import fracskip.export.exporter as E
    from fracskip.training.channels import build
    from fracskip.training.checkpoint import atomic_save, load_raw
    from fracskip.training.model import ModelConfig

    raw = load_raw(tiny_run / "model.pt")
    raw.pop("path")
    raw["model_config"] = {**raw["model_config"], "gate": "float"}
    raw["state_dict"] = build(ModelConfig(**raw["model_config"])).state_dict()
    atomic_save(raw, tmp_path / "float.pt")

    def no_core(*a, **k):
        raise AssertionError("a core was exported")
    monkeypatch.setattr(E, "export_qonnx", no_core)
    with pytest.raises(FracskipError, match="float gate"):
        export(tmp_path / "float.pt", tmp_path / "exp", progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["float.pt"]


def test_the_command_loads_the_checkpoint_once(tiny_run, tiny_export, tmp_path, monkeypatch):
    """``fracskip export`` loaded the checkpoint twice, to check the argument and to export it: now once, with
    ``weights_only`` (nothing in the file run), and the export is the API's of the same checkpoint, file for file."""
    import torch

    from fracskip.cli import main

    loads, load = [], torch.load

    def counted(*a, **k):
        assert k.get("weights_only") is True
        loads.append(a[0])
        return load(*a, **k)

    monkeypatch.setattr(torch, "load", counted)
    assert main(["export", str(tiny_run / "model.pt"), "-o", str(tmp_path / "exp"), "--quiet"]) == 0
    assert len(loads) == 1, loads
    got, want = (json.loads((d / "manifest.json").read_text()) for d in (tmp_path / "exp", tiny_export))
    assert got == want
    assert (tmp_path / "exp" / "source_checkpoint.pt").read_bytes() == (tiny_run / "model.pt").read_bytes()


def test_a_checkpoint_that_cannot_be_loaded_leaves_no_folder(tmp_path, capsys):
    """The export loads the checkpoint before it makes any folder: the command refuses a damaged one as the
    argument check did, and nothing is left behind (the output's parent folders included)."""
    from fracskip.cli import main

    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 broken zip")
    assert main(["export", str(tmp_path / "junk.pt"), "-o", str(tmp_path / "a" / "exp"), "--quiet"]) == 2
    assert "junk.pt is not a readable checkpoint" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.pt"]
