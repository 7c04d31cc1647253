import numpy as np
import pytest
from lsl_testing import open_inlet

from bci import ConfigError, StreamMismatchError
from bci.acquisition.metadata import make_stream_info, read_channel_info
from bci.acquisition.outlet import MarkerOutlet, SignalOutlet


def test_metadata_survives_the_network(source_id):
    positions = np.array([[0.0, 0.0], [0.0, 25.0], [16.0, 50.0]])
    info = make_stream_info(
        "probe",
        "Neural",
        3,
        30000.0,
        "int16",
        source_id,
        labels=["a", "b", "c"],
        units="uV",
        positions=positions,
    )
    outlet = SignalOutlet(info)
    inlet = open_inlet(source_id)
    channels = read_channel_info(inlet.info(timeout=5.0))
    assert channels.labels == ("a", "b", "c")
    assert channels.units == ("uV",) * 3
    assert channels.types == ("Neural",) * 3
    np.testing.assert_allclose(channels.positions, positions)
    del outlet


def test_int16_push_rounds_and_clips_instead_of_wrapping(source_id):
    outlet = SignalOutlet(make_stream_info("clip", "Neural", 2, 1000.0, "int16", source_id))
    inlet = open_inlet(source_id)
    outlet.wait_for_consumers(5.0)
    outlet.push(np.array([[1.6, -40000.0], [70000.0, -2.4]]))
    data, _ = inlet.pull_chunk(timeout=5.0, max_samples=2)
    assert np.asarray(data).tolist() == [[2, -32768], [32767, -2]]


def test_bad_metadata_and_shapes_are_refused(source_id):
    with pytest.raises(ConfigError, match="'labels'.*2 entries for 3 channels"):
        make_stream_info("x", "Neural", 3, 100.0, labels=["a", "b"])
    with pytest.raises(ConfigError, match="'channel_format'"):
        make_stream_info("x", "Neural", 3, 100.0, "float16")
    with pytest.raises(ConfigError, match="positions"):
        make_stream_info("x", "Neural", 3, 100.0, positions=np.zeros((3, 3)))
    outlet = SignalOutlet(make_stream_info("x", "Neural", 3, 100.0, source_id=source_id))
    with pytest.raises(StreamMismatchError, match=r"\(n, 3\)"):
        outlet.push(np.zeros((4, 2)))
    with pytest.raises(StreamMismatchError, match="MarkerOutlet"):
        SignalOutlet(make_stream_info("m", "Markers", 1, 0.0, "string", source_id + "-m"))


def test_marker_outlet_round_trip(source_id):
    outlet = MarkerOutlet(make_stream_info("m", "Markers", 1, 0.0, "string", source_id, units=""))
    inlet = open_inlet(source_id)
    outlet.outlet.wait_for_consumers(5.0)
    outlet.push("unit=3 ch=12", 12.5)
    sample, timestamp = inlet.pull_sample(timeout=5.0)
    assert sample == ["unit=3 ch=12"] and timestamp == pytest.approx(12.5)
