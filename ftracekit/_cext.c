/* ftracekit's compiled helpers (ftracekit/_native.py says which numpy code each replaces;
 * that code stays the definition and the fallback). First and largest: ring-buffer pages ->
 * typed event columns in one pass, the compiled form of ftracekit/read/_pages.py (walk_pages)
 * and of the field gathers of _Decoder.block (ftracekit/read/_decode.py).
 *
 * Page layout (kernel/trace/ring_buffer.c): u64 time stamp, u64 commit (data size in the low
 * 27 bits; bit 31 "events were lost before this page", bit 30 "and their count is stored after
 * the data"), then the data: 32-bit headers, type_len (5 bits) and time_delta (27 bits);
 * type_len 1-28 = payload of 4*type_len bytes, 0 = payload length in the next word, 29 =
 * padding, 30 = time extend, 31 = absolute time stamp.  Every header is walked in order, as
 * walk_pages_sequential does; each data event is then reduced at once to its columns.
 *
 * Only the Python buffer protocol is used (no numpy headers): the inputs are bytes-like, the
 * outputs writable C-contiguous buffers (numpy arrays) the caller sized.  The walk runs without
 * the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#define COMMIT_MASK ((1u << 27) - 1)
#define MISSED_EVENTS (1ull << 31)
#define MISSED_STORED (1ull << 30)

/* kinds of ftracekit.read.records (K_ENTRY, K_EXIT, K_COMMENT) */
#define K_ENTRY 0
#define K_LEAF 1
#define K_EXIT 2
#define K_COMMENT 3

typedef struct { Py_ssize_t off, size; int sign; } Field;   /* off < 0: absent */

static uint64_t read_field(const uint8_t *p, const Field *f) {
    const uint8_t *q = p + f->off;
    switch (f->size) {
    case 1: { uint8_t v = q[0]; return f->sign ? (uint64_t)(int64_t)(int8_t)v : v; }
    case 2: { uint16_t v; memcpy(&v, q, 2); return f->sign ? (uint64_t)(int64_t)(int16_t)v : v; }
    case 4: { uint32_t v; memcpy(&v, q, 4); return f->sign ? (uint64_t)(int64_t)(int32_t)v : v; }
    case 8: { uint64_t v; memcpy(&v, q, 8); return v; }
    default: return 0;     /* (as gather_field: zeros for other sizes) */
    }
}

static int parse_field(PyObject *t, Field *f) {
    if (t == Py_None) { f->off = -1; f->size = 0; f->sign = 0; return 1; }
    return PyArg_ParseTuple(t, "nnp", &f->off, &f->size, &f->sign);
}

/* Function address -> dense code (first seen, first numbered), and which codes each CPU's
 * entries and exits use: an open-addressing hash table owned by a capsule. */
typedef struct {
    uint64_t *hkey; int32_t *hval; size_t hcap;     /* hcap: a power of 2; hval -1: empty */
    uint64_t *keys; size_t n, kcap;                  /* keys[code] */
    uint8_t **seen; size_t *seen_cap; size_t nslots; /* seen[slot][code]: 1 entry, 2 exit */
} Codes;

static void codes_free(Codes *c) {
    if (!c) return;
    free(c->hkey); free(c->hval); free(c->keys);
    for (size_t i = 0; i < c->nslots; i++) free(c->seen[i]);
    free(c->seen); free(c->seen_cap);
    free(c);
}

static size_t hash_of(uint64_t a, size_t mask) {
    return (size_t)((a * 0x9E3779B97F4A7C15ull) >> 17) & mask;
}

static int codes_grow(Codes *c) {
    size_t cap = c->hcap ? 2 * c->hcap : 4096;
    uint64_t *hk = malloc(cap * sizeof *hk);
    int32_t *hv = malloc(cap * sizeof *hv);
    if (!hk || !hv) { free(hk); free(hv); return 0; }
    memset(hv, 0xFF, cap * sizeof *hv);
    for (size_t i = 0; i < c->hcap; i++) {
        if (c->hval[i] < 0) continue;
        size_t j = hash_of(c->hkey[i], cap - 1);
        while (hv[j] >= 0) j = (j + 1) & (cap - 1);
        hk[j] = c->hkey[i];
        hv[j] = c->hval[i];
    }
    free(c->hkey); free(c->hval);
    c->hkey = hk; c->hval = hv; c->hcap = cap;
    return 1;
}

