# Declarations of _held_core.py's extension type, so that engine cores can derive from it
# (cimported through the include path setup.py makes; see docs/internals.md).
cdef class HeldBlockCore:
    cdef int depth
    cdef int width
    cdef int lat
    cdef int dcy
    cdef int nb
    cdef int wlat
    cdef int H
    cdef long long hm
    cdef long long qm
    cdef unsigned char[::1] rp
    cdef long long[::1] rq
    cdef long long[:, ::1] fifo
    cdef long long[:, ::1] one_a
    cdef long long[:, ::1] one_w
    cdef int c0
    cdef int c1
    cdef int d0
    cdef int d1
    cdef long long f0
    cdef long long f1
    cdef long long nadv
    cdef long long seq_in
    cdef long long seq_out
    cdef readonly int lsel
    cdef readonly int rsel
    cdef readonly long long cycle
    cdef readonly long long flag_rows

    cpdef int load_ready(self)
    cpdef int readable(self)
    cdef void _rows(self, long long[:, ::1] src, long long b0, long long b1, int bank,
                    long long[:, ::1] dst, long long d0) noexcept
    cdef void _load(self, long long* sp, int bank, int beat) noexcept
    cdef int _flag(self, int bank) noexcept
    cdef inline void _take(self, long long[:, ::1] loads, long long r, int bank, int beat) noexcept
