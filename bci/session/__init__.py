"""Sessions: recording, loading recordings into neo, run folders."""

from bci.session.load import load  # noqa: F401
from bci.session.nix import load_nix, save_nix, write_run_nix  # noqa: F401
from bci.session.run_folder import create_run_dir, write_config, write_summary  # noqa: F401