/* the code of address a (a new one if unseen); -1: out of memory */
static int32_t codes_get(Codes *c, uint64_t a) {
    if (2 * (c->n + 1) > c->hcap && !codes_grow(c)) return -1;
    size_t mask = c->hcap - 1, j = hash_of(a, mask);
    while (c->hval[j] >= 0) {
        if (c->hkey[j] == a) return c->hval[j];
        j = (j + 1) & mask;
    }
    if (c->n >= 0x7FFFFFFF) return -1;
    if (c->n == c->kcap) {
        size_t cap = c->kcap ? 2 * c->kcap : 4096;
        uint64_t *k = realloc(c->keys, cap * sizeof *k);
        if (!k) return -1;
        c->keys = k; c->kcap = cap;
    }
    c->keys[c->n] = a;
    c->hkey[j] = a;
    c->hval[j] = (int32_t)c->n;
    return (int32_t)c->n++;
}

/* mark code k as used by slot's entries (1) or exits (2); 0: out of memory */
static int codes_mark(Codes *c, size_t slot, int32_t k, uint8_t bit) {
    if ((size_t)k >= c->seen_cap[slot]) {
        size_t cap = c->seen_cap[slot] ? c->seen_cap[slot] : 4096;
        while (cap <= (size_t)k) cap *= 2;
        uint8_t *q = realloc(c->seen[slot], cap);
        if (!q) return 0;
        memset(q + c->seen_cap[slot], 0, cap - c->seen_cap[slot]);
        c->seen[slot] = q; c->seen_cap[slot] = cap;
    }
    c->seen[slot][k] |= bit;
    return 1;
}

static int codes_slots(Codes *c, size_t nslots) {
    if (nslots <= c->nslots) return 1;
    uint8_t **s = realloc(c->seen, nslots * sizeof *s);
    if (!s) return 0;
    c->seen = s;
    size_t *sc = realloc(c->seen_cap, nslots * sizeof *sc);
    if (!sc) return 0;
    c->seen_cap = sc;
    for (size_t i = c->nslots; i < nslots; i++) { s[i] = NULL; sc[i] = 0; }
    c->nslots = nslots;
    return 1;
}

#define CODES_NAME "ftracekit._cext.Codes"

static void codes_capsule_free(PyObject *cap) {
    codes_free((Codes *)PyCapsule_GetPointer(cap, CODES_NAME));
}

static Codes *codes_of(PyObject *cap) {
    return (Codes *)PyCapsule_GetPointer(cap, CODES_NAME);
}

PyDoc_STRVAR(codes_new_doc, "codes() -> a table of function address codes for decode()");

static PyObject *codes_new(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    Codes *c = calloc(1, sizeof *c);
    if (!c) return PyErr_NoMemory();
    PyObject *cap = PyCapsule_New(c, CODES_NAME, codes_capsule_free);
    if (!cap) codes_free(c);
    return cap;
}

PyDoc_STRVAR(codes_keys_doc, "codes_keys(table) -> bytes: the u64 address of each code");

static PyObject *codes_keys(PyObject *self, PyObject *arg) {
    (void)self;
    Codes *c = codes_of(arg);
    if (!c) return NULL;
    return PyBytes_FromStringAndSize((const char *)c->keys, (Py_ssize_t)(c->n * 8));
}

PyDoc_STRVAR(codes_seen_doc,
"codes_seen(table, slot) -> bytes: per code, 1 if CPU slot's entries use it, 2 its exits");

static PyObject *codes_seen(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *cap;
    Py_ssize_t slot;
    if (!PyArg_ParseTuple(args, "On", &cap, &slot)) return NULL;
    Codes *c = codes_of(cap);
    if (!c) return NULL;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)c->n);
    if (!out) return NULL;
    char *p = PyBytes_AS_STRING(out);
    memset(p, 0, c->n);
    if (slot >= 0 && (size_t)slot < c->nslots && c->seen[slot]) {
        size_t m = c->seen_cap[slot] < c->n ? c->seen_cap[slot] : c->n;
        memcpy(p, c->seen[slot], m);
    }
    return out;
}

typedef struct { Py_ssize_t index, offset, length; uint16_t etype; } Other;
typedef struct { Py_ssize_t index; int64_t count; } Lost;

typedef struct {
    void *p; Py_ssize_t n;      /* grows by doubling; n in elements */
    Py_ssize_t cap;
} Vec;

static int vec_push(Vec *v, const void *item, size_t isz) {
    if (v->n == v->cap) {
        Py_ssize_t cap = v->cap ? 2 * v->cap : 64;
        void *q = realloc(v->p, cap * isz);
        if (!q) return 0;
        v->p = q; v->cap = cap;
    }
    memcpy((char *)v->p + v->n * isz, item, isz);
    v->n++;
    return 1;
}

