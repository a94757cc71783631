"""hls/accelerator.py's arithmetic, no simulation: the shares of a stream over several Verilator models, block-RAM
FIFO geometry and the budget reserved for what sized FIFOs and synthesis take beyond the folding's figures (apart from
test_accelerator.py, whose tests need Verilator)."""

from __future__ import annotations

import numpy as np
import pytest


def test_shares_of_a_stream_and_their_pooled_spacing():
    """``fracskip simulate --jobs``: contiguous shares of two images or more covering the stream in order, at most
    as many as asked; a pooled steady state weighs each share's spacing by its gaps between results."""
    from fracskip.hls import accelerator as A

    for n, jobs in ((200, 2), (201, 3), (7, 4), (3, 2), (1, 8), (5, 1)):
        shares = A.chunks(n, jobs)
        assert 1 <= len(shares) <= jobs and shares[0].start == 0 and shares[-1].stop == n
        assert all(a.stop == b.start for a, b in zip(shares, shares[1:]))
        assert n < 2 or all(s.stop - s.start >= 2 for s in shares), (n, jobs, shares)
    assert [(s.start, s.stop) for s in A.chunks(200, 2)] == [(0, 100), (100, 200)]
    assert A.pooled_spacing([100.0, 130.0], [slice(0, 3), slice(3, 7)]) == pytest.approx((100 * 2 + 130 * 3) / 5)
    assert A.pooled_spacing([250.0], [slice(0, 1)]) == 250.0  # one image: its latency, as one model reports it


def test_block_ram_depth_takes_the_cheaper_geometry():
    """A FIFO in block RAM goes down (never below ``BRAM_DEPTH_FLOOR`` of its depth) to the largest depth that
    fifo.sv builds with fewer BRAM18, by FINN's cost; a FIFO in LUTs, or one no cheaper below, keeps its depth."""
    from finn.util.resource_models import _fifo_cost
    from fracskip.hls import accelerator as A

    part = "xc7z020clg400-1"
    assert A.block_ram_depth(12545, 8, part) == 12289  # a frame of 16 x 28 x 28 words, plus one: 8 -> 6 BRAM18
    assert A.block_ram_depth(100, 8, part) == 100  # LUT RAM
    # 12,289 words (6 BRAM18) lie a fraction of a word below BRAM_DEPTH_FLOOR of 14,458 (8): not taken
    assert A.block_ram_depth(14458, 8, part) == 14458 and 12289 < A.BRAM_DEPTH_FLOOR * 14458 < 12290
    rng = np.random.default_rng(3)
    rounded = 0
    for depth, width in zip(rng.integers(2, 40000, 300), rng.choice([8, 16, 24, 64], 300)):
        got = A.block_ram_depth(int(depth), int(width), part)
        cost, was = (_fifo_cost(d, int(width), "block").bram for d in (got, int(depth)))
        assert A.BRAM_DEPTH_FLOOR * depth <= got <= depth
        assert got == depth or cost < was, (depth, width, got)
        rounded += got < depth
        if got < depth:  # the largest such depth
            assert all(_fifo_cost(d, int(width), "block").bram >= was for d in range(got + 1, min(depth, got + 64)))
    assert 30 < rounded < 270, rounded


def test_sized_fifos_over_the_device_are_reserved_from_the_budget():
    """What the sized FIFOs take beyond the folding's figures is reserved only for the resources over the device,
    and the budget then leaves the device room for them (never more than the budget was)."""
    from fracskip.hls import accelerator as A
    from fracskip.hls.pipeline_folding import budget_with_reserve

    board = {"resources": {"LUT": 53200, "BRAM_18K": 280, "DSP": 220}}
    report = {"resources_estimate_inserted": {"LUT": 42000.0, "BRAM_18K": 208.0, "DSP": 102.0},
              "resources_estimate_emitted": {"total": {"LUT": 45800.0, "BRAM_18K": 304.0, "DSP": 102.0}}}
    assert A.sized_extra(report, board) == {"BRAM_18K": 96.0}  # LUT grew too, but fits
    budget = {"LUT": 42560.0, "BRAM_18K": 224.0, "DSP": 176.0}
    assert budget_with_reserve(budget, board["resources"], {"BRAM_18K": 96.0}) == {
        "LUT": 42560.0, "BRAM_18K": 184.0, "DSP": 176.0}
    assert budget_with_reserve(budget, board["resources"], {"BRAM_18K": 10.0}) == budget  # the budget binds
    assert budget_with_reserve(budget, board["resources"], None) == budget
    report["resources_estimate_emitted"]["total"]["BRAM_18K"] = 280.0
    assert A.sized_extra(report, board) == {}


