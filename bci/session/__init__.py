"""Sessions: recording, loading recordings into neo, run folders."""

from bci.session.files import (  # noqa: F401
    RecordingFormatError,
    RecordingNotFoundError,
    read_xdf,
    resolve_recording_path,
)
from bci.session.load import load  # noqa: F401
from bci.session.nix import load_nix, save_nix, write_run_nix  # noqa: F401
from bci.session.recorder import (  # noqa: F401
    Recorder,
    RecorderError,
    StreamQuery,
    find_streams,
)
from bci.session.recorder_process import RecorderProcess, spawn_recorder  # noqa: F401
from bci.session.repair import repair  # noqa: F401
from bci.session.run_folder import create_run_dir, write_config, write_summary  # noqa: F401
from bci.session.xdf import StreamSummary, XDFWriter  # noqa: F401
from bci.session.xdf_read import XDFFormatError, scan_xdf  # noqa: F401
