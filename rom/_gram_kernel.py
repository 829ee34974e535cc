"""X^T X for a tall C-order X (rows = dofs, columns = snapshots): a packed outer-product
kernel written in LLVM IR (llvmlite, which Numba itself is built on) and compiled for the
running CPU on first use.

Why not BLAS: OpenBLAS's dsyrk on a 1e6 x 500 matrix reaches 0.72-0.77 of its square-GEMM
rate on this project's machines; MKL's 0.83 at a 685 MB dependency (docs/benchmarks.md). Why
not Numba: its loop vectorizer chooses 256-bit vectors on AVX-512 machines and does not keep a
register tile of accumulators across the k loop; here the tile is written out as explicit
vector values.

The algorithm is a GEMM's (Goto's) restricted to the lower triangle:

* rows are taken in chunks of `kc`; a chunk is packed into panels of `W` columns,
  `P[p, t, 0:W] = X[k0 + t, p W : p W + W]` (the last panel zero-padded), so that every
  operand the micro-kernel reads is contiguous and the chunk (kc n doubles) stays in L2;
* for each block of `MP` panels of G's columns (i) and each panel of its rows (j >= i),
  a register tile of MP x W vectors of W lanes accumulates
  `G[j, i] += sum_t P[J, t, c] P[I + q, t, :]` over the chunk (one FMA per vector per t),
  then is added into G; tiles on the diagonal skip the panels wholly above it;
* while a chunk is multiplied, the next chunk's rows are prefetched into L2 a few lines
  per tile, so that packing reads from cache.

G (npad x npad, npad = W * number of panels) accumulates in place; its lower triangle
(row j >= column i) holds the result, the rest holds partial sums that the caller discards.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np

W_AVX512, W_AVX2 = 8, 4
MP = 3  # panels per register tile's row block: 3 x W vectors of accumulators
KC = 128  # rows per chunk: packed rows and the next chunk (1 MB at n = 500) leave room in L2 for G


@functools.lru_cache(maxsize=None)
def compiled(width: int | None = None):
    """(function, W) for the running CPU, or (None, reason) where it cannot be built.

    width: lanes per vector (8 for AVX-512, 4 otherwise); None picks from the CPU.
    """
    try:
        import llvmlite.binding as llvm
    except ImportError as exc:  # pragma: no cover - llvmlite ships with Numba
        return None, f"llvmlite missing: {exc}"
    try:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        features = llvm.get_host_cpu_features()
        if width is None:
            width = W_AVX512 if features.get("avx512f", False) else W_AVX2
        tm = llvm.Target.from_default_triple().create_target_machine(
            cpu=llvm.get_host_cpu_name(), features=features.flatten(), opt=3, codemodel="jitdefault")
        module = llvm.parse_assembly(_ir(width, llvm.get_process_triple()))
        module.verify()
        pb = llvm.create_pass_builder(tm, llvm.create_pipeline_tuning_options(speed_level=3))
        pb.getModulePassManager().run(module, pb)
        engine = llvm.create_mcjit_compiler(module, tm)
        engine.finalize_object()
    except Exception as exc:  # an llvmlite without these APIs, or a target LLVM cannot build for
        return None, f"{type(exc).__name__}: {exc}"
    proto = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64,
                             ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64)
    fn = proto(engine.get_function_address("gram_lower"))
    fn._engine = engine  # the machine code lives as long as the engine
    return fn, width


def panels(n: int, width: int) -> int:
    """Panels of `width` columns covering n, rounded up to a multiple of MP."""
    p = -(-n // width)
    return -(-p // MP) * MP


def tiles_per_chunk(npan: int, width: int) -> int:
    """Register tiles the kernel multiplies per chunk (its prefetch schedule needs the count)."""
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
    G = np.zeros((npan * width, npan * width))
    P = aligned_empty(npan * kc * width)
    fn(X.ctypes.data, X.strides[0] // 8, rows, n, G.ctypes.data, P.ctypes.data, kc, npan,
       tiles_per_chunk(npan, width))
    return G


def _ir(W: int, triple: str) -> str:
    """LLVM IR text of gram_lower(X, ldx, rows, n, G, P, kc, npan, ntiles) for W lanes."""
    from llvmlite import ir

    d, i1, i8, i32, i64 = ir.DoubleType(), ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
    vt = ir.VectorType(d, W)
    pd, pv = d.as_pointer(), vt.as_pointer()
    mod = ir.Module("romtk_gram")
    mod.triple = triple
    fma = ir.Function(mod, ir.FunctionType(vt, [vt, vt, vt]), f"llvm.fma.v{W}f64")
    mload = ir.Function(mod, ir.FunctionType(vt, [pv, i32, ir.VectorType(i1, W), vt]),
                        f"llvm.masked.load.v{W}f64.p0")
    prefetch = ir.Function(mod, ir.FunctionType(ir.VoidType(), [i8.as_pointer(), i32, i32, i32]),
                           "llvm.prefetch.p0")
    fn = ir.Function(mod, ir.FunctionType(ir.VoidType(), [pd, i64, i64, i64, pd, pd, i64, i64, i64]),
                     "gram_lower")
    X, ldx, rows, n, G, P, kc, npan, ntiles = fn.args
    for a in (X, G, P):
        a.add_attribute("noalias")
    b = ir.IRBuilder(fn.append_basic_block("entry"))

    def k(v):
        return ir.Constant(i64, v)

    def smin(x, y):
        return b.select(b.icmp_signed("<", x, y), x, y)

    def splat(x, ty):
        vty = ir.VectorType(ty, W)
        v = b.insert_element(ir.Constant(vty, ir.Undefined), x, ir.Constant(i32, 0))
        return b.shuffle_vector(v, ir.Constant(vty, ir.Undefined), ir.Constant(ir.VectorType(i32, W), [0] * W))

    def loop(start, stop, name):
        pre = b.block
        head, body, end = (b.append_basic_block(f"{name}_{s}") for s in ("head", "body", "end"))
        b.branch(head)
        b.position_at_end(head)
        iv = b.phi(i64, name)
        iv.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", iv, stop), body, end)
        b.position_at_end(body)
        return iv, head, end

    def close(lp, step):
        iv, head, end = lp
        iv.add_incoming(b.add(iv, step), b.block)
        b.branch(head)
        b.position_at_end(end)

    zero = ir.Constant(vt, [0.0] * W)
    lanes = ir.Constant(ir.VectorType(i64, W), list(range(W)))
    npad = b.mul(npan, k(W))
    xbytes = b.bitcast(X, i8.as_pointer())
    tile_no = b.alloca(i64)

    chunk = loop(k(0), rows, "chunk")
    k0 = chunk[0]
    k1 = smin(b.add(k0, kc), rows)
    kk = b.sub(k1, k0)
    # pack rows k0..k1 into P[p, t, 0:W]; the last panel's columns past n read as zero
    row = loop(k0, k1, "pack_row")
    rowp = b.gep(X, [b.mul(row[0], ldx)])
    pan = loop(k(0), npan, "pack_pan")
    col = b.mul(pan[0], k(W))
    inside = b.icmp_signed("<", b.add(splat(col, i64), lanes), splat(n, i64))
    v = b.call(mload, [b.bitcast(b.gep(rowp, [col]), pv), ir.Constant(i32, 8), inside, zero])
    dst = b.gep(P, [b.mul(b.add(b.mul(pan[0], kc), b.sub(row[0], k0)), k(W))])
    b.store(v, b.bitcast(dst, pv), align=8)
    close(pan, k(1))
    close(row, k(1))
    # the next chunk's bytes, spread over this chunk's tiles (lines per tile, rounded up)
    next_rows = b.sub(smin(b.add(k1, kc), rows), k1)
    next_lines = b.sdiv(b.add(b.mul(b.mul(next_rows, ldx), k(8)), k(63)), k(64))
    per_tile = b.sdiv(b.add(next_lines, b.sub(ntiles, k(1))), ntiles)
    next_base = b.gep(xbytes, [b.mul(b.mul(k1, ldx), k(8))])
    b.store(k(0), tile_no)

    blk = loop(k(0), npan, "iblock")
    Ip = blk[0]
    jp = loop(Ip, npan, "jpanel")
    Jp = jp[0]
    # prefetch this tile's share of the next chunk into L2
    t0 = b.load(tile_no)
    b.store(b.add(t0, k(1)), tile_no)
    first = b.mul(t0, per_tile)
    last = smin(b.add(first, per_tile), next_lines)
    pf = loop(first, last, "prefetch")
    b.call(prefetch, [b.gep(next_base, [b.mul(pf[0], k(64))]), ir.Constant(i32, 0), ir.Constant(i32, 2),
                      ir.Constant(i32, 1)])
    close(pf, k(1))
    # panels of the row block that reach the diagonal: q <= Jp - Ip
    depth = smin(b.add(b.sub(Jp, Ip), k(1)), k(MP))
    exit_block = b.append_basic_block("tile_done")
    cases = [b.append_basic_block(f"tile_{m}") for m in range(1, MP + 1)]
    sw = b.switch(depth, cases[-1])
    for m in range(1, MP):
        sw.add_case(k(m), cases[m - 1])
    for m in range(1, MP + 1):
        b.position_at_end(cases[m - 1])
        abase = [b.gep(P, [b.mul(b.mul(b.add(Ip, k(q)), kc), k(W))]) for q in range(m)]
        bbase = b.gep(P, [b.mul(b.mul(Jp, kc), k(W))])
        pre = b.block
        head, body, end = (b.append_basic_block(f"mk{m}_{s}") for s in ("head", "body", "end"))
        b.branch(head)
        b.position_at_end(head)
        t = b.phi(i64, "t")
        t.add_incoming(k(0), pre)
        acc = [[b.phi(vt) for _ in range(m)] for _ in range(W)]
        for r in acc:
            for a in r:
                a.add_incoming(zero, pre)
        b.cbranch(b.icmp_signed("<", t, kk), body, end)
        b.position_at_end(body)
        off = b.mul(t, k(W))
        av = [b.load(b.bitcast(b.gep(abase[q], [off]), pv), align=8) for q in range(m)]
        new = []
        for c in range(W):
            bv = splat(b.load(b.gep(bbase, [b.add(off, k(c))]), align=8), d)
            new.append([b.call(fma, [av[q], bv, acc[c][q]]) for q in range(m)])
        t.add_incoming(b.add(t, k(1)), b.block)
        for c in range(W):
            for q in range(m):
                acc[c][q].add_incoming(new[c][q], b.block)
        b.branch(head)
        b.position_at_end(end)
        for c in range(W):
            gp = b.gep(G, [b.add(b.mul(b.add(b.mul(Jp, k(W)), k(c)), npad), b.mul(Ip, k(W)))])
            for q in range(m):
                ptr = b.bitcast(b.gep(gp, [k(W * q)]), pv)
                b.store(b.fadd(b.load(ptr, align=8), acc[c][q]), ptr, align=8)
        b.branch(exit_block)
    b.position_at_end(exit_block)
    close(jp, k(1))
    close(blk, k(MP))
    close(chunk, kc)
    b.ret_void()
    text = str(mod)
    # 512-bit vectors stay whole on CPUs whose tuning prefers 256 (LLVM splits them otherwise)
    attrs = f'attributes #0 = {{ nounwind "min-legal-vector-width"="{64 * W}" "prefer-vector-width"="{64 * W}" }}'
    return text.replace(")\n{", ") #0\n{", 1) + "\n" + attrs + "\n"