static int get_out(PyObject *o, Py_buffer *b, Py_ssize_t itemsize, const char *name) {
    if (PyObject_GetBuffer(o, b, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return 0;
    if (b->itemsize != itemsize) {
        PyErr_Format(PyExc_ValueError, "%s: items of %zd bytes expected", name, itemsize);
        PyBuffer_Release(b);
        b->obj = NULL;
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(decode_doc,
"decode(pages, page_size, kind_of, need, fields, ts, kind, pid, depth, dur, retval, func,\n"
"       codes, slot)\n"
"-> (n, others, lost)\n\n"
"Walk all whole pages of ``pages`` and write each data event (payload >= 8 bytes, inside the\n"
"buffer) to row i of the outputs: ts (int64 ns), kind (int8: kind_of[type & 0xFFFF], a\n"
"graph event shorter than need[kind] bytes becomes K_COMMENT), pid (int32), depth (int16,\n"
"-1 for comments), dur (float64 us, exits; NaN otherwise), retval (int64, exits; 0\n"
"otherwise; None: not written), func (int32: the code of the function address in the\n"
"table ``codes``, which notes the codes used by slot's entries and exits; -1 for comments).\n"
"fields: (func_entry, func_exit, depth_entry, depth_exit, calltime, rettime, retval), each\n"
"(offset, size, signed) or None. others: [(i, type, payload bytes)] of the comments;\n"
"lost: [(index of the page's first event, count or -1)].");

static PyObject *decode(PyObject *self, PyObject *args) {
    Py_buffer in = {0}, kb = {0};
    Py_ssize_t page_size, need_ent, need_exit;
    PyObject *fields, *o_ts, *o_kind, *o_pid, *o_depth, *o_dur, *o_ret, *o_func, *o_codes;
    Py_ssize_t slot;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*ny*(nn)OOOOOOOOOn", &in, &page_size, &kb, &need_ent,
                          &need_exit, &fields, &o_ts, &o_kind, &o_pid, &o_depth, &o_dur,
                          &o_ret, &o_func, &o_codes, &slot))
        return NULL;
    PyObject *result = NULL;
    Py_buffer b_ts = {0}, b_kind = {0}, b_pid = {0}, b_depth = {0}, b_dur = {0}, b_ret = {0},
              b_func = {0};
    Vec others = {0}, lost = {0};
    Field fe, fx, de, dx, ct, rt, rv;
    if (page_size < 32 || page_size % 4 || kb.len < 65536 || slot < 0 || slot > 1 << 20) {
        PyErr_SetString(PyExc_ValueError, "page_size, kind_of or slot");
        goto done;
    }
    Codes *codes = codes_of(o_codes);
    if (!codes) goto done;
    if (!codes_slots(codes, (size_t)slot + 1)) { PyErr_NoMemory(); goto done; }
    if (!PyTuple_Check(fields) || PyTuple_GET_SIZE(fields) != 7) {
        PyErr_SetString(PyExc_ValueError, "fields: a tuple of 7");
        goto done;
    }
    if (!parse_field(PyTuple_GET_ITEM(fields, 0), &fe) || !parse_field(PyTuple_GET_ITEM(fields, 1), &fx)
        || !parse_field(PyTuple_GET_ITEM(fields, 2), &de) || !parse_field(PyTuple_GET_ITEM(fields, 3), &dx)
        || !parse_field(PyTuple_GET_ITEM(fields, 4), &ct) || !parse_field(PyTuple_GET_ITEM(fields, 5), &rt)
        || !parse_field(PyTuple_GET_ITEM(fields, 6), &rv))
        goto done;
    {   /* every field must lie inside the payload its kind needs */
        Field *ent[] = {&fe, &de}, *ext[] = {&fx, &dx, &ct, &rt, &rv};
        for (int i = 0; i < 2; i++)
            if (ent[i]->off >= 0 && (ent[i]->off + ent[i]->size > need_ent)) goto bad_need;
        for (int i = 0; i < 5; i++)
            if (ext[i]->off >= 0 && (ext[i]->off + ext[i]->size > need_exit)) goto bad_need;
        if (fe.off < 0 || fx.off < 0 || de.off < 0 || dx.off < 0) goto bad_need;
    }
    if (!get_out(o_ts, &b_ts, 8, "ts") || !get_out(o_kind, &b_kind, 1, "kind")
        || !get_out(o_pid, &b_pid, 4, "pid") || !get_out(o_depth, &b_depth, 2, "depth")
        || !get_out(o_dur, &b_dur, 8, "dur") || !get_out(o_func, &b_func, 4, "func"))
        goto done;
    if (o_ret != Py_None && !get_out(o_ret, &b_ret, 8, "retval")) goto done;
    Py_ssize_t cap = b_ts.len / 8;
    if (b_kind.len < cap) cap = b_kind.len;
    if (b_pid.len / 4 < cap) cap = b_pid.len / 4;
    if (b_depth.len / 2 < cap) cap = b_depth.len / 2;
    if (b_dur.len / 8 < cap) cap = b_dur.len / 8;
    if (b_func.len / 4 < cap) cap = b_func.len / 4;
    if (b_ret.obj && b_ret.len / 8 < cap) cap = b_ret.len / 8;

    const uint8_t *data = (const uint8_t *)in.buf;
    const int8_t *kind_of = (const int8_t *)kb.buf;
    Py_ssize_t nw = page_size / 4, n_pages = in.len / page_size;
    int64_t total = (int64_t)n_pages * page_size;
    int64_t *ts = (int64_t *)b_ts.buf, *ret = (int64_t *)b_ret.buf;
    int8_t *kind = (int8_t *)b_kind.buf;
    int32_t *pid = (int32_t *)b_pid.buf;
    int16_t *depth = (int16_t *)b_depth.buf;
    double *dur = (double *)b_dur.buf;
    int32_t *func = (int32_t *)b_func.buf;
    Py_ssize_t n = 0;
    int overflow = 0, nomem = 0;
    int has_dur = ct.off >= 0 && rt.off >= 0;

    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t pg = 0; pg < n_pages && !overflow && !nomem; pg++) {
        const uint8_t *page = data + pg * page_size;
        const uint32_t *w = (const uint32_t *)page;     /* (pages are 4-byte aligned in a
                                                           buffer whose start is) */
        uint64_t t, commit;
        memcpy(&t, page, 8);
        memcpy(&commit, page + 8, 8);
        Py_ssize_t size = (Py_ssize_t)(commit & COMMIT_MASK);
        if (size > page_size - 16) size = page_size - 16;
        if (commit & MISSED_EVENTS) {
            Lost l = {n, -1};
            Py_ssize_t at = pg * page_size + 16 + size;
            if ((commit & MISSED_STORED) && at + 8 <= (pg + 1) * page_size)
                memcpy(&l.count, data + at, 8);
            if (!vec_push(&lost, &l, sizeof l)) { nomem = 1; break; }
        }
        Py_ssize_t pos = 4, end = 4 + (size + 3) / 4;
        while (pos < end) {
            uint32_t h;
            memcpy(&h, w + pos, 4);
            uint32_t tl = h & 31, td = h >> 5;
            uint32_t a0;
            memcpy(&a0, w + (pos + 1 < nw - 1 ? pos + 1 : nw - 1), 4);
            if (tl == 31)
                t = ((uint64_t)a0 << 27) + td;
            else if (tl == 30)
                t += ((uint64_t)a0 << 27) + td;
            else
                t += td;
            if (tl <= 28) {
                int64_t ln, pw;
                if (tl == 0) { ln = (int64_t)a0 - 4; pw = pos + 2; }
                else { ln = 4 * (int64_t)tl; pw = pos + 1; }
                int64_t off = (int64_t)pg * page_size + 4 * pw;
                if (ln >= 8 && off + ln <= total) {
                    if (n >= cap) { overflow = 1; break; }
                    const uint8_t *p = data + off;
                    uint32_t w0, w1;
                    memcpy(&w0, p, 4);
                    memcpy(&w1, p + 4, 4);
                    uint16_t et = (uint16_t)(w0 & 0xFFFF);
                    int k = kind_of[et];
                    if ((k == K_EXIT && ln < need_exit) || (k == K_ENTRY && ln < need_ent))
                        k = K_COMMENT;
                    ts[n] = (int64_t)t;
                    pid[n] = (int32_t)w1;
                    if (ret) ret[n] = 0;
                    dur[n] = NAN;
                    if (k == K_ENTRY || k == K_EXIT) {
                        int32_t code = codes_get(codes, read_field(p, k == K_ENTRY ? &fe : &fx));
                        if (code < 0 || !codes_mark(codes, (size_t)slot, code,
                                                    k == K_ENTRY ? 1 : 2)) {
                            nomem = 1;
                            break;
                        }
                        func[n] = code;
                    }
                    if (k == K_ENTRY) {
                        depth[n] = (int16_t)read_field(p, &de);
                    } else if (k == K_EXIT) {
                        depth[n] = (int16_t)read_field(p, &dx);
                        if (has_dur) {
                            uint64_t c = read_field(p, &ct), r = read_field(p, &rt);
                            dur[n] = (double)(int64_t)(r - c) / 1000.0;
                        }
                        if (ret && rv.off >= 0) ret[n] = (int64_t)read_field(p, &rv);
                    } else {
                        k = K_COMMENT;
                        func[n] = -1;
                        depth[n] = -1;
                        Other ot = {n, (Py_ssize_t)off, (Py_ssize_t)ln, et};
                        if (!vec_push(&others, &ot, sizeof ot)) { nomem = 1; break; }
                    }
                    kind[n] = (int8_t)k;
                    n++;
                }
            }
            if (tl == 29 && td == 0) break;
            if (tl == 0 || tl == 29) {
                Py_ssize_t adv = ((Py_ssize_t)a0 + 7) >> 2;
                pos += adv > 1 ? adv : 1;
            } else
                pos += tl >= 30 ? 2 : 1 + tl;
        }
    }
    Py_END_ALLOW_THREADS

    if (nomem) { PyErr_NoMemory(); goto done; }
    if (overflow) {
        PyErr_SetString(PyExc_ValueError, "decode: more events than the outputs hold");
        goto done;
    }
    {
        PyObject *lo = PyList_New(others.n), *ll = NULL;
        if (!lo) goto done;
        for (Py_ssize_t i = 0; i < others.n; i++) {
            Other *ot = (Other *)others.p + i;
            PyObject *it = Py_BuildValue("(nIy#)", ot->index, (unsigned)ot->etype,
                                         (const char *)data + ot->offset, ot->length);
            if (!it) { Py_DECREF(lo); goto done; }
            PyList_SET_ITEM(lo, i, it);
        }
        ll = PyList_New(lost.n);
        if (!ll) { Py_DECREF(lo); goto done; }
        for (Py_ssize_t i = 0; i < lost.n; i++) {
            Lost *l = (Lost *)lost.p + i;
            PyObject *it = Py_BuildValue("(nL)", l->index, (long long)l->count);
            if (!it) { Py_DECREF(lo); Py_DECREF(ll); goto done; }
            PyList_SET_ITEM(ll, i, it);
        }
        result = Py_BuildValue("(nNN)", n, lo, ll);
    }
    goto done;
bad_need:
    PyErr_SetString(PyExc_ValueError, "fields: a graph field outside its event's payload");
done:
    free(others.p);
    free(lost.p);
    PyBuffer_Release(&in);
    PyBuffer_Release(&kb);
    Py_buffer *outs[] = {&b_ts, &b_kind, &b_pid, &b_depth, &b_dur, &b_ret, &b_func};
    for (int i = 0; i < 7; i++)
        if (outs[i]->obj) PyBuffer_Release(outs[i]);
    return result;
}

/* his (k values): the ends of the CPUs' contiguous stream ranges, ascending, the last = n */
static int bounds_ok(const int64_t *his, Py_ssize_t k, Py_ssize_t n, const char *what) {
    int ok = k >= 1 && his[k - 1] == n;
    for (Py_ssize_t j = 0; ok && j < k; j++)
        ok = his[j] >= (j ? his[j - 1] : 0) && his[j] <= n;
    if (!ok) PyErr_Format(PyExc_ValueError, "%s: CPU bounds not ascending to n", what);
    return ok;
}

/* order: n stream indices, each in [0, n) */
static int order_ok(const int64_t *order, Py_ssize_t n, const char *what) {
    for (Py_ssize_t r = 0; r < n; r++)
        if (order[r] < 0 || order[r] >= n) {
            PyErr_Format(PyExc_ValueError, "%s: order out of range", what);
            return 0;
        }
    return 1;
}

PyDoc_STRVAR(joinable_doc,
"joinable(order, kind, pid, depth, func, his, piece, ok) -> None\n\n"
"The compiled form of ftracekit.read._pairs.joinable_entries (same result): ok[e] = 1 for\n"
"each entry event e (stream index) to join with its exit e + 1. order: int64, the stream\n"
"index of each event in time order; kind int8, pid int32 (0 <= pid < 2**23 or negative),\n"
"depth int16, func int32 per event in stream order; his: int64, the end of each CPU's\n"
"contiguous stream range (ascending, the last = n); piece: the time order is judged in\n"
"pieces of this many events (a pair across two pieces is not joined); ok: uint8, n, zeros.");

static PyObject *joinable(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer b_order = {0}, b_kind = {0}, b_pid = {0}, b_depth = {0}, b_func = {0},
              b_his = {0}, b_ok = {0};
    Py_ssize_t piece;
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*y*y*y*nw*", &b_order, &b_kind, &b_pid, &b_depth,
                          &b_func, &b_his, &piece, &b_ok))
        return NULL;
    Py_ssize_t n = b_kind.len, nseg = b_his.len / 8;
    const int64_t *order = b_order.buf, *his = b_his.buf;
    const int8_t *kind = b_kind.buf;
    const int32_t *pid = b_pid.buf, *func = b_func.buf;
    const int16_t *depth = b_depth.buf;
    uint8_t *ok = b_ok.buf;
    if (b_order.len != 8 * n || b_pid.len != 4 * n || b_depth.len != 2 * n
        || b_func.len != 4 * n || b_ok.len != n || piece < 1) {
        PyErr_SetString(PyExc_ValueError, "joinable: arrays of other lengths");
        goto done;
    }
    if (!bounds_ok(his, nseg, n, "joinable") || !order_ok(order, n, "joinable")) goto done;
    int32_t max_pid = 0;
    for (Py_ssize_t i = 0; i < n; i++)
        if (pid[i] > max_pid) max_pid = pid[i];
    if (max_pid >= 1 << 23) {
        PyErr_SetString(PyExc_ValueError, "joinable: pid out of range");
        goto done;
    }
    /* rank + 1 of the last event seen of each task: a pid > 0; pid 0 on each CPU; the
       negative pids on each CPU (as _pairs._task_ids) */
    int64_t *last_pid = calloc((size_t)max_pid + 1, sizeof *last_pid);
    int64_t *last_cpu = calloc((size_t)nseg * 2, sizeof *last_cpu);
    if (!last_pid || !last_cpu) {
        free(last_pid); free(last_cpu);
        PyErr_NoMemory();
        goto done;
    }
    Py_BEGIN_ALLOW_THREADS
    int64_t piece_start = 0;
    for (Py_ssize_t r = 0; r < n; r++) {
        if (r % piece == 0) piece_start = r;
        int64_t s = order[r];
        Py_ssize_t lo = 0, hi = nseg - 1;            /* the CPU: the first his[k] > s */
        while (lo < hi) {
            Py_ssize_t mid = (lo + hi) / 2;
            if (his[mid] > s) hi = mid; else lo = mid + 1;
        }
        Py_ssize_t slot = lo;
        int64_t seg_lo = slot ? his[slot - 1] : 0;
        int32_t p = pid[s];
        if (s > seg_lo && kind[s] == K_EXIT && kind[s - 1] == K_ENTRY && pid[s - 1] == p
            && depth[s - 1] == depth[s] && func[s - 1] == func[s]) {
            int64_t lr = (p > 0 ? last_pid[p] : last_cpu[2 * slot + (p < 0)]) - 1;
            if (lr >= piece_start && order[lr] == s - 1) ok[s - 1] = 1;
        }
        if (p > 0) last_pid[p] = r + 1;
        else last_cpu[2 * slot + (p < 0)] = r + 1;
    }
    Py_END_ALLOW_THREADS
    free(last_pid);
    free(last_cpu);
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&b_order); PyBuffer_Release(&b_kind); PyBuffer_Release(&b_pid);
    PyBuffer_Release(&b_depth); PyBuffer_Release(&b_func); PyBuffer_Release(&b_his);
    PyBuffer_Release(&b_ok);
    return result;
}

