"""Property-based tests (hypothesis) of every loader of a file a user hands to fracskip: the export manifest,
checkpoints, board presets, the deployment package's driver/ files, and the driver's packing.

The property: a random corruption (a field deleted, replaced by any JSON value, wrapped in a list; bytes
flipped or cut off) ends in a ``FracskipError`` or in an object that is whole and usable; never in another
exception (a traceback for the user), never in a half-read object.
"""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fracskip import bitstreams
from fracskip.errors import FracskipError
from fracskip.runtime import host as drv

import packages  # tests/packages.py: a hand-written deployment package

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large])

LEAF = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.integers(-3, 300),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                 st.sampled_from(["../x", "", "/etc/passwd", "UINT8", "DataType['FLOAT32']", "INT0", "zynq-iodma",
                                  "stem", "fracskip-export/1", "a" * 64]))
VALUE = st.recursive(LEAF, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                     max_leaves=6)


def mutate(data, doc, leaf=VALUE):
    """1-3 random edits anywhere in a JSON-like tree: delete, replace with any value, wrap in a list."""
    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        parent, key, node = None, None, doc
        while True:
            keys = list(node) if isinstance(node, dict) else list(range(len(node))) if isinstance(node, list) else []
            if not keys or (parent is not None and data.draw(st.booleans(), label="stop")):
                break
            k = data.draw(st.sampled_from(keys), label="key")
            parent, key, node = node, k, node[k]
        if parent is None:
            doc = data.draw(leaf, label="root")
            continue
        op = data.draw(st.sampled_from(["delete", "replace", "replace", "wrap"]), label="op")
        if op == "delete":
            del parent[key]
        elif op == "replace":
            parent[key] = data.draw(leaf, label="value")
        else:
            parent[key] = [node]
    return doc


def corrupt_bytes(data, raw: bytes) -> bytes:
    how = data.draw(st.sampled_from(["truncate", "flip", "splice"]), label="how")
    if how == "truncate":
        return raw[:data.draw(st.integers(0, max(len(raw) - 1, 0)), label="cut")]
    b = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        i = data.draw(st.integers(0, len(b) - 1), label="at")
        b[i] = data.draw(st.integers(0, 255), label="byte") if how == "flip" else b[(i * 7919) % len(b)]
    return bytes(b)


# ---------------------------------------------------------------- the export manifest


