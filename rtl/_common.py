"""Helpers shared by the engines' RTL generators (rtl/systolic.py, rtl/adder_tree.py)."""

from __future__ import annotations

import re

from tpesim.errors import ConfigError

__all__ = ["check_name", "convert", "write"]

_VERILOG_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*\Z")
# IEEE 1364-2005 keywords and the IEEE 1800 (SystemVerilog) additions: Verilator and Icarus -g2012
# reserve both.
_VERILOG_KEYWORDS = frozenset("""
always and assign automatic begin buf bufif0 bufif1 case casex casez cell cmos config deassign
default defparam design disable edge else end endcase endconfig endfunction endgenerate endmodule
endprimitive endspecify endtable endtask event for force forever fork function generate genvar
highz0 highz1 if ifnone incdir include initial inout input instance integer join large liblist
library localparam macromodule medium module nand negedge nmos nor noshowcancelled not notif0
notif1 or output parameter pmos posedge primitive pull0 pull1 pulldown pullup pulsestyle_ondetect
pulsestyle_onevent rcmos real realtime reg release repeat rnmos rpmos rtran rtranif0 rtranif1
scalared showcancelled signed small specify specparam strong0 strong1 supply0 supply1 table task
time tran tranif0 tranif1 tri tri0 tri1 triand trior trireg unsigned use uwire vectored wait wand
weak0 weak1 while wire wor xnor xor
accept_on alias always_comb always_ff always_latch assert assume before bind bins binsof bit break
byte chandle checker class clocking const constraint context continue cover covergroup coverpoint
cross dist do endchecker endclass endclocking endgroup endinterface endpackage endprogram
endproperty endsequence enum eventually expect export extends extern final first_match foreach
forkjoin global iff ignore_bins illegal_bins implements implies import inside int interconnect
interface intersect join_any join_none let local logic longint matches modport nettype new null
package packed priority program property protected pure rand randc randcase randsequence ref
reject_on restrict return s_always s_eventually s_nexttime s_until s_until_with sequence shortint
shortreal soft solve static string strong struct super sync_accept_on sync_reject_on tagged this
throughout timeprecision timeunit type typedef union unique unique0 until until_with untyped var
virtual void wait_order weak wildcard with within
""".split())


def check_name(name: str) -> str:
    """`name` if it can name a Verilog module, else a ConfigError."""
    if not isinstance(name, str) or not _VERILOG_ID.match(name) or name in _VERILOG_KEYWORDS:
        raise ConfigError("name must be a Verilog identifier (a letter or _, then letters, "
                          f"digits, _ or $; not a keyword), not {name!r}")
    return name


def convert(make_component, default_name: str, name: str | None = None) -> str:
    """Verilog of the component `make_component()` builds, top module `name` (checked first) or
    `default_name`."""
    from amaranth.back import verilog

    name = check_name(default_name if name is None else name)
    return verilog.convert(make_component(), name=name, emit_src=False)


def write(text: str, path):
    """Write generated Verilog atomically (no partial file on failure)."""
    from pathlib import Path

    from tpesim.outputs import write_text_atomic

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomic(path, text, "Verilog output")