PyDoc_STRVAR(merge_order_doc,
"merge_order(ts, his, order) -> bool\n\n"
"When each CPU's range of ts (int64; ranges end at his, int64 ascending, the last = n) is in\n"
"time order, write to order (int64, n) the stream index of each event in time order, ties\n"
"in stream order (what a stable argsort gives) and return True; else False.");

static PyObject *merge_order(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer b_ts = {0}, b_his = {0}, b_out = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*w*", &b_ts, &b_his, &b_out)) return NULL;
    Py_ssize_t n = b_ts.len / 8, k = b_his.len / 8;
    const int64_t *ts = b_ts.buf, *his = b_his.buf;
    int64_t *out = b_out.buf;
    if (b_out.len != 8 * n) {
        PyErr_SetString(PyExc_ValueError, "merge_order: arrays of other lengths");
        goto done;
    }
    if (!bounds_ok(his, k, n, "merge_order")) goto done;
    int sorted = 1;
    for (Py_ssize_t j = 0; j < k && sorted; j++)
        for (int64_t i = (j ? his[j - 1] : 0) + 1; i < his[j]; i++)
            if (ts[i] < ts[i - 1]) { sorted = 0; break; }
    if (!sorted) { result = Py_False; Py_INCREF(result); goto done; }
    /* a heap of the ranges' heads, by (time, range) */
    int64_t *pos = malloc(k * sizeof *pos), *end = malloc(k * sizeof *end);
    Py_ssize_t *heap = malloc(k * sizeof *heap);
    if (!pos || !end || !heap) {
        free(pos); free(end); free(heap);
        PyErr_NoMemory();
        goto done;
    }
    Py_ssize_t hn = 0;
    for (Py_ssize_t j = 0; j < k; j++) {
        pos[j] = j ? his[j - 1] : 0;
        end[j] = his[j];
    }
#define LESS(a, b) (ts[pos[a]] < ts[pos[b]] || (ts[pos[a]] == ts[pos[b]] && (a) < (b)))
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t j = 0; j < k; j++) {
        if (pos[j] >= end[j]) continue;
        Py_ssize_t c = hn++;
        heap[c] = j;
        while (c && LESS(heap[c], heap[(c - 1) / 2])) {
            Py_ssize_t t = heap[c]; heap[c] = heap[(c - 1) / 2]; heap[(c - 1) / 2] = t;
            c = (c - 1) / 2;
        }
    }
    Py_ssize_t at = 0;
    while (hn) {
        Py_ssize_t j = heap[0];
        if (hn == 1) {                          /* (the last range: copied as it is) */
            while (pos[j] < end[j]) out[at++] = pos[j]++;
            break;
        }
        out[at++] = pos[j]++;
        if (pos[j] >= end[j]) heap[0] = heap[--hn];
        Py_ssize_t c = 0;
        for (;;) {
            Py_ssize_t l = 2 * c + 1, r = l + 1, m = c;
            if (l < hn && LESS(heap[l], heap[m])) m = l;
            if (r < hn && LESS(heap[r], heap[m])) m = r;
            if (m == c) break;
            Py_ssize_t t = heap[c]; heap[c] = heap[m]; heap[m] = t;
            c = m;
        }
    }
    Py_END_ALLOW_THREADS