@pytest.fixture(scope="module")
def export_copy(tiny_export, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("manifest") / "exp"
    shutil.copytree(tiny_export, d)
    return d


def _use_manifest(folder: Path) -> None:
    """Everything a later stage does with a manifest, short of running cores: the content check of the CLI,
    the topology accessors and the controller's gates and cost."""
    from fracskip.runtime.controller import Controller
    from fracskip.validate import export_folder

    m = export_folder(folder, onnx=False, checkpoint=False)
    cores = m.cores()
    assert {"stem", "head"} <= set(cores)
    for blk in m.blocks:
        for bits in blk["paths"]:
            core = m.path_core(blk["index"], int(bits))
            assert core is None or core in cores
    ctl = Controller(m, backend=None)
    cost = ctl.bitops(np.zeros((3, len(m.gated_blocks)), dtype=np.int64))
    assert cost.shape == (3,) and np.all(np.isfinite(cost))


@SETTINGS
@given(data=st.data())
def test_manifest_corruptions_are_refused_or_harmless(export_copy, data):
    original = json.loads((export_copy / "manifest.json").read_text())
    try:
        (export_copy / "manifest.json").write_text(json.dumps(mutate(data, original)))
        try:
            _use_manifest(export_copy)
        except FracskipError:
            pass
    finally:
        (export_copy / "manifest.json").write_text(json.dumps(original))


@SETTINGS
@given(data=st.data())
def test_manifest_byte_corruptions_are_refused_or_harmless(export_copy, data):
    raw = (export_copy / "manifest.json").read_bytes()
    try:
        (export_copy / "manifest.json").write_bytes(corrupt_bytes(data, raw))
        try:
            _use_manifest(export_copy)
        except FracskipError:
            pass
    finally:
        (export_copy / "manifest.json").write_bytes(raw)


def test_the_unchanged_manifest_passes(export_copy):
    _use_manifest(export_copy)  # the properties above are not vacuous


# ---------------------------------------------------------------- checkpoints

CK_LEAF = st.one_of(LEAF, st.builds(lambda s: torch.zeros(s), st.lists(st.integers(0, 3), max_size=3)))


@pytest.fixture(scope="module")
def checkpoint_dict(tiny_run) -> dict:
    ck = torch.load(tiny_run / "model.pt", weights_only=True)
    ck.pop("history", None)  # long and never read to build the model: keep the examples fast
    return ck


@settings(SETTINGS, max_examples=40)
@given(data=st.data())
def test_checkpoint_corruptions_are_refused_or_harmless(checkpoint_dict, tmp_path, data):
    from fracskip.training.checkpoint import load_model

    path = tmp_path / "ck.pt"
    torch.save(mutate(data, checkpoint_dict, CK_LEAF), path)
    try:
        net, ck = load_model(path)
    except FracskipError:
        return
    with torch.no_grad():  # a whole model: it runs
        out = net(torch.zeros(1, net.cfg.in_channels, net.cfg.image_size, net.cfg.image_size))
    assert out.logits.shape == (1, net.cfg.num_classes)


@settings(SETTINGS, max_examples=30)
@given(data=st.data())
def test_checkpoint_byte_corruptions_are_refused_or_harmless(tiny_run, tmp_path, data):
    from fracskip.training.checkpoint import load_model

    path = tmp_path / "ck.pt"
    path.write_bytes(corrupt_bytes(data, (tiny_run / "model.pt").read_bytes()))
    try:
        load_model(path)
    except FracskipError:
        pass


# ---------------------------------------------------------------- board presets

SHIPPED = bitstreams.PRESETS


@settings(SETTINGS, max_examples=80)
@given(data=st.data())
def test_board_preset_corruptions_are_refused_or_harmless(tmp_path_factory, data):
    presets = tmp_path_factory.mktemp("boards")
    originals = {p.name: json.loads(p.read_text()) for p in SHIPPED.glob("*.json")}
    victim = data.draw(st.sampled_from(sorted(originals)), label="preset")
    for name, d in originals.items():
        (presets / name).write_text(json.dumps(mutate(data, d) if name == victim else d))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(bitstreams, "PRESETS", presets)
        _use_presets(originals)


def _use_presets(originals: dict) -> None:
    for d in originals.values():
        try:
            b = bitstreams.load(d["name"])
        except FracskipError:
            continue
        assert b.clk_ns > 0 and set(b.resources) == set(bitstreams.RESOURCE_KEYS)
        assert all(v >= 0 for v in b.budget(0.8).values())


def test_shipped_presets_pass():
    assert bitstreams.names() == ["Pynq-Z2", "U250", "ZCU104"]


# ---------------------------------------------------------------- the deployment package's driver/ files


@settings(SETTINGS, max_examples=120)
@given(data=st.data())
def test_package_corruptions_are_refused_or_harmless(tmp_path_factory, data):
    """FINN's driver settings and fracskip's additions, mutated: refused with a FracskipError, or a package whose
    streams are consistent and whose host programs run."""
    from fracskip.runtime import accelerator_driver as ad

    pkg = packages.write(tmp_path_factory.mktemp("pkg") / "p")
    which = data.draw(st.sampled_from(["settings.json", "fracskip.json"]), label="file")
    doc = packages.settings()[which == "fracskip.json"]
    (pkg / "driver" / which).write_text(json.dumps(mutate(data, doc)))
    try:
        p = ad.load_package(pkg)
    except FracskipError:
        return
    assert p.platform in drv.PLATFORMS and p.io["num_inputs"] == 1 and p.io["num_outputs"] == 2
    for side in ("i", "o"):
        for normal, folded in zip(p.io[f"{side}shape_normal"], p.io[f"{side}shape_folded"]):
            assert int(np.prod(normal[1:])) == int(np.prod(folded[1:]))
    p.pre(np.zeros((2, *p.input_shape[1:]), np.float32))


def test_unchanged_package_passes(tmp_path):
    from fracskip.runtime import accelerator_driver as ad

    p = ad.load_package(packages.write(tmp_path / "p"))
    assert p.input_shape == (1, 1, 28, 28) and p.words_per_gate == 1 and p.bitfile is None


@settings(SETTINGS, max_examples=60)
@given(data=st.data())
def test_host_params_corruptions_are_refused_or_harmless(tmp_path_factory, data):
    d = tmp_path_factory.mktemp("npz")
    np.savez(d / "p.npz", s=np.ones((1, 10), np.float32), b=np.zeros(10, np.float32))
    (d / "p.npz").write_bytes(corrupt_bytes(data, (d / "p.npz").read_bytes()))
    try:
        params = drv.load_npz(d / "p.npz")
    except FracskipError:
        return
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in params.values())


