import copy

import numpy as np
import pytest

from bci import ConfigError, StageCompatibilityError
from bci.stream import (
    Pipeline,
    SignalChunk,
    SpikeChunk,
    Stage,
    StreamSpec,
    empty_spikes,
    get_stage_class,
    stage_from_dict,
)


class Gain(Stage, name="test_gain"):
    def __init__(self, factor: float = 2.0, *, label: str = "g") -> None:
        self.factor = factor
        self.label = label

    def process(self, chunk: SignalChunk) -> SignalChunk:
        return SignalChunk(
            chunk.data * np.float32(self.factor), chunk.first_sample, chunk.sfreq, chunk.t_lsl
        )


class Accumulate(Stage, name="test_accumulate"):
    """Emits one chunk per ``every`` inputs: exercises carried state and the None path."""

    def __init__(self, every: int = 2) -> None:
        self.every = every
        self.seen = 0

    def process(self, chunk: SignalChunk) -> SignalChunk | None:
        self.seen += 1
        return chunk if self.seen % self.every == 0 else None

    def reset(self) -> None:
        self.seen = 0


class Counted(Accumulate):
    def __init__(self, every: int) -> None:
        super().__init__(every)


class Detector(Stage, name="test_detector"):
    def prepare(self, upstream: StreamSpec) -> StreamSpec:
        super().prepare(upstream)
        self.output_spec = upstream.evolve(kind="spikes")
        return self.output_spec

    def process(self, chunk: SignalChunk) -> SpikeChunk:
        return SpikeChunk(empty_spikes(), chunk.first_sample, chunk.last_sample, chunk.sfreq)


def _chunk(value: float = 1.0) -> SignalChunk:
    return SignalChunk(np.full((4, 2), value, np.float32), 0, 1000.0, np.zeros(4))


SPEC = StreamSpec("signal", 2, 1000.0)


def test_constructor_arguments_are_captured_with_defaults():
    assert Gain(3.0).to_dict() == {"stage": "test_gain", "params": {"factor": 3.0, "label": "g"}}
    assert Gain(label="x").params == {"factor": 2.0, "label": "x"}


def test_a_deep_copy_carries_the_state_and_then_runs_on_its_own():
    """``copy.deepcopy`` snapshots a stage mid-stream (the soak's host reference restarts from
    one): constructor arguments without defaults and carried state (filter memory) both copy."""
    from bci.preprocessing import BandPass

    stage = BandPass(low_hz=300.0, high_hz=3000.0)
    stage.prepare(StreamSpec("signal", 2, 30000.0))
    rng = np.random.default_rng(0)
    chunks = [rng.normal(0, 10, (600, 2)).astype(np.float32) for _ in range(3)]
    stage.process(SignalChunk(chunks[0], 0, 30000.0, np.zeros(600)))
    snapshot = copy.deepcopy(stage)
    assert snapshot.params == stage.params and snapshot.output_spec == stage.output_spec
    for k, data in enumerate(chunks[1:], start=1):  # the same input, the same output: same state
        a = snapshot.process(SignalChunk(data, 600 * k, 30000.0, np.zeros(600)))
        b = stage.process(SignalChunk(data, 600 * k, 30000.0, np.zeros(600)))
        np.testing.assert_array_equal(a.data, b.data)
    counter = Counted(2)  # its one argument has no default
    counter.process(_chunk())
    twin = copy.deepcopy(counter)
    assert twin.process(_chunk()) is not None  # its second input: the count was copied
    assert counter.seen == 1  # and the original's did not move


def test_to_dict_round_trip_rebuilds_an_equal_pipeline():
    pipeline = Pipeline([Gain(3.0), Accumulate(every=3)])
    rebuilt = Pipeline.from_dict(pipeline.to_dict())
    assert rebuilt.to_dict() == pipeline.to_dict()
    assert isinstance(rebuilt.stages[1], Accumulate) and rebuilt.stages[1].every == 3


def test_registry_names_unknown_stage_and_lists_known_ones():
    assert get_stage_class("test_gain") is Gain
    with pytest.raises(ConfigError, match="'test_gain'.*but got 'nope'"):
        get_stage_class("nope")


def test_registry_accepts_module_paths():
    stage = stage_from_dict({"stage": f"{__name__}:Gain", "params": {"factor": 5.0}})
    assert isinstance(stage, Gain) and stage.factor == 5.0


def test_pipeline_runs_stages_in_order_and_stops_on_none():
    pipeline = Pipeline([Gain(2.0), Accumulate(every=2), Gain(10.0)])
    assert pipeline.prepare(SPEC) == SPEC
    assert pipeline.process(_chunk()) is None
    out = pipeline.process(_chunk())
    np.testing.assert_array_equal(out.data, 20.0)
    timing = pipeline.timing()
    assert [row["calls"] for row in timing] == [2, 2, 1]
    assert all(row["max_ms"] >= row["p50_ms"] >= 0 for row in timing)
    pipeline.reset()
    assert pipeline.stages[1].seen == 0


def test_prepare_names_the_incompatible_pair():
    pipeline = Pipeline([Detector(), Gain()])
    with pytest.raises(StageCompatibilityError, match="stage 1 \\(Gain\\) cannot follow Detector"):
        pipeline.prepare(SPEC)


def test_process_before_prepare_is_refused():
    with pytest.raises(StageCompatibilityError, match="prepare"):
        Pipeline([Gain()]).process(_chunk())


def test_pipeline_rejects_non_stages():
    with pytest.raises(StageCompatibilityError, match="not a bci.stream.Stage"):
        Pipeline([Gain(), lambda c: c])  # type: ignore[list-item]


def test_step_pulls_from_source_and_reports_its_status():
    class ListSource:
        def __init__(self) -> None:
            self.chunks = [_chunk(1.0), None, _chunk(2.0)]

        def pull(self):
            return self.chunks.pop(0)

        def status(self):
            return {"pending": len(self.chunks)}

    pipeline = Pipeline([Gain(2.0)], source=ListSource())
    pipeline.prepare(SPEC)
    np.testing.assert_array_equal(pipeline.step().data, 2.0)
    assert pipeline.step() is None
    np.testing.assert_array_equal(pipeline.step().data, 4.0)
    assert pipeline.status()["source"] == {"pending": 0}