def test_over_the_device_by_yosys_the_reserve_grows_with_what_foldings_save():
    """``synth_extra``: what Yosys finds beyond the folding's estimate, for the resources over the device only; at
    least the reserve so far plus the excess; the excess divided by what the last folding saved in synthesized per
    estimated LUT when that is less than one (floored), so that a folding whose estimate falls faster than its
    synthesized figure is followed by a larger step."""
    from fracskip.hls import accelerator as A

    board = {"resources": {"LUT": 53200, "BRAM_18K": 280, "DSP": 220}}
    report = {"resources_estimate_inserted": {"LUT": 41000.0, "BRAM_18K": 100.0, "DSP": 90.0},
              "resources_synth": {"LUT": 55700, "FF": 38000, "BRAM_18K": 90, "DSP": 92}}
    assert A.synth_extra(report, board, {}) == {"LUT": 14700.0}  # FF is not budgeted; BRAM and DSP fit
    assert A.synth_extra(report, board, {"LUT": 12000.0}) == {"LUT": 14700.0}  # beyond the estimate
    assert A.synth_extra(report, board, {"LUT": 14500.0}) == {"LUT": 17000.0}  # the reserve plus the excess
    last = {"folded": {"LUT": 43000.0, "BRAM_18K": 100.0, "DSP": 90.0}, "synth": {"LUT": 56200, "BRAM_18K": 90}}
    # 2,000 estimated LUT saved 500 synthesized: the 2,500 LUT excess needs 10,000 estimated
    assert A.synth_extra(report, board, {"LUT": 14500.0}, last) == {"LUT": 24500.0}
    last["synth"]["LUT"] = 55700  # nothing saved: the step is floored at ten times the excess
    assert A.synth_extra(report, board, {"LUT": 14500.0}, last) == {"LUT": 14500.0 + 2500 / A.SYNTH_GAIN_FLOOR}
    # block RAM newly over the device after a folding with LUTs reserved (its estimate fell, Yosys's figure rose):
    # the plain step, not one scaled by a saving that folding never aimed at
    report["resources_synth"]["BRAM_18K"], last["folded"]["BRAM_18K"] = 311, 120.0
    assert A.synth_extra(report, board, {"LUT": 14500.0}, last)["BRAM_18K"] == 311 - 100.0
    report["resources_synth"]["LUT"], report["resources_synth"]["BRAM_18K"] = 53200, 90
    assert A.synth_extra(report, board, {"LUT": 14500.0}, last) == {}


def test_the_ipi_check_knows_the_shared_rtl_modules():
    """stitch_problems reports an instance no added file declares when the module is one of fracskip's or FINN's
    libraries (an omitted file list entry): the shared modules of hls/rtl/ count among them, and MVAU_lut's top
    instantiates them."""
    from fracskip.hls.lutmvu.core import rtl_dir
    from fracskip.hls.stitch_ip import _declared_modules, _library_modules, _unresolved_instances

    assert {"fracskip_addtree", "fracskip_buf2"} <= _library_modules()
    missing = _unresolved_instances(_declared_modules([str(rtl_dir() / "lutmvu.v")]))
    assert any("fracskip_addtree" in str(p) for p in missing) and any("fracskip_buf2" in str(p) for p in missing)


def test_a_model_without_a_steady_state_trims_and_deepens_nothing():
    """The frame-sequence model gives inf when it finds no steady state within its sweeps: every trial then compared
    as no loss (inf <= inf), so every candidate FIFO was cut to 32 words and every frame buffer deepened to the
    limit, for nothing. A stand-in model that always gives inf."""
    from fracskip.hls import fifo_model
    from fracskip.hls.accelerator import FRAME_BUFFER

    class Fifo:
        def get_instream_width(self):
            return 64

    class NoSteadyState:
        fifos = {"a": Fifo(), "b": Fifo(), f"x{FRAME_BUFFER}": Fifo()}

        def cycles(self, depths):
            return float("inf")

        def bits(self, depths):
            return sum(depths.values()) * 64

        def words(self, k):
            return 100

    depths = {"a": 5000, "b": 4000, f"x{FRAME_BUFFER}": 201}
    assert fifo_model.trim(NoSteadyState(), depths) == (depths, [])
    out, steps = fifo_model.deepen(NoSteadyState(), depths, lambda d: True)
    assert out == depths and len(steps) == 1