#undef LESS
    free(pos); free(end); free(heap);
    result = Py_True;
    Py_INCREF(result);
done:
    PyBuffer_Release(&b_ts); PyBuffer_Release(&b_his); PyBuffer_Release(&b_out);
    return result;
}

PyDoc_STRVAR(join_doc,
"join(ok, kind, dur, retval, order, kept) -> number of records\n\n"
"Join each entry e with ok[e] (uint8, stream order) and its exit e + 1: kind[e] = K_LEAF,\n"
"dur[e] = dur[e + 1], retval[e] = retval[e + 1] (retval None: no such column); then the\n"
"records are the events that are not such an exit: their stream indices written over the\n"
"start of order (int64, time order), kept[r] (uint8) = 1 for each time rank r that is a\n"
"record. Returns how many records there are.");

static PyObject *join(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer b_ok = {0}, b_kind = {0}, b_dur = {0}, b_ret = {0}, b_order = {0}, b_kept = {0};
    PyObject *o_ret, *result = NULL;
    if (!PyArg_ParseTuple(args, "y*w*w*Ow*w*", &b_ok, &b_kind, &b_dur, &o_ret, &b_order,
                          &b_kept))
        return NULL;
    if (o_ret != Py_None && PyObject_GetBuffer(o_ret, &b_ret, PyBUF_WRITABLE) < 0) goto done;
    Py_ssize_t n = b_ok.len;
    if (b_kind.len != n || b_dur.len != 8 * n || b_order.len != 8 * n || b_kept.len != n
        || (b_ret.obj && b_ret.len != 8 * n)) {
        PyErr_SetString(PyExc_ValueError, "join: arrays of other lengths");
        goto done;
    }
    const uint8_t *ok = b_ok.buf;
    int8_t *kind = b_kind.buf;
    double *dur = b_dur.buf;
    int64_t *ret = b_ret.buf, *order = b_order.buf;
    uint8_t *kept = b_kept.buf;
    if (!order_ok(order, n, "join")) goto done;
    Py_ssize_t at = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t e = 0; e + 1 < n; e++)
        if (ok[e]) {
            kind[e] = K_LEAF;
            dur[e] = dur[e + 1];
            if (ret) ret[e] = ret[e + 1];
        }
    for (Py_ssize_t r = 0; r < n; r++) {
        int64_t s = order[r];
        uint8_t k = !(s > 0 && ok[s - 1]);
        kept[r] = k;
        if (k) order[at++] = s;              /* (at <= r: only what was read is written) */
    }
    Py_END_ALLOW_THREADS
    result = PyLong_FromSsize_t(at);
