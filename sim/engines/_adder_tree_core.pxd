# Declarations of _adder_tree_core.py's extension type: it derives from HeldBlockCore.
from tpesim.engines._held_core cimport HeldBlockCore


cdef class AdderTreeCore(HeldBlockCore):
    cdef int L
    cdef int N
    cdef int cl
    cdef int small
    cdef long long[:, ::1] wt
    cdef short[:, ::1] w16
    cdef short[::1] a16
