# Declarations of _nm_sparse_core.py's extension type: it derives from HeldBlockCore.
from tpesim.engines._held_core cimport HeldBlockCore


cdef class NmSparseCore(HeldBlockCore):
    cdef int R
    cdef int C
    cdef int N
    cdef int M
    cdef int RN
    cdef int small
    cdef long long[:, ::1] vals
    cdef short[:, ::1] wd
    cdef int[:, ::1] gix
    cdef short[::1] a16
    cdef int m0
    cdef int m1
    cdef int e0
    cdef int e1
    cdef int cz
    cdef long long[::1] cv
    cdef long long[::1] ci

    cdef void _compress(self, long long* sp, int g, int bit) noexcept