# ---------------------------------------------------------------- the driver's packing

TYPES = st.one_of(st.sampled_from(["BINARY", "BIPOLAR"]),
                  st.builds(lambda s, b: f"{'INT' if s else 'UINT'}{b}", st.booleans(), st.integers(2, 32)),
                  st.builds(lambda b: f"UINT{b}", st.integers(2, 32)))


@st.composite
def typed_arrays(draw):
    name = draw(TYPES)
    dt = drv.IntType.parse(name)
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    x = rng.integers(dt.min, dt.max + 1, shape, dtype=np.int64)
    if name == "BIPOLAR":
        x = np.where(x > 0, 1, -1)
    x.flat[0] = draw(st.sampled_from([dt.min, dt.max]))  # an extreme, where two's complement goes wrong
    return name, x


@settings(SETTINGS, max_examples=150)
@given(typed_arrays())
def test_pack_round_trips_and_matches_finn(arr):
    from finn.util.data_packing import finnpy_to_packed_bytearray
    from qonnx.core.datatype import DataType

    name, x = arr
    dt = drv.IntType.parse(name)
    packed = drv.pack(x.astype(np.float64), name)
    assert packed.dtype == np.uint8 and packed.shape == x.shape[:-1] + ((x.shape[-1] * dt.bits + 7) // 8,)
    np.testing.assert_array_equal(drv.unpack(packed, name, x.shape), x.astype(np.float32))
    if dt.bits <= 24:  # FINN's container is float32, exact up to 24 bits
        ref = finnpy_to_packed_bytearray(x.astype(np.float32), DataType[name], reverse_inner=True, reverse_endian=True)
        np.testing.assert_array_equal(packed, ref)  # FINN's own packing: the independent reference


BAD_VALUES = st.one_of(st.just(np.nan), st.just(np.inf), st.just(0.5), st.just(-1e30), st.just(1e30),
                       st.integers(-(2**40), 2**40))


@settings(SETTINGS, max_examples=150)
@given(TYPES, st.lists(BAD_VALUES, min_size=1, max_size=6))
def test_pack_refuses_what_the_type_cannot_hold(name, values):
    dt = drv.IntType.parse(name)
    x = np.array(values, dtype=np.float64)
    fits = np.all(np.isfinite(x)) and np.all(x == np.round(x)) and x.min() >= dt.min and x.max() <= dt.max \
        and (name != "BIPOLAR" or np.all(np.abs(x) == 1))
    if fits:
        np.testing.assert_array_equal(drv.unpack(drv.pack(x, name), name, x.shape), x.astype(np.float32))
    else:
        with pytest.raises(FracskipError):
            drv.pack(x, name)


@settings(SETTINGS, max_examples=100)
@given(TYPES, st.binary(max_size=40), st.lists(st.integers(0, 6), min_size=1, max_size=3))
def test_unpack_refuses_buffers_of_the_wrong_size(name, raw, shape):
    dt = drv.IntType.parse(name)
    buf = np.frombuffer(raw, np.uint8)
    try:
        y = drv.unpack(buf, name, tuple(shape))
    except FracskipError:
        return
    assert y.shape == tuple(shape) and buf.size == int(np.prod(shape[:-1])) * ((shape[-1] * dt.bits + 7) // 8)
    assert y.min() >= dt.min and y.max() <= dt.max