class _Width:
    def __init__(self, bits: int):
        self.bits = bits

    def get_instream_width(self) -> int:
        return self.bits


class _StandIn:
    """``fifo_model.SequenceModel`` with known figures: FIFOs of given widths and words per frame, and cycles per
    image from ``cycles(depths)``."""

    def __init__(self, widths: dict, words: dict, cycles):
        self.fifos = {k: _Width(w) for k, w in widths.items()}
        self._words, self._cycles = words, cycles

    def words(self, k: str) -> int:
        return self._words[k]

    def bits(self, depths: dict) -> int:
        return sum(d * self.fifos[k].get_instream_width() for k, d in depths.items())

    def cycles(self, depths: dict) -> float:
        return self._cycles(depths)


def test_trimming_on_the_steady_state_takes_the_fifos_that_cost_little():
    """``fifo_model.trim`` on a stand-in model whose cycles per image grow by a known share for each FIFO
    trimmed: the candidates (a RAMB18's bits or more, exactly that too; no frame buffer, none of ``spare``) go
    down to TRIM_DEPTH, or their floor, where that loses at most TRIM_LOSS; the group that loses more is halved
    until only the FIFO that costs more is left as it was."""
    from fracskip.hls import fifo_model as F
    from fracskip.hls.accelerator import FRAME_BUFFER

    buf = f"b{FRAME_BUFFER}"
    widths = {"idle": 64, "cheap": 64, "hot": 64, "edge": 18, "window": 64, "small": 64, buf: 256}
    depths = {"idle": 5000, "cheap": 4000, "hot": 3000, "edge": 1024, "window": 5000, "small": 100, buf: 201}
    assert depths["edge"] * widths["edge"] == F.TRIM_BITS
    loss = {"cheap": F.TRIM_LOSS * 0.75, "hot": F.TRIM_LOSS * 5}  # relative cycles per image, each when trimmed

    def cycles(d):
        return 1000.0 * (1 + sum(loss.get(k, 0.0) for k in d if d[k] < depths[k]))

    out, trimmed = F.trim(_StandIn(widths, {}, cycles), depths, spare={"window"}, floor={"idle": 40})
    assert sorted(trimmed) == ["cheap", "edge", "idle"]
    assert out == {**depths, "idle": 40, "cheap": F.TRIM_DEPTH, "edge": F.TRIM_DEPTH}