done:
    PyBuffer_Release(&b_ok); PyBuffer_Release(&b_kind); PyBuffer_Release(&b_dur);
    if (b_ret.obj) PyBuffer_Release(&b_ret);
    PyBuffer_Release(&b_order); PyBuffer_Release(&b_kept);
    return result;
}

PyDoc_STRVAR(leaf_ends_doc,
"leaf_ends(rows, kind, ts, out) -> None\n\n"
"out[i] (float64 s) = ts[rows[i] + 1] / 1e9 (the time of its exit event) for each record i\n"
"with kind[i] == K_LEAF, NaN for the others; rows: int64 stream index of each record,\n"
"kind: int8 per record, ts: int64 ns per event (stream order).");

static PyObject *leaf_ends(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer b_rows = {0}, b_kind = {0}, b_ts = {0}, b_out = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*y*w*", &b_rows, &b_kind, &b_ts, &b_out)) return NULL;
    Py_ssize_t m = b_kind.len, n = b_ts.len / 8;
    if (b_rows.len != 8 * m || b_out.len != 8 * m) {
        PyErr_SetString(PyExc_ValueError, "leaf_ends: arrays of other lengths");
        goto done;
    }
    const int64_t *rows = b_rows.buf, *ts = b_ts.buf;
    const int8_t *kind = b_kind.buf;
    double *out = b_out.buf;
    for (Py_ssize_t i = 0; i < m; i++)
        if (kind[i] == K_LEAF && (rows[i] < 0 || rows[i] + 1 >= n)) {
            PyErr_SetString(PyExc_ValueError, "leaf_ends: a leaf without its exit event");
            goto done;
        }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < m; i++)
        out[i] = kind[i] == K_LEAF ? (double)ts[rows[i] + 1] / 1e9 : NAN;
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    PyBuffer_Release(&b_rows); PyBuffer_Release(&b_kind); PyBuffer_Release(&b_ts);
    PyBuffer_Release(&b_out);
    return result;
}

