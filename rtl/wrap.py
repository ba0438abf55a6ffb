"""A registered I/O wrapper for FPGA synthesis of any engine: every input and output port of the
engine's top (from `cfg.ports()`) sits behind a flip-flop, so place-and-route times the engine's own
paths, and the whole engine is reached through five pins (a scan chain in, a capture chain out).

The wrapper is plain Verilog built from the port list alone (no engine names). The engine instance
carries `keep_hierarchy`, so synthesis keeps it a module of its own and `stat` counts it apart from
the wrapper (whose cost is exactly `in_bits` + `out_bits` + 1 flip-flops and about `out_bits` LUTs).
"""

from __future__ import annotations

from dataclasses import dataclass

from tpesim.rtl import _common

__all__ = ["WRAPPER_NAME", "WrapperInfo", "wrapper_info", "wrapper_verilog"]

WRAPPER_NAME = "tpesim_synth_top"
# The pins: the clock, a reset (registered once before it reaches the engine), the scan-in bit, the
# shift enable (both chains shift), the capture enable (the output chain loads the engine's outputs)
# and the scan-out bit.
PINS = ("clk", "rst_pin", "scan_in", "scan_shift", "scan_capture", "scan_out")


@dataclass(frozen=True)
class WrapperInfo:
    """What the wrapper adds around an engine (reported beside the engine's own resources)."""

    in_bits: int     # engine input bits, one flip-flop each (the input scan chain)
    out_bits: int    # engine output bits, one flip-flop each (the capture chain)
    pins: int        # FPGA pins of the wrapped design

    @property
    def ffs(self) -> int:
        """Flip-flops of the wrapper: both chains and the reset register."""
        return self.in_bits + self.out_bits + 1


def wrapper_info(cfg) -> WrapperInfo:
    ports = cfg.ports()
    return WrapperInfo(in_bits=sum(p.width for p in ports if p.direction == "in"),
                       out_bits=sum(p.width for p in ports if p.direction == "out"),
                       pins=len(PINS))


def wrapper_verilog(cfg, inner: str, name: str = WRAPPER_NAME) -> str:
    """Verilog of a top module `name` that instantiates module `inner` (the engine built from `cfg`,
    ports clk, rst and `cfg.ports()`) with every input driven by a flip-flop of the input scan
    chain and every output captured by a flip-flop of the output chain."""
    _common.check_name(inner)
    _common.check_name(name)
    ports = cfg.ports()
    ins = [p for p in ports if p.direction == "in"]
    outs = [p for p in ports if p.direction == "out"]
    info = wrapper_info(cfg)
    if not ins or not outs:
        raise ValueError(f"engine {cfg.name} has no input or no output port")
    n_in, n_out = info.in_bits, info.out_bits
    conns = [".clk(clk)", ".rst(rst_r)"]
    lo = 0
    for p in ins:
        conns.append(f".{p.name}(in_q[{lo + p.width - 1}:{lo}])")
        lo += p.width
    lo = 0
    for p in outs:
        conns.append(f".{p.name}(out_d[{lo + p.width - 1}:{lo}])")
        lo += p.width
    # a one-bit chain shifts with {q} <= scan_in (no empty part-select)
    in_next = "{in_q[%d:0], scan_in}" % (n_in - 2) if n_in > 1 else "scan_in"
    out_next = "{1'b0, out_q[%d:1]}" % (n_out - 1) if n_out > 1 else "1'b0"
    inst = ",\n    ".join(conns)
    return f"""// Registered I/O wrapper of {cfg.name} (tpesim.rtl.wrap): every port registered.
module {name} (
  input  wire clk,
  input  wire rst_pin,
  input  wire scan_in,
  input  wire scan_shift,
  input  wire scan_capture,
  output wire scan_out
);
  reg rst_r = 1'b1;
  reg [{n_in - 1}:0] in_q = {n_in}'d0;
  reg [{n_out - 1}:0] out_q = {n_out}'d0;
  wire [{n_out - 1}:0] out_d;
  always @(posedge clk) begin
    rst_r <= rst_pin;
    if (scan_shift) in_q <= {in_next};
    if (scan_capture) out_q <= out_d;
    else if (scan_shift) out_q <= {out_next};
  end
  assign scan_out = out_q[0];
  (* keep_hierarchy *)
  {inner} dut (
    {inst}
  );
endmodule
"""
