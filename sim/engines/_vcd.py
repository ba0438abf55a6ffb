"""What every engine's cycle model shares around its core: clock, reset, VCD output with the RTL's
port names (pyvcd), and `step` over the config's streams."""

from __future__ import annotations

from pathlib import Path

from ..numerics import pack, unpack

__all__ = ["VcdMixin", "StreamStepMixin"]


class VcdMixin:
    """What every cycle model shares around its core (`self.core`, with `cycle` and `reset()`):
    the clock, reset, and VCD output of `self.cfg.ports()`. A model calls `self._init_waves(path)`
    in its constructor and `self._dump(cycle, ins, outs)` in `step`."""

    @property
    def cycle(self) -> int:
        return int(self.core.cycle)

    def reset(self) -> None:
        self.core.reset()

    def _init_waves(self, vcd_path) -> None:
        self._vcd = None
        if vcd_path is not None:
            self._open_vcd(Path(vcd_path))

    def _open_vcd(self, path: Path) -> None:
        from vcd import VCDWriter

        path.parent.mkdir(parents=True, exist_ok=True)
        self._vcd_file = open(path, "w")
        self._vcd = VCDWriter(self._vcd_file, timescale="1 ns", date="today")
        top = "model"
        self._vars = {"clk": self._vcd.register_var(top, "clk", "wire", size=1, init=0)}
        for p in self.cfg.ports():
            self._vars[p.name] = self._vcd.register_var(top, p.name, "wire", size=p.width, init=0)

    def _dump(self, t: int, ins: dict, outs: dict) -> None:
        # Same period as the testbench clock (10 ns): inputs change at the falling edge (t*10+5),
        # outputs are the values seen then; registers update at the rising edge.
        base = t * 10
        w = self._vcd
        w.change(self._vars["clk"], base, 1)
        w.change(self._vars["clk"], base + 5, 0)
        for name, val in list(ins.items()) + list(outs.items()):
            if name in self._vars:
                w.change(self._vars[name], base + 5, int(val))

    def close(self) -> None:
        if self._vcd is not None:
            self._vcd.close(self.cycle * 10 + 10)
            self._vcd_file.close()
            self._vcd = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class StreamStepMixin(VcdMixin):
    """`step` for a core whose `step` takes the config's streams in order and returns them in order.

    Arguments: for each input stream, its valid, each payload's lanes (a list) and its last (if the
    stream has one); then each output stream's ready. Results: each input stream's ready, then for
    each output stream its valid, its last (if any) and each payload's lanes. A model whose core
    differs overrides `step`."""

    def step(self, ins: dict[str, int]) -> dict[str, int]:
        """Apply this cycle's inputs, return this cycle's outputs, then clock once."""
        streams = self.cfg.streams()
        args = []
        for st in streams:
            if st.direction == "in":
                args.append(int(ins.get(st.valid, 0)))
                args += [unpack(ins.get(p.port, 0), p.lanes, p.bits, p.signed) for p in st.payload]
                if st.last is not None:
                    args.append(int(ins.get(st.last, 0)))
        args += [int(ins.get(st.ready, 0)) for st in streams if st.direction == "out"]
        t = self.cycle
        res = iter(self.core.step(*args))
        outs = {st.ready: int(next(res)) for st in streams if st.direction == "in"}
        for st in streams:
            if st.direction == "out":
                outs[st.valid] = int(next(res))
                if st.last is not None:
                    outs[st.last] = int(next(res))
                for p in st.payload:
                    outs[p.port] = pack(next(res), p.bits)
        if self._vcd is not None:
            self._dump(t, ins, outs)
        return outs