PyDoc_STRVAR(roots_doc,
"roots(parent, root, flag) -> bool\n\n"
"For a forest given by parent (int64 per call, -1: none): root[i] (int64) = the outermost\n"
"ancestor of i (i itself without a parent), flag[i] (uint8, in and out) |= the flag of any\n"
"ancestor. Each chain is walked up to the first call already done (calls near each other in\n"
"time are near each other in the arrays). False, with root and flag unspecified, if a parent\n"
"is out of range or the parents form a cycle.");

static PyObject *roots(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer b_par = {0}, b_root = {0}, b_flag = {0};
    PyObject *result = NULL;
    if (!PyArg_ParseTuple(args, "y*w*w*", &b_par, &b_root, &b_flag)) return NULL;
    Py_ssize_t n = b_par.len / 8;
    if (b_root.len != 8 * n || b_flag.len != n) {
        PyErr_SetString(PyExc_ValueError, "roots: arrays of other lengths");
        goto done;
    }
    const int64_t *parent = b_par.buf;
    int64_t *root = b_root.buf;
    uint8_t *flag = b_flag.buf;
    int64_t *stack = malloc((n ? n : 1) * sizeof *stack);
    if (!stack) { PyErr_NoMemory(); goto done; }
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) root[i] = -1;
    for (Py_ssize_t i = 0; i < n && ok; i++) {
        if (root[i] >= 0) continue;
        Py_ssize_t top = 0;
        int64_t j = i;
        while (root[j] < 0) {                 /* up to the first call done (or a root) */
            if (top >= n) { ok = 0; break; }  /* (a cycle) */
            int64_t p = parent[j];
            if (p < 0) { root[j] = j; break; }
            if (p >= n) { ok = 0; break; }
            stack[top++] = j;
            j = p;
        }
        while (ok && top) {                   /* and down again: each parent is done */
            int64_t k = stack[--top], p = parent[k];
            root[k] = root[p];
            flag[k] |= flag[p];
        }
    }
    Py_END_ALLOW_THREADS
    free(stack);
    result = ok ? Py_True : Py_False;
    Py_INCREF(result);
