"""Products with a tall C-order X (rows = dofs, columns = snapshots) that BLAS runs poorly:
the Gram matrix X^T X and the small-matrix product X V. Written in LLVM IR (llvmlite, the
compiler Numba is built on) and compiled for the running CPU on first use.

Why not BLAS: OpenBLAS's dsyrk on a 1e6 x 500 matrix reaches 0.72-0.77 of its square-GEMM
rate on this project's machines (MKL's 0.83, at a 685 MB dependency), and X V with V
500 x 50 about 0.3 of it: for so few columns each packed element of X is used too few times
to pay for its packing. Why not Numba: its loop vectorizer picks 256-bit vectors on AVX-512
machines and does not keep a register tile of accumulators across the summation loop; here
the tile is written out as explicit vector values (docs/methods/pod.md).

`gram_lower` is a GEMM's blocking (Goto's) restricted to a triangle:

* rows are taken in chunks of `kc`; a chunk is packed into panels of `W` columns,
  `P[p, t, 0:W] = X[k0 + t, p W : p W + W]` (the last panel zero-padded), so that every
  operand the micro-kernel reads is contiguous and the chunk stays in L2. Packing runs panel
  by panel, so that its stores are contiguous: row by row, the 63 stores of a row (at 8 KB
  strides) all fall into one L1 set, and packing from L2 cost 0.086 s of a 1.43 s Gram step
  instead of 0.048 s;
* for each block of `MP` panels of G's columns (i) and each panel of its rows (j >= i), a
  register tile of MP x W vectors of W lanes accumulates
  `G[j, i] += sum_t P[J, t, c] P[I + q, t, :]` (one FMA per vector per t), then is added
  into G; tiles on the diagonal skip the panels wholly above it, the last block the panels
  past n;
* G is held tile by tile in the order the tiles are visited (`Gt[tile, c, 0 : MP W]`), so
  each chunk reads and writes it as one contiguous stream the hardware prefetches, and it
  need not stay in L2 beside the packed rows (as a row-major G, 1 MB at n = 500, had to:
  0.93 of GEMM at kc = 128 against 0.87, and 0.96 at kc = 96, where the packed chunk, the
  next one and the one just packed all fit); `unpack_tiles` lays it out as a matrix;
* while a chunk is multiplied, the next chunk's rows are prefetched into L2 a few lines per
  tile, so that packing reads from cache (packing's share of the step, 1e6 x 500: 0.13 s
  per thread with the prefetch, 0.22 s without).

`times` needs no packing of X, whose elements it uses once each: X's rows are taken in
chunks, V (packed, zero-padded to whole vectors) in blocks of `ki` rows that stay in L1, and a
tile of `R` rows of the output (R x NQ vectors) accumulates `X[r, i] V[i, :]` over a block.
Each row of X starts at another offset in its 4 KB page, where the hardware's streams stop,
so the next chunk's lines are prefetched one per step of the sum.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

W_AVX512, W_AVX2 = 8, 4
MP = 3  # panels per register tile's row block: 3 x W vectors of accumulators
KC = 96  # rows per chunk: the packed chunk, the next one and the last one's rows (1.1 MB at n = 500) fit in L2
TIMES_ROWS = 24  # rows of X per chunk of `times`: the chunk stays in L1/L2 across V's blocks
TIMES_KI = 64  # rows of V per block: 64 x 56 doubles (28 KB) stay in L1
TIMES_ACC = 24  # accumulator vectors of `times`' register tile (R x NQ), of 32 registers
_I64 = ctypes.c_int64
_PTR = ctypes.c_void_p


@functools.lru_cache(maxsize=None)
def _target():
    """(llvmlite.binding, target machine, W) for the running CPU, or (None, reason, None)."""
    try:
        import llvmlite.binding as llvm
    except ImportError as exc:  # pragma: no cover - llvmlite ships with Numba
        return None, f"llvmlite missing: {exc}", None
    try:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        features = llvm.get_host_cpu_features()
        tm = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=features.flatten(), opt=3, codemodel="jitdefault")
    except Exception as exc:  # a target LLVM cannot build for
        return None, f"{type(exc).__name__}: {exc}", None
    return llvm, tm, (W_AVX512 if features.get("avx512f", False) else W_AVX2)


def _compile(text: str, name: str, argtypes: list):
    """ctypes function `name` from IR text, or (None, reason)."""
    llvm, tm, _ = _target()
    if llvm is None:
        return None, tm
    try:
        module = llvm.parse_assembly(text)
        module.verify()
        pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
        pb.getModulePassManager().run(module, pb)
        engine = llvm.create_mcjit_compiler(module, tm)
        engine.finalize_object()
    except Exception as exc:  # an llvmlite without these APIs
        return None, f"{type(exc).__name__}: {exc}"
    fn = ctypes.CFUNCTYPE(None, *argtypes)(engine.get_function_address(name))
    fn._engine = engine  # the machine code lives as long as the engine
    return fn, None


def lanes() -> int | None:
    """Lanes per vector the kernels use on this CPU, or None where LLVM cannot target it."""
    return _target()[2]


def tuned() -> bool:
    """Whether this CPU has the vector width the kernels' tiles and chunk sizes were measured
    and tuned on (AVX-512: 32 registers of 8 lanes). The 4-lane variant is built and tested
    for correctness, not timed (its 12-24 accumulators may not fit AVX2's 16 registers), so
    callers keep numpy's products there."""
    return lanes() == W_AVX512


def unavailable() -> str | None:
    """Why the kernels are not used on this CPU, or None where they are: LLVM cannot target
    it, or its vectors are not AVX-512's, on which the kernels were tuned (`tuned`)."""
    llvm, why, width = _target()
    if llvm is None:
        return f"LLVM cannot target this CPU ({why})"
    if not tuned():
        return (f"this CPU's vectors have {width} lanes, not AVX-512's {W_AVX512}, for which the kernels' tiles "
                f"were tuned")
    return None


@functools.lru_cache(maxsize=None)
def compiled(width: int | None = None):
    """(gram function, W) for the running CPU, or (None, reason) where it cannot be built.

    width: lanes per vector (8 for AVX-512, 4 otherwise); None picks from the CPU.
    """
    llvm, tm, native = _target()
    if llvm is None:
        return None, tm
    width = width or native
    fn, why = _compile(_gram_ir(width, llvm.get_process_triple()), "gram_lower",
                       [_PTR, _I64, _I64, _I64, _PTR, _PTR, _I64, _I64, _I64])
    return (fn, width) if fn is not None else (None, why)


@functools.lru_cache(maxsize=None)
def compiled_times(nq: int, width: int | None = None):
    """(times function for NQ output vectors, W), or (None, reason) where it cannot be built.

    Its register tile has R = min(6, TIMES_ACC // NQ) rows (at least 1) of NQ vectors."""
    llvm, tm, native = _target()
    if llvm is None:
        return None, tm
    width = width or native
    R = max(1, min(6, TIMES_ACC // nq))
    fn, why = _compile(_times_ir(width, nq, R, llvm.get_process_triple()), "times",
                       [_PTR, _I64, _I64, _I64, _PTR, _I64, _PTR, _I64, _I64, _I64])
    return (fn, width) if fn is not None else (None, why)


def panels(n: int, width: int) -> int:
    """Panels of `width` columns covering n."""
    return -(-n // width)


def tiles_per_chunk(npan: int) -> int:
    """Register tiles the kernel multiplies per chunk: G's tiles, and the steps of its prefetch schedule."""
    return sum(npan - i for i in range(0, npan, MP))


def aligned_empty(n: int, align: int = 64) -> np.ndarray:
    """float64 (n,) starting on an `align`-byte boundary (packed panels are read as whole lines)."""
    raw = np.empty(n + align // 8)
    off = (-raw.ctypes.data % align) // 8
    return raw[off:off + n]


def gram_lower(X: np.ndarray, fn, width: int, kc: int = KC) -> np.ndarray:
    """G (npad, npad) with G[j, i] = (X^T X)[i, j] for j >= i (lower triangle valid).

    X: (n_rows, n) float64 with unit column stride (a row slab of a C-order array).
    Runs without the GIL (ctypes); subnormals are the caller's business (`rom._fpenv`).
    """
    rows, n = X.shape
    npan = panels(n, width)
    ntiles = tiles_per_chunk(npan)
    Gt = np.zeros((ntiles, width, MP * width))
    P = aligned_empty(npan * kc * width)
    fn(X.ctypes.data, X.strides[0] // 8, rows, n, Gt.ctypes.data, P.ctypes.data, kc, npan, ntiles)
    return unpack_tiles(Gt, npan)


def unpack_tiles(Gt: np.ndarray, npan: int) -> np.ndarray:
    """The kernel's G tiles (ntiles, W, MP W) as the (npad, npad) matrix they cover."""
    width = Gt.shape[1]
    rows, cols = _tile_cells(npan, width)
    G = np.zeros((npan * width, (npan + MP) * width))  # the last block's tiles reach past npad
    G[rows, cols] = Gt
    return G[:, :npan * width]


@functools.lru_cache(maxsize=8)
def _tile_cells(npan: int, width: int) -> tuple:
    """Row and column of G of each cell of each tile, in the kernel's visiting order (blocks
    of MP column panels I, then row panels J >= I): read-only int64 views of shape
    (ntiles, W, MP W), broadcast from (ntiles, W, 1) and (ntiles, 1, MP W)."""
    I = np.concatenate([np.full(npan - i, i) for i in range(0, npan, MP)])
    J = np.concatenate([np.arange(i, npan) for i in range(0, npan, MP)])
    rows = J[:, None, None] * width + np.arange(width)[None, :, None]
    cols = I[:, None, None] * width + np.arange(MP * width)[None, None, :]
    rows, cols = np.broadcast_arrays(rows, cols)
    return rows, cols


def pack_right(V: np.ndarray, width: int) -> np.ndarray:
    """V (k, l) as a C-order (k, NQ W) aligned copy, columns past l zero (`times`' operand)."""
    k, l = V.shape
    Vp = aligned_empty(k * -(-l // width) * width).reshape(k, -1)
    Vp[:, :l] = V
    Vp[:, l:] = 0.0
    return Vp


def times(X: np.ndarray, Vp: np.ndarray, l: int, out: np.ndarray, fn,
          rows_per_chunk: int = TIMES_ROWS, ki: int = TIMES_KI) -> np.ndarray:
    """out = X @ Vp[:, :l] for X (n_rows, k) and out (n_rows, l), both float64 with unit column
    stride and not overlapping; Vp from `pack_right`, fn from `compiled_times`. Runs without
    the GIL (ctypes)."""
    rows, k = X.shape
    fn(X.ctypes.data, X.strides[0] // 8, rows, k, Vp.ctypes.data, l, out.ctypes.data, out.strides[0] // 8,
       rows_per_chunk, ki)
    return out


# ---------------------------------------------------------------------------- IR
class _IR:
    """An IRBuilder with the loop and vector helpers both kernels use."""

    def __init__(self, W: int, triple: str, name: str, args: list):
        from llvmlite import ir

        self.ir, self.W = ir, W
        self.d, self.i1, self.i8 = ir.DoubleType(), ir.IntType(1), ir.IntType(8)
        self.i32, self.i64 = ir.IntType(32), ir.IntType(64)
        self.vt = ir.VectorType(self.d, W)
        self.pd, self.pv = self.d.as_pointer(), self.vt.as_pointer()
        self.mod = ir.Module(f"romtk_{name}")
        self.mod.triple = triple
        vt, pv, i32, i1 = self.vt, self.pv, self.i32, self.i1
        self.fma = ir.Function(self.mod, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fma.v{W}f64")
        self.mload = ir.Function(self.mod, ir.FunctionType(vt, [pv, i32, ir.VectorType(i1, W), vt]),
                                 f"llvm.masked.load.v{W}f64.p0")
        self.mstore = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), [vt, pv, i32, ir.VectorType(i1, W)]),
                                  f"llvm.masked.store.v{W}f64.p0")
        self.prefetch_fn = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), [self.i8.as_pointer(), i32, i32, i32]),
                                       "llvm.prefetch.p0")
        types = {"p": self.pd, "i": self.i64}
        self.fn = ir.Function(self.mod, ir.FunctionType(ir.VoidType(), [types[a] for a in args]), name)
        self.b = ir.IRBuilder(self.fn.append_basic_block("entry"))
        self.zero = ir.Constant(vt, [0.0] * W)
        self.lanes = ir.Constant(ir.VectorType(self.i64, W), list(range(W)))

    def k(self, v):
        return self.ir.Constant(self.i64, v)

    def smin(self, x, y):
        return self.b.select(self.b.icmp_signed("<", x, y), x, y)

    def splat(self, x, ty):
        ir, b = self.ir, self.b
        vty = ir.VectorType(ty, self.W)
        v = b.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(self.i32, 0))
        return b.shuffle_vector(v, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(self.i32, self.W),
                                                                                   [0] * self.W))

    def below(self, start, n):
        """Lane mask start + lane < n."""
        return self.b.icmp_signed("<", self.b.add(self.splat(start, self.i64), self.lanes), self.splat(n, self.i64))

    def vec(self, p, offset):
        return self.b.bitcast(self.b.gep(p, [offset]), self.pv)

    def loop(self, start, stop, name):
        b = self.b
        pre = b.block
        head, body, end = (b.append_basic_block(f"{name}_{s}") for s in ("head", "body", "end"))
        b.branch(head)
        b.position_at_end(head)
        iv = b.phi(self.i64, name)
        iv.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", iv, stop), body, end)
        b.position_at_end(body)
        return iv, head, end

    def close(self, lp, step):
        iv, head, end = lp
        iv.add_incoming(self.b.add(iv, step), self.b.block)
        self.b.branch(head)
        self.b.position_at_end(end)

    def accumulate(self, name, start, stop, init, step):
        """Loop iv over [start, stop) carrying a tile of vectors (list of lists, `init` on entry):
        `step(iv, acc)` emits one step and returns the new tile; returns the tile after the loop."""
        b = self.b
        lp = self.loop(start, stop, name)
        iv, body = lp[0], b.block
        pre = iv.incomings[0][1]
        b.position_after(iv)  # the tile's phis join the loop counter's at the head
        acc = [[b.phi(self.vt) for _ in row] for row in init]
        for row, row0 in zip(acc, init):
            for a, a0 in zip(row, row0):
                a.add_incoming(a0, pre)
        b.position_at_end(body)
        new = step(iv, acc)
        for row, row1 in zip(acc, new):
            for a, a1 in zip(row, row1):
                a.add_incoming(a1, b.block)
        self.close(lp, self.k(1))
        return acc

    def prefetch_lines(self, base, first, last):
        """Prefetch lines [first, last) of the bytes at `base` into L2."""
        c = self.ir.Constant
        pf = self.loop(first, last, "prefetch")
        self.b.call(self.prefetch_fn, [self.b.gep(base, [self.b.mul(pf[0], self.k(64))]), c(self.i32, 0),
                                       c(self.i32, 2), c(self.i32, 1)])
        self.close(pf, self.k(1))

    def by_depth(self, depth, top, emit):
        """Branch on depth in 1..top (larger values take `top`), emit(m) in each branch, then join."""
        b = self.b
        done = b.append_basic_block("depth_done")
        cases = [b.append_basic_block(f"depth_{m}") for m in range(1, top + 1)]
        sw = b.switch(depth, cases[-1])
        for m in range(1, top):
            sw.add_case(self.k(m), cases[m - 1])
        for m in range(1, top + 1):
            b.position_at_end(cases[m - 1])
            emit(m)
            b.branch(done)
        b.position_at_end(done)

    def text(self) -> str:
        # 512-bit vectors stay whole on CPUs whose tuning prefers 256 (LLVM splits them otherwise)
        bits = 64 * self.W
        attrs = f'attributes #0 = {{ nounwind "min-legal-vector-width"="{bits}" "prefer-vector-width"="{bits}" }}'
        return str(self.mod).replace(")\n{", ") #0\n{", 1) + "\n" + attrs + "\n"


def _gram_ir(W: int, triple: str) -> str:
    """IR of gram_lower(X, ldx, rows, n, Gt, P, kc, npan, ntiles) for W lanes; Gt holds the
    ntiles tiles (W, MP W) in visiting order, the tile counter indexes both Gt and the
    prefetch schedule."""
    g = _IR(W, triple, "gram_lower", ["p", "i", "i", "i", "p", "p", "i", "i", "i"])
    X, ldx, rows, n, G, P, kc, npan, ntiles = g.fn.args
    for a in (X, G, P):
        a.add_attribute("noalias")
    b, k = g.b, g.k
    tile_no = b.alloca(g.i64)

    chunk = g.loop(k(0), rows, "chunk")
    k0 = chunk[0]
    k1 = g.smin(b.add(k0, kc), rows)
    kk = b.sub(k1, k0)
    # pack rows k0..k1 into P[p, t, 0:W], panel by panel (contiguous stores); the last
    # panel's columns past n read as zero
    pan = g.loop(k(0), npan, "pack_pan")
    col = b.mul(pan[0], k(W))
    inside = g.below(col, n)
    row = g.loop(k0, k1, "pack_row")
    rowp = b.gep(X, [b.mul(row[0], ldx)])
    v = b.call(g.mload, [g.vec(rowp, col), g.ir.Constant(g.i32, 8), inside, g.zero])
    b.store(v, g.vec(P, b.mul(b.add(b.mul(pan[0], kc), b.sub(row[0], k0)), k(W))), align=8)
    g.close(row, k(1))
    g.close(pan, k(1))
    # the next chunk's bytes, spread over this chunk's tiles (lines per tile, rounded up)
    next_rows = b.sub(g.smin(b.add(k1, kc), rows), k1)
    next_lines = b.sdiv(b.add(b.mul(b.mul(next_rows, ldx), k(8)), k(63)), k(64))
    per_tile = b.sdiv(b.add(next_lines, b.sub(ntiles, k(1))), ntiles)
    next_base = b.gep(b.bitcast(X, g.i8.as_pointer()), [b.mul(b.mul(k1, ldx), k(8))])
    b.store(k(0), tile_no)

    blk = g.loop(k(0), npan, "iblock")
    Ip = blk[0]
    jp = g.loop(Ip, npan, "jpanel")
    Jp = jp[0]
    t0 = b.load(tile_no)
    b.store(b.add(t0, k(1)), tile_no)
    first = b.mul(t0, per_tile)
    g.prefetch_lines(next_base, first, g.smin(b.add(first, per_tile), next_lines))

    def tile(m):  # the first m panels of the block reach the diagonal
        abase = [b.gep(P, [b.mul(b.mul(b.add(Ip, k(q)), kc), k(W))]) for q in range(m)]
        bbase = b.gep(P, [b.mul(b.mul(Jp, kc), k(W))])
        def step(t, acc):
            off = b.mul(t, k(W))
            av = [b.load(g.vec(abase[q], off), align=8) for q in range(m)]
            bv = [g.splat(b.load(b.gep(bbase, [b.add(off, k(c))]), align=8), g.d) for c in range(W)]
            return [[b.call(g.fma, [av[q], bv[c], acc[c][q]]) for q in range(m)] for c in range(W)]

        acc = g.accumulate(f"mk{m}", k(0), kk, [[g.zero] * m for _ in range(W)], step)
        for c in range(W):
            gp = b.gep(G, [b.add(b.mul(t0, k(W * MP * W)), k(c * MP * W))])
            for q in range(m):
                ptr = g.vec(gp, k(W * q))
                b.store(b.fadd(b.load(ptr, align=8), acc[c][q]), ptr, align=8)

    # panels of the block that reach the diagonal and exist: q <= Jp - Ip, Ip + q < npan
    g.by_depth(g.smin(g.smin(b.add(b.sub(Jp, Ip), k(1)), b.sub(npan, Ip)), k(MP)), MP, tile)
    g.close(jp, k(1))
    g.close(blk, k(MP))
    g.close(chunk, kc)
    b.ret_void()
    return g.text()


def _times_ir(W: int, NQ: int, R: int, triple: str) -> str:
    """IR of times(X, ldx, rows, k, Vp, l, out, ldo, rc, ki): out[:, :l] = X Vp[:, :l], Vp (k, NQ W)."""
    g = _IR(W, triple, "times", ["p", "i", "i", "i", "p", "i", "p", "i", "i", "i"])
    X, ldx, rows, kdim, Vp, l, out, ldo, rc, ki = g.fn.args
    for a in (X, Vp, out):
        a.add_attribute("noalias")
    b, k, c = g.b, g.k, g.ir.Constant
    ldv = k(NQ * W)
    masks = [g.below(k(q * W), l) for q in range(NQ)]
    tile_no = b.alloca(g.i64)
    xbytes = b.bitcast(X, g.i8.as_pointer())
    # tiles per chunk: ceil(rc / R) row tiles times ceil(k / ki) blocks of V
    ntiles = b.mul(b.sdiv(b.add(rc, k(R - 1)), k(R)), b.sdiv(b.add(kdim, b.sub(ki, k(1))), ki))

    chunk = g.loop(k(0), rows, "chunk")
    r0 = chunk[0]
    r1 = g.smin(b.add(r0, rc), rows)
    # the next chunk's bytes, spread over this chunk's tiles, one line per step of the sum: rows
    # are read once, each from another offset in its 4 KB page, where the hardware's streams stop
    next_rows = b.sub(g.smin(b.add(r1, rc), rows), r1)
    next_lines = b.sdiv(b.add(b.mul(b.mul(next_rows, ldx), k(8)), k(63)), k(64))
    per_tile = b.sdiv(b.add(next_lines, b.sub(ntiles, k(1))), ntiles)
    next_base = b.gep(xbytes, [b.mul(b.mul(r1, ldx), k(8))])
    last_line = b.mul(b.sub(next_lines, k(1)), k(64))
    b.store(k(0), tile_no)
    blk = g.loop(k(0), kdim, "iblock")
    i0 = blk[0]
    i1 = g.smin(b.add(i0, ki), kdim)
    first_block = b.icmp_signed("==", i0, k(0))
    tl = g.loop(r0, r1, "rowtile")
    t = tl[0]
    t0 = b.load(tile_no)
    b.store(b.add(t0, k(1)), tile_no)
    pf_first = b.mul(t0, per_tile)
    pf_last = b.sub(b.add(pf_first, per_tile), k(1))

    def tile(m):  # m rows (the chunk's last tile may have fewer than R)
        xrow = [b.gep(X, [b.mul(b.add(t, k(r)), ldx)]) for r in range(m)]
        orow = [b.gep(out, [b.mul(b.add(t, k(r)), ldo)]) for r in range(m)]
        start = [[b.select(first_block, g.zero,
                           b.call(g.mload, [g.vec(orow[r], k(q * W)), c(g.i32, 8), masks[q], g.zero]))
                  for q in range(NQ)] for r in range(m)]
        def step(i, acc):
            line = b.mul(g.smin(b.add(pf_first, b.sub(i, i0)), pf_last), k(64))
            b.call(g.prefetch_fn, [b.gep(next_base, [g.smin(line, last_line)]), c(g.i32, 0), c(g.i32, 2),
                                   c(g.i32, 1)])
            vrow = b.gep(Vp, [b.mul(i, ldv)])
            vv = [b.load(g.vec(vrow, k(q * W)), align=8) for q in range(NQ)]
            xs = [g.splat(b.load(b.gep(xrow[r], [i]), align=8), g.d) for r in range(m)]
            return [[b.call(g.fma, [xs[r], vv[q], acc[r][q]]) for q in range(NQ)] for r in range(m)]

        acc = g.accumulate(f"mt{m}", i0, i1, start, step)
        for r in range(m):
            for q in range(NQ):
                b.call(g.mstore, [acc[r][q], g.vec(orow[r], k(q * W)), c(g.i32, 8), masks[q]])

    g.by_depth(g.smin(b.sub(r1, t), k(R)), R, tile)
    g.close(tl, k(R))
    g.close(blk, ki)
    g.close(chunk, rc)
    b.ret_void()
    return g.text()
