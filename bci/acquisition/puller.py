"""Pull LSL chunks into preallocated numpy buffers with as little Python per call as possible.

``pylsl.StreamInlet.pull_chunk(dest_obj=...)`` already writes samples into our buffer, but each call
allocates a time-stamp array, builds a ctypes view of the buffer and, in its ``min_samples`` mode,
concatenates two stamp arrays: about 10 us per call at 384 channels, as much as all of
:class:`~bci.acquisition.LSLSource`'s own work on a 1 ms chunk. :class:`ChunkPuller` makes the same
two liblsl calls (wait for one sample, then take whatever else is ready) through pointers prepared
once. It falls back to ``pull_chunk`` if a pylsl release no longer exposes the inlet's handle.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import numpy.typing as npt
import pylsl
from pylsl.util import handle_error


class ChunkPuller:
    """Pull up to ``max_samples`` samples of ``inlet`` into ``self.data`` and ``self.stamps``.

    Parameters
    ----------
    inlet : pylsl.StreamInlet
        An inlet of a numeric stream.
    max_samples : int
        Capacity of the buffers (samples).
    dtype : numpy dtype
        The stream's sample type (must match its channel format).
    """

    def __init__(self, inlet: pylsl.StreamInlet, max_samples: int, dtype: npt.DTypeLike) -> None:
        self.inlet = inlet
        self.max_samples = int(max_samples)
        self.n_channels = int(inlet.channel_count)
        self.data = np.empty((self.max_samples, self.n_channels), dtype=dtype)
        self.stamps = np.empty(self.max_samples, dtype=np.float64)
        self.direct = hasattr(inlet, "do_pull_chunk") and hasattr(inlet, "obj")
        if not self.direct:
            return
        row_bytes = self.n_channels * self.data.itemsize
        self._pull = inlet.do_pull_chunk
        self._data_ptr = ctypes.c_void_p(self.data.ctypes.data)
        self._stamps_ptr = ctypes.c_void_p(self.stamps.ctypes.data)
        self._data_rest_ptr = ctypes.c_void_p(self.data.ctypes.data + row_bytes)
        self._stamps_rest_ptr = ctypes.c_void_p(self.stamps.ctypes.data + 8)
        self._all_values = ctypes.c_size_t(self.max_samples * self.n_channels)
        self._all_samples = ctypes.c_size_t(self.max_samples)
        self._one_values = ctypes.c_size_t(self.n_channels)
        self._one_sample = ctypes.c_size_t(1)
        self._rest_values = ctypes.c_size_t((self.max_samples - 1) * self.n_channels)
        self._rest_samples = ctypes.c_size_t(self.max_samples - 1)
        self._no_wait = ctypes.c_double(0.0)
        self._wait = ctypes.c_double(0.0)
        self._errcode = ctypes.c_int(0)
        self._errref = ctypes.byref(self._errcode)

    def pull(self, timeout: float = 0.0) -> int:
        """Fill the buffers from their start; return the number of samples pulled.

        With ``timeout`` > 0, wait up to that long for the first sample, then take whatever else is
        ready without waiting (pylsl's ``min_samples=1``). Raises ``pylsl.util.LostError`` when the
        stream is lost and the inlet does not recover.
        """
        if not self.direct:
            return self._pull_with_pylsl(timeout)
        obj = self.inlet.obj
        if timeout <= 0.0:
            n_values = self._pull(
                obj, self._data_ptr, self._stamps_ptr, self._all_values, self._all_samples,
                self._no_wait, self._errref,
            )  # fmt: skip
            if self._errcode.value:
                handle_error(self._errcode)
            return n_values // self.n_channels
        if self._wait.value != timeout:
            self._wait = ctypes.c_double(timeout)
        n_values = self._pull(
            obj, self._data_ptr, self._stamps_ptr, self._one_values, self._one_sample,
            self._wait, self._errref,
        )  # fmt: skip
        if self._errcode.value:
            handle_error(self._errcode)
        if n_values == 0 or self.max_samples == 1:
            return n_values // self.n_channels
        n_values = self._pull(
            obj, self._data_rest_ptr, self._stamps_rest_ptr, self._rest_values,
            self._rest_samples, self._no_wait, self._errref,
        )  # fmt: skip
        if self._errcode.value:
            handle_error(self._errcode)
        return 1 + n_values // self.n_channels

    def _pull_with_pylsl(self, timeout: float) -> int:
        kwargs: dict[str, Any] = {"min_samples": 1} if timeout > 0.0 else {}
        _, stamps = self.inlet.pull_chunk(
            timeout=timeout, max_samples=self.max_samples, dest_obj=self.data, **kwargs
        )
        n = len(stamps)
        self.stamps[:n] = stamps
        return n