done:
    PyBuffer_Release(&b_par); PyBuffer_Release(&b_root); PyBuffer_Release(&b_flag);
    return result;
}

static PyMethodDef methods[] = {
    {"roots", roots, METH_VARARGS, roots_doc},
    {"merge_order", merge_order, METH_VARARGS, merge_order_doc},
    {"join", join, METH_VARARGS, join_doc},
    {"leaf_ends", leaf_ends, METH_VARARGS, leaf_ends_doc},
    {"joinable", joinable, METH_VARARGS, joinable_doc},
    {"decode", decode, METH_VARARGS, decode_doc},
    {"codes", codes_new, METH_NOARGS, codes_new_doc},
    {"codes_keys", codes_keys, METH_O, codes_keys_doc},
    {"codes_seen", codes_seen, METH_VARARGS, codes_seen_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_cext",
    "ftracekit's compiled helpers (see ftracekit/_native.py).", -1, methods,
};

PyMODINIT_FUNC PyInit__cext(void) {
    PyObject *m = PyModule_Create(&module);
    if (m && (PyModule_AddIntConstant(m, "K_ENTRY", K_ENTRY) < 0
              || PyModule_AddIntConstant(m, "K_EXIT", K_EXIT) < 0
              || PyModule_AddIntConstant(m, "K_LEAF", K_LEAF) < 0
              || PyModule_AddIntConstant(m, "K_COMMENT", K_COMMENT) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