@pytest.mark.parametrize("gain, fits, more", [
    ({1: 900, 2: 850, 3: 845}, None, 2),  # the third frame buys 0.6 %: not taken
    ({1: 900, 2: 800, 3: 700}, None, 3),  # every frame pays, up to DEEPEN_MAX
    ({1: 900, 2: 800, 3: 700}, 201, 1),  # the device holds a frame more, not two
])
def test_deepening_adds_frames_while_each_buys_its_gain_and_fits(gain, fits, more):
    """``fifo_model.deepen`` on a stand-in model whose cycles per image follow the frames the frame buffer holds
    beyond its own, as far as its decisions' stream (a token stream: a frame of one word) holds a frame more
    than that (else the block that ran ahead waits on it): a frame at a time while each buys DEEPEN_GAIN against
    the step before and the design fits, and on from there when deepened again."""
    from fracskip.hls import fifo_model as F
    from fracskip.hls.accelerator import FRAME_BUFFER

    assert F.DEEPEN_MAX == 3
    buf, tok = f"b{FRAME_BUFFER}", "decisions"
    seq = _StandIn({buf: 64, tok: 8, "other": 64}, {buf: 100, tok: 1, "other": 100},
                   lambda d: float({0: 1000, **gain}[min((d[buf] - 1) // 100 - 1, d[tok] - 3)]))
    depths = {buf: 101, tok: 3, "other": 50}  # the frame buffer holds its frame, the decisions' stream two
    ok = (lambda d: True) if fits is None else (lambda d: d[buf] <= fits)
    out, steps = F.deepen(seq, depths, ok)
    assert out == {buf: (1 + more) * 100 + 1, tok: 3 + more, "other": 50}
    assert [s[:2] for s in steps] == [(0, 1000.0)] + [(m, gain[m]) for m in range(1, more + 1)]
    assert [s[2] for s in steps] == sorted({s[2] for s in steps})  # each frame more costs bits
    assert F.frames_held(seq, depths) == 0 and F.frames_held(seq, out) == more
    assert F.deepen(seq, out, ok) == (out, steps[-1:])


def test_a_budget_no_folding_fits_is_refused_before_sizing():
    """Sizing the FIFOs of a folding over budget would simulate its millions of cycles per image for hours."""
    from fracskip.errors import FracskipError
    from fracskip.hls.accelerator import refuse_unfitted

    summary = {"board": {"name": "Pynq-Z2", "resources": {"LUT": 53200, "BRAM_18K": 280, "URAM": 0, "DSP": 220}}}
    info = {"design": "dfs", "fits_estimate": False, "cycles_per_image_model": 11.6e6,
            "resources_estimate": {"LUT": 23100.0, "BRAM_18K": 40.0, "URAM": 0.0, "DSP": 30.0},
            "budget": {"LUT": 15960.0, "BRAM_18K": 84.0, "URAM": 0.0, "DSP": 66.0}}
    with pytest.raises(FracskipError, match=r"LUT 23,100 of the budget's 15,960 \(11,600,000 cycles per image\); "
                                            r"pass --budget 0\.44 or more \(of the Pynq-Z2\)"):
        refuse_unfitted(info, summary)
    with pytest.raises(FracskipError, match="the Pynq-Z2 cannot hold it"):
        refuse_unfitted({**info, "resources_estimate": {**info["resources_estimate"], "LUT": 60000.0}}, summary)
    refuse_unfitted({**info, "fits_estimate": True}, summary)  # within the budget: nothing to say


def test_a_folding_over_budget_by_its_converters_and_fifos_is_refused_by_name():
    """The nodes alone within the budget, FINN's width converters and FIFOs beside them not: the refusal names the
    resource over (it named none, and told a board that holds the design to be replaced)."""
    from fracskip.errors import FracskipError
    from fracskip.hls.accelerator import refuse_unfitted

    summary = {"board": {"name": "Pynq-Z2", "resources": {"LUT": 53200, "BRAM_18K": 280, "URAM": 0, "DSP": 220}}}
    info = {"design": "dfs", "fits_estimate": False, "cycles_per_image_model": 30000.0,
            "resources_estimate": {"LUT": 41000.0, "BRAM_18K": 200.0, "URAM": 0.0, "DSP": 100.0},
            "resources_estimate_inserted": {"LUT": 44000.0, "BRAM_18K": 200.0, "URAM": 0.0, "DSP": 100.0},
            "budget": {"LUT": 42560.0, "BRAM_18K": 224.0, "URAM": 0.0, "DSP": 176.0}}
    with pytest.raises(FracskipError, match=r"included, LUT 44,000 of the budget's 42,560 \(30,000 cycles per image\); "
                                            r"pass --budget 0\.83 or more"):
        refuse_unfitted(info, summary)


def test_a_refold_no_folding_fits_is_refused_before_sizing(tmp_path, monkeypatch):
    """The sized FIFOs put the emitted design over the device; folded again with them reserved, no folding fits
    the budget left: that folding is not sized (hours of Verilator for the slowest, and over the device again,
    round after round up to EMITTED_FIT_ROUNDS) but refused. Every step but the loop's own is a stand-in."""
    import json
    from types import SimpleNamespace as NS

    from fracskip.errors import FracskipError
    from fracskip.hls import accelerator as A
    from fracskip.hls import fifo_memory, fifo_model, rtlsim

    board = {"name": "Pynq-Z2", "part": "xc7z020clg400-1", "clk_ns": 10.0,
             "resources": {"LUT": 53200, "BRAM_18K": 280, "URAM": 0, "DSP": 220}}
    (tmp_path / "summary.json").write_text(json.dumps({"board": board}))
    model = NS(save=lambda path: None, graph=NS(node=[], input=[], output=[]), get_nodes_by_op_type=lambda op: [])
    folded = {"LUT": 40000.0, "BRAM_18K": 220.0, "URAM": 0.0, "DSP": 100.0}
    sized = []

    def compose_design(build_dir, design, progress, reserve):
        return model, {"design": design, "fits_estimate": not reserve, "cycles_per_image_model": 3e4,
                       "resources_estimate": folded, "resources_estimate_inserted": folded, "budget": folded}

    def size_fifos(model, stream, *args, **kwargs):
        sized.append(len(stream))
        return model, NS(total_bits=0, sized_cycles=3e4, sized_run=NS(), to_dict=dict)

    monkeypatch.setattr(rtlsim, "setup_finn", lambda *args: None)
    monkeypatch.setattr(rtlsim, "finn_estimate", lambda model: {"max_cycles": 1})
    monkeypatch.setattr(fifo_model, "SequenceModel", lambda *args: None)
    monkeypatch.setattr(fifo_memory, "place", lambda model, *args: (model, []))
    monkeypatch.setattr(A, "Host", lambda build_dir: NS(stream=lambda images: images))
    monkeypatch.setattr(A, "compose_design", compose_design)
    monkeypatch.setattr(A, "to_hw", lambda model, part, clk: model)
    monkeypatch.setattr(A, "sequence_decisions", lambda build_dir: (None, None, None))
    monkeypatch.setattr(A, "size_fifos", size_fifos)
    monkeypatch.setattr(A, "deepen_frame_buffers", lambda seq, board: (model, {}))
    monkeypatch.setattr(A, "verify_emitted", lambda *args, **kwargs: {})
    monkeypatch.setattr(A, "emitted_fit", lambda model, board: {  # the sized FIFOs: 100 BRAM18 over the device
        "resources_estimate_emitted": {"total": {**folded, "BRAM_18K": 380.0}}, "fits_device_estimate_emitted": False})
    with pytest.raises(FracskipError, match=r"no folding fits beside what it takes beyond the folding "
                                            r"\(BRAM_18K 160\)"):
        A.build_accelerator(tmp_path, np.zeros((4, 1, 28, 28), np.uint8))
    assert len(sized) == 1


@pytest.mark.parametrize("args, said", [
    (["--python", "-1", "--simulate", "3"], "--python: a whole number of images, 0 or more, not '-1'"),
    (["--simulate", "-2"], "--simulate: a whole number of images, 0 or more"),
    (["--images", "1"], "--images: a whole number of images, 2 or more, not '1'"),
    (["--no-build"], "--no-build simulates the accelerator the build has: give --simulate M"),
])
def test_the_module_command_refuses_what_it_cannot_run(tmp_path, capsys, args, said):
    """``python -m fracskip.hls.accelerator``: counts it cannot use are refused before any work (a negative
    --python ran FINN's python execution on all the images but the last and reported nan; one sizing image has no
    steady state), and a folder that is no build is named as such (not a FileNotFoundError of calibration.json)."""
    from fracskip.hls import accelerator as A

    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(SystemExit) as e:
        A.main([str(tmp_path), *args])
    assert e.value.code == 2 and said in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        A.main([str(tmp_path / "nothing"), "--simulate", "1"])
    assert e.value.code == 2 and "has no summary.json" in capsys.readouterr().err


def test_build_accelerator_refuses_one_sizing_image_and_an_interface_pe_it_ignores(tmp_path):
    """One sizing image has no steady state (``fracskip build --sizing-images`` refuses it likewise); a static
    design, like dfs, takes its interface PE from the folding, and its report named the one passed."""
    from fracskip.errors import FracskipError
    from fracskip.hls import accelerator as A

    (tmp_path / "summary.json").write_text("{}")
    with pytest.raises(FracskipError, match="1 sizing image"):
        A.build_accelerator(tmp_path, np.zeros((1, 1, 28, 28), np.uint8))
    with pytest.raises(FracskipError, match="design static_W4A4 takes its interface PE from the folding"):
        A.build_accelerator(tmp_path, None, design="static_W4A4", iface_pe=2)
