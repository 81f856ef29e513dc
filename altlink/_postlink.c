/* altlink._postlink: a compiled fast path for a link's work after its linker, the per-entry
 * part of the manifest (docs/dependencies.md). Optional: altlink/speedups.py loads it only
 * where it was built from this very file (the sha256 of the source, given at build time by
 * setup.py, is compared with the file shipped in the package), and ALTLINK_NO_SPEEDUPS=1
 * turns it off.
 *
 * Each function gives exactly what the Python code it stands for gives, for the inputs it
 * knows, and leaves the rest to that Python (None where a result is not made here): the
 * Python stays the reference, and tests/test_postlink.py compares the two. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o) { Py_INCREF(o); return o; }
#endif

#ifndef ALTLINK_SOURCE_SHA256
#define ALTLINK_SOURCE_SHA256 ""
#endif

/* -- a growing ASCII buffer ------------------------------------------------------------- */

typedef struct {
    char *p;
    Py_ssize_t n, cap;
    PyObject *bytes;  /* where not NULL, the bytes object ``p`` is the contents of */
} Buf;

static int buf_grow(Buf *b, Py_ssize_t more)
{
    Py_ssize_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + more)
        cap *= 2;
    if (b->bytes) {  /* (resized in place where it can: a large one by mremap) */
        if (_PyBytes_Resize(&b->bytes, cap) < 0)
            return -1;
        b->p = PyBytes_AS_STRING(b->bytes);
        b->cap = cap;
        return 0;
    }
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

/* (the buffer's small steps inlined where they are taken: a link's 40,000 entries take about
 * twenty each) */
#if defined(__GNUC__) || defined(__clang__)
#define HOT static inline __attribute__((always_inline))
#else
#define HOT static inline
#endif

HOT int buf_room(Buf *b, Py_ssize_t more)
{
    return b->n + more <= b->cap ? 0 : buf_grow(b, more);
}

HOT int buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_room(b, n) < 0)
        return -1;
    memcpy(b->p + b->n, s, (size_t)n);
    b->n += n;
    return 0;
}

/* A bytes object of ``cap`` bytes for ``b`` to fill (``buf_bytes`` takes it back): 0, or -1. */
static int buf_new_bytes(Buf *b, Py_ssize_t cap)
{
    b->bytes = PyBytes_FromStringAndSize(NULL, cap);
    if (!b->bytes)
        return -1;
    b->p = PyBytes_AS_STRING(b->bytes);
    b->n = 0;
    b->cap = cap;
    return 0;
}

/* The bytes object of ``b`` cut to what was put (a new reference, NULL on an error); ``b``
 * is left without one. */
static PyObject *buf_bytes(Buf *b)
{
    PyObject *got = b->bytes;
    b->bytes = NULL;
    b->p = NULL;
    b->cap = 0;
    if (_PyBytes_Resize(&got, b->n) < 0)
        return NULL;
    b->n = 0;
    return got;
}

#define PUT_LIT(b, s) buf_put((b), (s), (Py_ssize_t)(sizeof(s) - 1))

/* 1: put; 0: not an ASCII str (the entry is the Python's); -1: an error */
static int put_ascii(Buf *b, PyObject *s)
{
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_ASCII(s))
        return 0;
    return buf_put(b, (const char *)PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s)) < 0 ? -1 : 1;
}

/* two decimal digits of each number below 100 */
static const char DIGITS2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

/* the decimal digits of ``u``, put (two at a time, from the last) */
HOT int put_udec(Buf *b, unsigned long long u)
{
    char tmp[20], *q = tmp + sizeof tmp;
    while (u >= 100) {
        unsigned i = (unsigned)(u % 100) * 2;
        u /= 100;
        q -= 2;
        memcpy(q, DIGITS2 + i, 2);
    }
    if (u >= 10) {
        q -= 2;
        memcpy(q, DIGITS2 + 2 * u, 2);
    } else {
        *--q = (char)('0' + u);
    }
    return buf_put(b, q, tmp + sizeof tmp - q);
}

/* ``int.__repr__`` of an exact int that fits 64 bits signed: 1 put; 0 not such an int. */
static int put_dec(Buf *b, PyObject *v)
{
    if (!PyLong_CheckExact(v))
        return 0;
    int over = 0;
    long long x = PyLong_AsLongLongAndOverflow(v, &over);
    if (over || (x == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    if (x < 0 && buf_put(b, "-", 1) < 0)
        return -1;
    return put_udec(b, x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x) < 0
        ? -1 : 1;
}

/* ``f"{v:#x}"`` of a 64-bit unsigned value */
HOT int put_hex64(Buf *b, uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    int n = 2 + (x ? (67 - __builtin_clzll(x)) / 4 : 1);  /* "0x" and the hex digits */
#else
    int n = 3;
    for (uint64_t v = x; v >= 16; v >>= 4)
        n++;
#endif
    if (buf_room(b, n) < 0)
        return -1;
    char *q = b->p + b->n + n;
    do {
        *--q = "0123456789abcdef"[x & 15];
        x >>= 4;
    } while (x);
    q[-1] = 'x';
    q[-2] = '0';
    b->n += n;
    return 1;
}

/* an exact str (ASCII) or an int: as the f-string writes either; 1, 0 or -1 as above */
static int put_str_or_dec(Buf *b, PyObject *v)
{
    if (PyUnicode_CheckExact(v))
        return put_ascii(b, v);
    return put_dec(b, v);
}

/* an exact int that fits 64 bits signed, into ``*v``: 1; 0 not such an int */
static int as_i64(PyObject *o, long long *v)
{
    if (!PyLong_CheckExact(o))
        return 0;
    int over = 0;
    *v = PyLong_AsLongLongAndOverflow(o, &over);
    if (over || (*v == -1 && PyErr_Occurred())) {
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* ``bytes.hex()`` */
static int put_bytes_hex(Buf *b, PyObject *code)
{
    if (!PyBytes_CheckExact(code))
        return 0;
    Py_ssize_t n = PyBytes_GET_SIZE(code);
    const unsigned char *p = (const unsigned char *)PyBytes_AS_STRING(code);
    if (buf_room(b, 2 * n) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        b->p[b->n++] = "0123456789abcdef"[p[i] >> 4];
        b->p[b->n++] = "0123456789abcdef"[p[i] & 15];
    }
    return 1;
}

/* -- codes' hashes and the texts read in place ------------------------------------------ */

/* The top bit of a code's hash: in a CodeSet, the code is known to the texts, or listed in
 * ``fresh`` (places_codes). code_hash leaves it 0. */
#define CODE_LISTED ((uint64_t)1 << 63)

/* ``n`` (at most 8) bytes at ``p`` as a little-endian number. */
HOT uint64_t le_word(const char *p, size_t n)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    uint64_t w = 0;
    memcpy(&w, p, n);
    return w;
#else
    uint64_t w = 0;
    for (size_t i = 0; i < n; i++)
        w |= (uint64_t)(unsigned char)p[i] << (8 * i);
    return w;
#endif
}

/* The little-endian u32 at ``p``. */
HOT uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* A hash of the code ``p[:n]`` (a few multiplications a code: most are one or two words),
 * the same on any machine: a compact table keeps it (textcache._code_hash is the
 * reference). */
static uint64_t code_hash(const char *p, size_t n)
{
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ (uint64_t)n;
    for (; n >= 8; p += 8, n -= 8) {
        h = (h ^ le_word(p, 8)) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    h = (h ^ (n == 4 ? (uint64_t)le32((const unsigned char *)p) : le_word(p, n))) *
        0xC4CEB9FE1A85EC53ULL;
    return (h ^ (h >> 29)) & ~CODE_LISTED;
}

/* A compact table of codes' texts (textcache, its FORMAT 2): the texts of the codes that read
 * the same anywhere and need no fix-up (``CodeTexts.code_json[c] == (text, ())``, and
 * ``simple[c]`` that text and ``, "fixups": []``), in one buffer, read where a texts file
 * holds it. The writer looks a code up there where the texts' dicts do not have it: a link's
 * 20,000 codes are not each made into Python objects when the texts are read.
 *   header:  b"ALTC", then little-endian u32s: the slots (a power of two), the records,
 *            the records' bytes
 *   slots:   two little-endian u32s each, the code's hash's low 32 bits and its record's
 *            offset in the records plus 1 (0: empty), from the hash (code_hash) masked on
 *            (linear probing): a slot of another code is passed without its record read
 *   records: little-endian u32s: the code's length, the text's length; then the code,
 *            then the text (ASCII)
 * The Python reference: textcache's _compact_table, _compact_get, _compact_items. */
typedef struct {
    const unsigned char *slots, *recs;
    uint32_t mask;
    size_t recs_len;
} Compact;

static void put_le32(unsigned char *q, uint32_t v)
{
    q[0] = (unsigned char)v;
    q[1] = (unsigned char)(v >> 8);
    q[2] = (unsigned char)(v >> 16);
    q[3] = (unsigned char)(v >> 24);
}

#define COMPACT_HEAD 16
#define COMPACT_SLOT 8
#define COMPACT_RECORD 8

/* ``t`` over the ``len`` bytes at ``p``: 1; 0 where they are not a compact table. */
static int compact_open(Compact *t, const unsigned char *p, size_t len)
{
    if (len < COMPACT_HEAD || memcmp(p, "ALTC", 4))
        return 0;
    uint32_t slots = le32(p + 4), recs_len = le32(p + 12);
    if (!slots || (slots & (slots - 1)) ||
        (len - COMPACT_HEAD) / COMPACT_SLOT < slots ||
        len - COMPACT_HEAD - COMPACT_SLOT * (size_t)slots != recs_len)
        return 0;
    t->slots = p + COMPACT_HEAD;
    t->recs = t->slots + COMPACT_SLOT * (size_t)slots;
    t->mask = slots - 1;
    t->recs_len = recs_len;
    return 1;
}

/* The record at offset ``off`` of ``t``'s records, its code and text: 1; 0 where it does not
 * lie inside them. */
HOT int compact_record(const Compact *t, size_t off, const char **code, size_t *code_n,
                       const char **text, size_t *text_n)
{
    if (off > t->recs_len || t->recs_len - off < COMPACT_RECORD)
        return 0;
    const unsigned char *r = t->recs + off;
    size_t cn = le32(r), tn = le32(r + 4), room = t->recs_len - off - COMPACT_RECORD;
    if (cn > room || tn > room - cn)
        return 0;
    *code = (const char *)r + COMPACT_RECORD;
    *code_n = cn;
    *text = *code + cn;
    *text_n = tn;
    return 1;
}

/* The text of the code ``p[:n]`` (hash ``h``, code_hash's) in ``t``: 1, into ``*text`` and
 * ``*text_n``; 0 where ``t`` has none. */
HOT int compact_find(const Compact *t, const char *p, size_t n, uint64_t h,
                     const char **text, size_t *text_n)
{
    for (uint32_t i = (uint32_t)h & t->mask, tries = 0; tries <= t->mask;
         i = (i + 1) & t->mask, tries++) {
        const unsigned char *slot = t->slots + COMPACT_SLOT * (size_t)i;
        uint32_t at = le32(slot + 4);
        if (!at)
            return 0;
        const char *code, *tp;
        size_t cn, tn;
        if (le32(slot) == (uint32_t)h && compact_record(t, at - 1, &code, &cn, &tp, &tn) &&
            cn == n && !memcmp(code, p, n)) {
            *text = tp;  /* (set only where found: a caller reads them only then) */
            *text_n = tn;
            return 1;
        }
    }
    return 0;
}

/* The compact tables of a dict of texts (``manifest.CodeTexts``' ``code_json``: a dict whose
 * ``compact`` attribute is a tuple of buffers, the tables), held while a call reads them. */
typedef struct {
    Py_ssize_t n;
    Py_buffer *views;
    Compact *t;
} Compacts;

static void compacts_release(Compacts *cs)
{
    for (Py_ssize_t i = 0; i < cs->n; i++)
        PyBuffer_Release(&cs->views[i]);
    PyMem_Free(cs->views);
    PyMem_Free(cs->t);
    cs->n = 0;
    cs->views = NULL;
    cs->t = NULL;
}

/* ``cs``, the compact tables of ``d`` (none for an exact dict, or one without them): 0; -1
 * on an error (a table that is not one is an error: textcache checks each it reads). */
static int compacts_of(Compacts *cs, PyObject *d)
{
    cs->n = 0;
    cs->views = NULL;
    cs->t = NULL;
    if (PyDict_CheckExact(d))
        return 0;
    PyObject *tables = PyObject_GetAttrString(d, "compact");
    if (!tables) {
        if (!PyErr_ExceptionMatches(PyExc_AttributeError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    int r = -1;
    if (!PyTuple_Check(tables)) {
        PyErr_SetString(PyExc_TypeError, "the texts' compact tables are not a tuple");
        goto done;
    }
    Py_ssize_t m = PyTuple_GET_SIZE(tables);
    if (m && (!(cs->views = PyMem_Calloc((size_t)m, sizeof(Py_buffer))) ||
              !(cs->t = PyMem_Calloc((size_t)m, sizeof(Compact))))) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < m; i++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(tables, i), &cs->views[i], PyBUF_SIMPLE) < 0)
            goto done;
        cs->n++;
        if (!compact_open(&cs->t[i], cs->views[i].buf, (size_t)cs->views[i].len)) {
            PyErr_SetString(PyExc_ValueError, "a compact table of texts is not one");
            goto done;
        }
    }
    r = 0;
done:
    Py_DECREF(tables);
    if (r < 0)
        compacts_release(cs);
    return r;
}

/* The text of the code ``p[:n]`` (hash ``h``) in the first of ``cs``' tables that has it: 1;
 * 0 none has. */
HOT int compacts_find(const Compacts *cs, const char *p, size_t n, uint64_t h,
                      const char **text, size_t *text_n)
{
    for (Py_ssize_t i = 0; i < cs->n; i++)
        if (compact_find(&cs->t[i], p, n, h, text, text_n))
            return 1;
    return 0;
}

/* The text of the bytes object ``code`` in ``cs``: 1; 0 none (or not exact bytes). */
HOT int compacts_text(const Compacts *cs, PyObject *code, const char **text, size_t *text_n)
{
    if (!cs->n || !PyBytes_CheckExact(code))
        return 0;
    const char *p = PyBytes_AS_STRING(code);
    size_t n = (size_t)PyBytes_GET_SIZE(code);
    return compacts_find(cs, p, n, code_hash(p, n), text, text_n);
}

/* compact_table(items) -> bytes: the compact table of ``items``, (code, text) pairs (bytes,
 * an ASCII str), a code's first pair kept. */
static PyObject *pl_compact_table(PyObject *self, PyObject *arg)
{
    PyObject *seq = PySequence_Fast(arg, "compact_table: items is not a sequence");
    if (!seq)
        return NULL;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = NULL;
    unsigned char *slots = NULL;
    Buf recs = {NULL, 0, 0, NULL};
    size_t nslots = 8;
    while (nslots < 2 * (size_t)m)
        nslots *= 2;
    if (nslots > 0x40000000u) {
        PyErr_SetString(PyExc_OverflowError, "compact_table: too many codes");
        goto done;
    }
    if (!(slots = PyMem_Calloc(nslots, COMPACT_SLOT))) {
        PyErr_NoMemory();
        goto done;
    }
    Compact t = {slots, NULL, (uint32_t)(nslots - 1), 0};
    uint32_t count = 0;
    for (Py_ssize_t k = 0; k < m; k++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, k), *code, *text;
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
            !PyBytes_CheckExact(code = PyTuple_GET_ITEM(item, 0)) ||
            !PyUnicode_CheckExact(text = PyTuple_GET_ITEM(item, 1)) ||
            !PyUnicode_IS_ASCII(text)) {
            PyErr_SetString(PyExc_ValueError, "compact_table: an item is not (bytes, an "
                            "ASCII str)");
            goto done;
        }
        const char *p = PyBytes_AS_STRING(code);
        size_t n = (size_t)PyBytes_GET_SIZE(code), tn = (size_t)PyUnicode_GET_LENGTH(text);
        uint64_t h = code_hash(p, n);
        t.recs = (const unsigned char *)recs.p;
        t.recs_len = (size_t)recs.n;
        const char *seen;
        size_t seen_n;
        if (compact_find(&t, p, n, h, &seen, &seen_n))
            continue;  /* (a code's first pair kept) */
        if ((size_t)recs.n + COMPACT_RECORD + n + tn > 0xFFFFFFF0u) {
            PyErr_SetString(PyExc_OverflowError, "compact_table: too many bytes");
            goto done;
        }
        uint32_t i = (uint32_t)h & t.mask;
        while (le32(slots + COMPACT_SLOT * (size_t)i + 4))
            i = (i + 1) & t.mask;
        put_le32(slots + COMPACT_SLOT * (size_t)i, (uint32_t)h);
        put_le32(slots + COMPACT_SLOT * (size_t)i + 4, (uint32_t)recs.n + 1);
        unsigned char head[COMPACT_RECORD];
        put_le32(head, (uint32_t)n);
        put_le32(head + 4, (uint32_t)tn);
        if (buf_put(&recs, (const char *)head, COMPACT_RECORD) < 0 ||
            buf_put(&recs, p, (Py_ssize_t)n) < 0 ||
            buf_put(&recs, (const char *)PyUnicode_DATA(text), (Py_ssize_t)tn) < 0)
            goto done;
        count++;
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(COMPACT_HEAD + COMPACT_SLOT * nslots)
                                    + recs.n);
    if (!out)
        goto done;
    unsigned char *q = (unsigned char *)PyBytes_AS_STRING(out);
    memcpy(q, "ALTC", 4);
    put_le32(q + 4, (uint32_t)nslots);
    put_le32(q + 8, count);
    put_le32(q + 12, (uint32_t)recs.n);
    memcpy(q + COMPACT_HEAD, slots, COMPACT_SLOT * nslots);
    if (recs.n)
        memcpy(q + COMPACT_HEAD + COMPACT_SLOT * nslots, recs.p, (size_t)recs.n);
done:
    Py_DECREF(seq);
    PyMem_Free(slots);
    PyMem_Free(recs.p);
    return out;
}

/* ``Compact`` over a buffer object, held in ``view``: 1; 0 not a table (ValueError set); -1
 * an error. */
static int compact_arg(PyObject *o, Py_buffer *view, Compact *t)
{
    if (PyObject_GetBuffer(o, view, PyBUF_SIMPLE) < 0)
        return -1;
    if (compact_open(t, view->buf, (size_t)view->len))
        return 1;
    PyBuffer_Release(view);
    PyErr_SetString(PyExc_ValueError, "not a compact table of texts");
    return 0;
}

/* compact_get(table, code) -> str | None: the text of ``code`` (bytes) in ``table``. */
static PyObject *pl_compact_get(PyObject *self, PyObject *args)
{
    PyObject *table;
    const char *p, *text;
    Py_ssize_t n;
    size_t tn;
    Py_buffer view;
    Compact t;
    if (!PyArg_ParseTuple(args, "Oy#", &table, &p, &n) || compact_arg(table, &view, &t) <= 0)
        return NULL;
    PyObject *got = compact_find(&t, p, (size_t)n, code_hash(p, (size_t)n), &text, &tn)
        ? PyUnicode_DecodeASCII(text, (Py_ssize_t)tn, "strict") : Py_NewRef(Py_None);
    PyBuffer_Release(&view);
    return got;
}

/* compact_items(table) -> list[tuple[bytes, str]]: the table's pairs, in the order made. */
static PyObject *pl_compact_items(PyObject *self, PyObject *table)
{
    Py_buffer view;
    Compact t;
    if (compact_arg(table, &view, &t) <= 0)
        return NULL;
    PyObject *out = PyList_New(0);
    for (size_t off = 0; out && off < t.recs_len;) {
        const char *code, *text;
        size_t cn, tn;
        if (!compact_record(&t, off, &code, &cn, &text, &tn)) {
            PyErr_SetString(PyExc_ValueError, "a compact table's records run past its end");
            Py_CLEAR(out);
            break;
        }
        PyObject *pair = Py_BuildValue("(y#N)", code, (Py_ssize_t)cn,
                                       PyUnicode_DecodeASCII(text, (Py_ssize_t)tn, "strict"));
        if (!pair || PyList_Append(out, pair) < 0)
            Py_CLEAR(out);
        Py_XDECREF(pair);
        off += COMPACT_RECORD + cn + tn;
    }
    PyBuffer_Release(&view);
    return out;
}

/* ``_Records._disasm(code, address)`` from the code's plan (``disasm_json``'s: the JSON list
 * as a str, or a list of its lines, each a str or (prefix, i, offset, page) for a target made
 * at the place): 1 put; 0 not (another part: the line of a word that insn.disasm makes at
 * each place, or no plan), then the Python makes it; -1 an error. */
static int put_plan(Buf *b, PyObject *plans, PyObject *code, uint64_t address)
{
    PyObject *plan = PyDict_GetItemWithError(plans, code);
    if (!plan)
        return PyErr_Occurred() ? -1 : 0;
    if (PyUnicode_CheckExact(plan))
        return put_ascii(b, plan);
    if (!PyList_CheckExact(plan))
        return 0;
    if (buf_put(b, "[", 1) < 0)
        return -1;
    for (Py_ssize_t j = 0; j < PyList_GET_SIZE(plan); j++) {
        PyObject *part = PyList_GET_ITEM(plan, j);
        int r;
        if (j && buf_put(b, ", ", 2) < 0)
            return -1;
        if (PyUnicode_CheckExact(part)) {
            if ((r = put_ascii(b, part)) <= 0)
                return r;
            continue;
        }
        if (!PyTuple_CheckExact(part) || PyTuple_GET_SIZE(part) != 4)
            return 0;
        long long i, offset;
        PyObject *page = PyTuple_GET_ITEM(part, 3);
        if (!as_i64(PyTuple_GET_ITEM(part, 1), &i) ||
            !as_i64(PyTuple_GET_ITEM(part, 2), &offset) || (page != Py_True && page != Py_False))
            return 0;
        /* (pc and its target modulo 2**64, as the Python's ``& _MASK64`` gives them) */
        uint64_t pc = address + 4 * (uint64_t)i;
        uint64_t at = (page == Py_True ? pc & ~(uint64_t)0xFFF : pc) + (uint64_t)offset;
        if ((r = put_ascii(b, PyTuple_GET_ITEM(part, 0))) <= 0 || (r = put_hex64(b, at)) <= 0)
            return r;
        if (buf_put(b, "\"", 1) < 0)
            return -1;
    }
    return buf_put(b, "]", 1) < 0 ? -1 : 1;
}

/* The displacement of ``word``, a word of ``kind`` (one of insn.FIXUP_KINDS, as insn.decode
 * names it), as insn.decode reads it: 1; 0 where the word is not of that kind's encoding or
 * the kind is not one of those (the Python then decides). ``*kind_text``: the kind as JSON. */
static int fixup_word(PyObject *kind, uint32_t word, int64_t *offset, int *adrp,
                      const char **kind_text)
{
    if (!PyUnicode_CheckExact(kind) || !PyUnicode_IS_ASCII(kind))
        return 0;
    const char *k = (const char *)PyUnicode_DATA(kind);
    *adrp = 0;
    if (!strcmp(k, "branch26") && (word & 0x7C000000) == 0x14000000) {  /* B, BL */
        *offset = ((int64_t)(word & 0x03FFFFFF) ^ 0x02000000) - 0x02000000;
        *offset *= 4;
        *kind_text = "\"branch26\"";
    } else if ((!strcmp(k, "cmp19") && (word & 0x7E000000) == 0x34000000) ||  /* CBZ, CBNZ */
               (!strcmp(k, "cond19") && (word & 0xFF000000) == 0x54000000)) {  /* B.cond */
        *offset = ((int64_t)((word & 0x00FFFFE0) >> 5) ^ 0x40000) - 0x40000;
        *offset *= 4;
        *kind_text = k[1] == 'm' ? "\"cmp19\"" : "\"cond19\"";
    } else if (!strcmp(k, "test14") && (word & 0x7E000000) == 0x36000000) {  /* TBZ, TBNZ */
        *offset = ((int64_t)((word & 0x0007FFE0) >> 5) ^ 0x2000) - 0x2000;
        *offset *= 4;
        *kind_text = "\"test14\"";
    } else if (!strcmp(k, "adrp") && (word & 0x9F000000) == 0x90000000) {  /* ADRP */
        int64_t imm = (int64_t)(((word >> 3) & 0x1FFFFC) | ((word >> 29) & 3));
        *offset = ((imm ^ 0x100000) - 0x100000) * 4096;
        *adrp = 1;
        *kind_text = "\"adrp\"";
    } else {
        return 0;
    }
    return 1;
}

/* ``_Records._fixups(branches, alt_addr, alt_len)``: of the code's words that may need a
 * fix-up (``_Code.branches``: (index, word, kind) each), those that do at ``alt_addr``, as
 * insn.needs_fixup decides (a branch whose target is outside [alt_addr, alt_addr + alt_len],
 * an ADRP always) with insn.target's target: 1 put; 0 not (a word or kind it does not
 * know: the Python's); -1 an error. */
static int put_fixups(Buf *b, PyObject *branches, uint64_t alt_addr, uint64_t alt_len)
{
    int first = 1, r;
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(branches); j++) {
        PyObject *w = PyTuple_GET_ITEM(branches, j);
        long long i, word;
        int64_t offset;
        int adrp;
        const char *kind_text;
        if (!PyTuple_CheckExact(w) || PyTuple_GET_SIZE(w) != 3 ||
            !as_i64(PyTuple_GET_ITEM(w, 0), &i) || !as_i64(PyTuple_GET_ITEM(w, 1), &word) ||
            word < 0 || word > 0xFFFFFFFFLL ||
            !fixup_word(PyTuple_GET_ITEM(w, 2), (uint32_t)word, &offset, &adrp, &kind_text))
            return 0;
        /* (pc and the target modulo 2**64, as the Python's ``& _MASK64`` gives them) */
        uint64_t pc = alt_addr + 4 * (uint64_t)i, target;
        if (adrp) {
            target = (pc & ~(uint64_t)0xFFF) + (uint64_t)offset;
        } else {
            target = pc + (uint64_t)offset;
            if (target >= alt_addr && target - alt_addr <= alt_len)
                continue;
        }
        if (!first && buf_put(b, ", ", 2) < 0)
            return -1;
        first = 0;
        if (PUT_LIT(b, "{\"insn\": ") < 0)
            return -1;
        if ((r = put_dec(b, PyTuple_GET_ITEM(w, 0))) <= 0)
            return r;
        if (PUT_LIT(b, ", \"kind\": ") < 0 || buf_put(b, kind_text, (Py_ssize_t)strlen(kind_text)) < 0 ||
            PUT_LIT(b, ", \"target\": \"") < 0)
            return -1;
        if ((r = put_hex64(b, target)) <= 0)
            return r;
        if (PUT_LIT(b, "\"}") < 0)
            return -1;
    }
    return 1;
}

/* ``_name_json(name)``: "null" for None; a str of printable ASCII but for '"' and '\\' as
 * JSON's encoder writes it (quoted, nothing escaped): 1 put; 0 another str (the Python
 * escapes it); -1 an error. */
static int put_name(Buf *b, PyObject *name)
{
    if (name == Py_None)
        return PUT_LIT(b, "null") < 0 ? -1 : 1;
    if (!PyUnicode_CheckExact(name) || !PyUnicode_IS_ASCII(name))
        return 0;
    const char *p = (const char *)PyUnicode_DATA(name);
    Py_ssize_t n = PyUnicode_GET_LENGTH(name);
    for (Py_ssize_t i = 0; i < n; i++)
        if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\' || p[i] == 0x7f)
            return 0;
    if (buf_room(b, n + 2) < 0)
        return -1;
    b->p[b->n++] = '"';
    memcpy(b->p + b->n, p, (size_t)n);
    b->n += n;
    b->p[b->n++] = '"';
    return 1;
}

#define TRY(x)                  \
    do {                        \
        int r_ = (x);           \
        if (r_ < 0)             \
            goto error;         \
        if (r_ == 0)            \
            goto hole;          \
    } while (0)

static PyObject *as_list(PyObject *o, Py_ssize_t n, const char *what)
{
    if (!PyList_CheckExact(o) || PyList_GET_SIZE(o) != n) {
        PyErr_Format(PyExc_ValueError, "entry_texts: %s is not a list of the entries' length",
                     what);
        return NULL;
    }
    return o;
}

/* A column of offsets: a list of the entries' length (``*u`` left NULL), or a buffer of
 * their 64-bit unsigned values, held in ``view`` (``*u`` its bytes; released by the caller
 * where ``*u`` is set): the column, or NULL (an error set). */
static PyObject *offsets_column(PyObject *o, Py_ssize_t n, const char *what, Py_buffer *view,
                                const unsigned char **u)
{
    if (PyList_CheckExact(o))
        return as_list(o, n, what);
    if (PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS) < 0)
        return NULL;
    if (view->len != 8 * n || view->itemsize != 8) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_ValueError, "entry_texts: %s is not a list or 64-bit items of the "
                     "entries' length", what);
        return NULL;
    }
    *u = view->buf;
    return o;
}

/* A new reference to the text ``site_text(k)`` or ``repl_text(k)`` gives (their Python). */
static PyObject *call_k(PyObject *fn, Py_ssize_t k)
{
    PyObject *kk = PyLong_FromSsize_t(k);
    if (!kk)
        return NULL;
    PyObject *got = PyObject_CallOneArg(fn, kk);
    Py_DECREF(kk);
    return got;
}

/* ``repl_text``'s text (a static replacement's fields after its address), put in ``t``: its
 * bytes and lines (``codes``' text, else from its plan at ``addr``) and its fix-ups
 * (``put_fixups``): 1 made; 0 not (the Python's); -1 an error. */
static int repl_fields(Buf *t, PyObject *codes, PyObject *plans, PyObject *code,
                       uint64_t addr, uint64_t len)
{
    int r;
    PyObject *got = PyDict_GetItemWithError(codes, code);
    if (!got)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_CheckExact(got) || PyTuple_GET_SIZE(got) != 2)
        return 0;
    PyObject *text = PyTuple_GET_ITEM(got, 0), *branches = PyTuple_GET_ITEM(got, 1);
    if (text == Py_None) {
        if ((r = PUT_LIT(t, "\"bytes\": \"")) < 0 || (r = put_bytes_hex(t, code)) <= 0)
            return r;
        if ((r = PUT_LIT(t, "\", \"disasm\": ")) < 0 || (r = put_plan(t, plans, code, addr)) <= 0)
            return r;
    } else if ((r = put_ascii(t, text)) <= 0) {
        return r;
    }
    if (PUT_LIT(t, ", \"fixups\": [") < 0)
        return -1;
    if (!PyTuple_CheckExact(branches))
        return 0;
    if (PyTuple_GET_SIZE(branches) &&
        (r = put_fixups(t, branches, addr, (uint64_t)len)) <= 0)
        return r;
    return PUT_LIT(t, "]") < 0 ? -1 : 1;
}

/* A table of names by address: the sorted values of an image's addressable symbols
 * (``keys``, 64-bit unsigned) and, for each, the offset of its best symbol's name in the
 * string table (``offs``, 64-bit signed): ``symbols._Index``, as ``manifest._name_index``
 * gives it. */
typedef struct {
    const uint64_t *keys;
    const int64_t *offs;
    Py_ssize_t n;
    const char *strtab;
    Py_ssize_t strtab_len;
    /* the last lookup's (a table's sites come mostly in the order of their addresses, many
     * in one function): its position (bisect_right's, -1 for none yet), and the name there
     * (its length; where ``name`` is NULL, not yet read) */
    Py_ssize_t last;
    const char *name;
    Py_ssize_t name_n;
} NameIndex;

/* ``_name_json(Symbolizer.at_address(addr))`` from the table of names: the name of the
 * nearest value at or before ``addr``, with ``+0x...`` where the address is past it, "null"
 * before the first: 1 put; 0 not (a name that is empty or not printable ASCII but for '"'
 * and '\\': the Python's); -1 an error. */
static int put_name_at(Buf *b, NameIndex *ix, uint64_t addr)
{
    Py_ssize_t lo = ix->last;
    /* (the last lookup's position where it holds addr, else the next one's, else a search) */
    if (!(lo >= 0 && (lo == 0 || ix->keys[lo - 1] <= addr) &&
          (lo == ix->n || ix->keys[lo] > addr))) {
        if (lo >= 0 && lo < ix->n && ix->keys[lo] <= addr &&
            (lo + 1 == ix->n || ix->keys[lo + 1] > addr)) {
            lo++;
        } else {
            Py_ssize_t hi = ix->n;
            lo = 0;
            while (lo < hi) {  /* (the first value above addr: bisect_right) */
                Py_ssize_t mid = lo + (hi - lo) / 2;
                if (ix->keys[mid] <= addr)
                    lo = mid + 1;
                else
                    hi = mid;
            }
        }
    }
    if (lo != ix->last) {
        ix->last = lo;
        ix->name = NULL;
    }
    if (lo == 0)
        return PUT_LIT(b, "null") < 0 ? -1 : 1;
    if (!ix->name) {
        int64_t off = ix->offs[lo - 1];
        if (off < 0 || off >= ix->strtab_len)
            return 0;
        const char *p = ix->strtab + off;
        const char *end = memchr(p, 0, (size_t)(ix->strtab_len - off));
        Py_ssize_t n = end ? end - p : ix->strtab_len - off;
        if (n == 0)
            return 0;
        for (Py_ssize_t i = 0; i < n; i++)
            if (p[i] < 0x20 || p[i] == '"' || p[i] == '\\' || p[i] >= 0x7f)
                return 0;
        ix->name = p;
        ix->name_n = n;
    }
    Py_ssize_t n = ix->name_n;
    if (buf_room(b, n + 2) < 0)
        return -1;
    b->p[b->n++] = '"';
    memcpy(b->p + b->n, ix->name, (size_t)n);
    b->n += n;
    uint64_t delta = addr - ix->keys[lo - 1];
    if (delta && (buf_put(b, "+", 1) < 0 || put_hex64(b, delta) < 0))
        return -1;
    return buf_put(b, "\"", 1) < 0 ? -1 : 1;
}

/* What ``put_entry`` writes an entry from: ``entry_texts``' arguments. */
typedef struct {
    PyObject *heads, *cbs, *codes, *simple, *plans, *site_text, *repl_text, *callback,
        *cap_raws, *index, *a_addr, *a_code, *alt_lens, *s_addr, *s_code, *s_bin, *s_file,
        *orig_lens, *src, *names;
    NameIndex ix;  /* where ``names`` is a table of names (ix.keys not NULL) */
    Compacts compact;  /* ``codes``' compact tables: the codes the dicts do not have */
    /* where not NULL, the sites' file and raw binary offsets as 64-bit unsigned items
     * (``s_file`` and ``s_bin`` given as arrays), instead of their lists; the same of the
     * addresses (unsigned), of the capabilities and lengths (signed) */
    const unsigned char *file_u, *bin_u, *sa_u, *aa_u, *cap_u, *ol_u, *al_u;
} Entries;

/* Item ``k`` of a column of 64-bit items ``u`` (where not NULL) or of the list ``list`` (an
 * exact int in [0, 2**64) there), into ``*v``: 1; 0 not such an int. */
HOT int col_u64(const unsigned char *u, PyObject *list, Py_ssize_t k, uint64_t *v)
{
    if (u) {
        memcpy(v, u + 8 * k, 8);
        return 1;
    }
    PyObject *o = PyList_GET_ITEM(list, k);
    if (!PyLong_CheckExact(o))
        return 0;
    unsigned long long x = PyLong_AsUnsignedLongLong(o);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    *v = x;
    return 1;
}

/* The same of a signed column (an exact int that fits 64 bits signed, in a list). */
HOT int col_i64(const unsigned char *u, PyObject *list, Py_ssize_t k, int64_t *v)
{
    long long x;
    if (u) {
        memcpy(v, u + 8 * k, 8);
        return 1;
    }
    if (!as_i64(PyList_GET_ITEM(list, k), &x))
        return 0;
    *v = x;
    return 1;
}

/* ``d[column[k]]`` (borrowed; NULL where it has none, with an error set where the lookup
 * failed): the list's item, or an int of the 64-bit item (signed or not). */
static PyObject *col_lookup(PyObject *d, const unsigned char *u, PyObject *list, Py_ssize_t k,
                            int is_signed)
{
    if (!u)
        return PyDict_GetItemWithError(d, PyList_GET_ITEM(list, k));
    uint64_t v;
    memcpy(&v, u + 8 * k, 8);
    PyObject *key = is_signed ? PyLong_FromLongLong((long long)(int64_t)v)
        : PyLong_FromUnsignedLongLong(v);
    if (!key)
        return NULL;
    PyObject *got = PyDict_GetItemWithError(d, key);
    Py_DECREF(key);
    return got;
}

/* An offset of the column of 64-bit unsigned items ``u`` (where not NULL) or of the list
 * ``list`` (``put_str_or_dec``'s: a str or an int), put. */
HOT int put_offset(Buf *b, const unsigned char *u, PyObject *list, Py_ssize_t k)
{
    if (u) {
        uint64_t v;
        memcpy(&v, u + 8 * k, 8);
        return put_udec(b, v) < 0 ? -1 : 1;
    }
    return put_str_or_dec(b, PyList_GET_ITEM(list, k));
}

/* The entry's index: ``index[k]``, or ``k`` where ``index`` is None. */
HOT int put_index(Buf *b, Entries *c, Py_ssize_t k)
{
    if (c->index == Py_None)
        return put_udec(b, (unsigned long long)k) < 0 ? -1 : 1;
    return put_dec(b, PyList_GET_ITEM(c->index, k));
}

/* The text made by the Python function ``fn`` (``site_text`` or ``repl_text``) of entry
 * ``k``, put: 1; 0 not ASCII text (the entry is the Python's); -1 an error. */
static int put_call(Buf *b, PyObject *fn, Py_ssize_t k)
{
    PyObject *got = call_k(fn, k);
    if (!got)
        return -1;
    int r = put_ascii(b, got);
    Py_DECREF(got);
    return r;
}

/* The site's bytes and disassembly, ``codes[code][0]`` (``site_text``'s where that is None:
 * its bytes and its lines' plan at ``addr``, else the Python's), put: 1, 0 or -1 as above. */
static int put_site_code(Buf *b, Entries *c, Py_ssize_t k, PyObject *code, uint64_t addr)
{
    int r;
    const char *text;
    size_t text_n;
    /* (the compact tables first: most codes are theirs, and none is both theirs and the
     * dict's but with the same text) */
    if (compacts_text(&c->compact, code, &text, &text_n))
        return buf_put(b, text, (Py_ssize_t)text_n) < 0 ? -1 : 1;
    PyObject *got = PyDict_GetItemWithError(c->codes, code);
    if (!got)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(got) || PyTuple_GET_SIZE(got) < 1)
        return 0;
    PyObject *st = PyTuple_GET_ITEM(got, 0);
    if (st != Py_None)
        return put_ascii(b, st);
    Py_ssize_t mark = b->n;
    if ((r = PUT_LIT(b, "\"bytes\": \"")) < 0 || (r = put_bytes_hex(b, code)) < 0)
        return -1;
    if (r > 0 && (PUT_LIT(b, "\", \"disasm\": ") < 0 ||
                  (r = put_plan(b, c->plans, code, addr)) < 0))
        return -1;
    if (r > 0)
        return 1;
    b->n = mark;
    return put_call(b, c->site_text, k);
}

/* Entry ``k``'s text, put in ``b`` (``entry_texts``' comment): 1 put; 0 not (the Python
 * writes it; part of it may be in ``b``); -1 an error. Each field is written straight into
 * ``b`` where it is looked up (a text made by the Python's ``site_text`` or ``repl_text``
 * too: no reference held to a dict's text while the Python runs). */
static int put_entry(Buf *b, Entries *c, Py_ssize_t k)
{
    int r;
    PyObject *cb = PyList_GET_ITEM(c->callback, k);
    int is_cb = cb == Py_True ? 1 : cb == Py_False ? 0 : -1;
    if (is_cb < 0)
        return 0;
    PyObject *head = col_lookup(c->heads, c->cap_u, c->cap_raws, k, 1);
    if (!head)
        return PyErr_Occurred() ? -1 : 0;
    uint64_t sa, aa;  /* (the Python's where either is not an int under 2**64) */
    if (!col_u64(c->sa_u, c->s_addr, k, &sa) || !col_u64(c->aa_u, c->a_addr, k, &aa))
        return 0;
    if (is_cb) {
        PyObject *cbt = col_lookup(c->cbs, c->aa_u, c->a_addr, k, 0);
        if (!cbt)
            return PyErr_Occurred() ? -1 : 0;
        TRY(PUT_LIT(b, "{\"callback\": ") == 0 ? 1 : -1);
        TRY(put_ascii(b, cbt));
        TRY(PUT_LIT(b, ", ") == 0 ? 1 : -1);
        TRY(put_ascii(b, head));
        TRY(PUT_LIT(b, "\"index\": ") == 0 ? 1 : -1);
        TRY(put_index(b, c, k));
        TRY(PUT_LIT(b, ", \"kind\": \"callback\", \"replacement\": null, ") == 0 ? 1 : -1);
    } else {
        PyObject *code = PyList_GET_ITEM(c->a_code, k);
        const char *ct = NULL;  /* (the compact tables' text: put_site_code's order) */
        size_t ct_n = 0;
        PyObject *rc = compacts_text(&c->compact, code, &ct, &ct_n) ? Py_None
            : PyDict_GetItemWithError(c->simple, code);
        if (!rc)
            return PyErr_Occurred() ? -1 : 0;
        TRY(PUT_LIT(b, "{\"callback\": null, ") == 0 ? 1 : -1);
        TRY(put_ascii(b, head));
        TRY(PUT_LIT(b, "\"index\": ") == 0 ? 1 : -1);
        TRY(put_index(b, c, k));
        TRY(PUT_LIT(b, ", \"kind\": \"static\", \"replacement\": {\"address\": \"") == 0
            ? 1 : -1);
        TRY(put_hex64(b, aa));
        TRY(PUT_LIT(b, "\", ") == 0 ? 1 : -1);
        if (ct) {  /* a code that reads the same anywhere and needs no fix-up */
            TRY(buf_put(b, ct, (Py_ssize_t)ct_n) == 0 ? 1 : -1);
            TRY(PUT_LIT(b, ", \"fixups\": []") == 0 ? 1 : -1);
        } else if (rc != Py_None) {
            TRY(put_ascii(b, rc));
        } else {  /* its text and fix-ups at its address, else the Python's */
            Py_ssize_t mark = b->n;
            int64_t len;
            r = 0;
            if (col_i64(c->al_u, c->alt_lens, k, &len) && len >= 0 &&
                (r = repl_fields(b, c->codes, c->plans, code, aa, (uint64_t)len)) < 0)
                goto error;
            if (r == 0) {
                b->n = mark;
                TRY(put_call(b, c->repl_text, k));
            }
        }
        TRY(PUT_LIT(b, "}, ") == 0 ? 1 : -1);
    }
    TRY(PUT_LIT(b, "\"site\": {\"address\": \"") == 0 ? 1 : -1);
    TRY(put_hex64(b, sa));
    TRY(PUT_LIT(b, "\", \"bin_offset\": ") == 0 ? 1 : -1);
    TRY(put_offset(b, c->bin_u, c->s_bin, k));
    TRY(PUT_LIT(b, ", ") == 0 ? 1 : -1);
    TRY(put_site_code(b, c, k, PyList_GET_ITEM(c->s_code, k), sa));
    TRY(PUT_LIT(b, ", \"file_offset\": ") == 0 ? 1 : -1);
    TRY(put_offset(b, c->file_u, c->s_file, k));
    TRY(PUT_LIT(b, ", \"length\": ") == 0 ? 1 : -1);
    if (c->ol_u) {
        int64_t n;
        memcpy(&n, c->ol_u + 8 * k, 8);
        TRY(n < 0 ? PUT_LIT(b, "-") == 0 ? 1 : -1 : 1);
        TRY(put_udec(b, n < 0 ? 0 - (uint64_t)n : (uint64_t)n) == 0 ? 1 : -1);
    } else {
        TRY(put_dec(b, PyList_GET_ITEM(c->orig_lens, k)));
    }
    TRY(PUT_LIT(b, ", ") == 0 ? 1 : -1);
    if (c->src != Py_None)
        TRY(put_ascii(b, PyList_GET_ITEM(c->src, k)));
    TRY(PUT_LIT(b, "\"symbol\": ") == 0 ? 1 : -1);
    if (c->ix.keys) {
        TRY(put_name_at(b, &c->ix, sa));
    } else {
        TRY(put_name(b, PyList_GET_ITEM(c->names, k)));
    }
    TRY(PUT_LIT(b, "}}") == 0 ? 1 : -1);
    return 1;
hole:
    return 0;
error:
    return -1;
}

/* A new str of the buffer's ASCII text. */
static PyObject *buf_str(const Buf *b)
{
    PyObject *s = PyUnicode_New(b->n, 127);
    if (s)
        memcpy(PyUnicode_DATA(s), b->p, (size_t)b->n);
    return s;
}

/* Append a new reference (NULL: an error, passed on) to a list, and drop it: 0, or -1. */
static int append_new(PyObject *list, PyObject *item)
{
    if (!item)
        return -1;
    int r = PyList_Append(list, item);
    Py_DECREF(item);
    return r;
}

/* -- manifest._Records._from_columns' entries --------------------------------------------
 * entry_texts(heads, cbs, codes, simple, plans, site_text, repl_text, callback,
 *             cap_raws, index, a_addr, a_code, alt_lens, s_addr, s_code, s_bin, s_file,
 *             orig_lens, src, names, joined=False, start=0, stop=None)
 *     -> list[str | None]
 * Each entry's text as ``_entry_texts`` writes it from its columns: a site's code text
 * ``codes[s_code[k]][0]``, else its bytes and its lines from their plan at the site
 * (``plans``: ``_disasm``'s), else ``site_text(k)``; a static replacement's fields after its
 * address ``simple[a_code[k]]``, else its text (``codes``' or made from its plan) and its
 * fix-ups (``put_fixups``), else ``repl_text(k)``; ``heads[cap_raws[k]]``,
 * ``cbs[a_addr[k]]`` for a callback; ``index[k]``, the entry's index (``k`` where
 * ``index`` is None); ``names[k]`` as ``_name_json`` writes it, or, where ``names`` is a
 * tuple (keys, offsets, strtab: ``manifest._name_index``), the name of the site's address
 * looked up in it (``put_name_at``). ``src``: the sites' "source" fields, or None for
 * none.
 * Every column a list of the entries' length; ``s_bin`` and ``s_file`` may be arrays of
 * 64-bit unsigned items instead (``manifest._Records._places_np``'s: no list of ints
 * made), and so may ``s_addr`` and ``a_addr``, and ``cap_raws``, ``orig_lens`` and
 * ``alt_lens`` arrays of 64-bit signed items (a table's columns as read: ``table_json``'s,
 * no list of ints made of them either). None in the result where a field is not ASCII text or an int the f-string would
 * write so (a name outside ASCII, say), or the entry's callback is not a bool: the Python
 * writes that entry.
 * ``joined``: instead, the texts of each run of entries without a None between them joined
 * as ``manifest.dumps`` joins entries (",\n  "), one bytes object (ASCII) a run, and a None
 * for each entry left to the Python, with the positions of those entries: (pieces, holes).
 * (Bytes, written as they are by ``manifest.dump``: no other copy of a link's 15 MB.)
 * ``start``, ``stop``: the entries ``start`` to ``stop`` alone (``k`` in ``range(start,
 * stop)``; a hole's position is still its ``k``): the link's writer makes its entries a few
 * hundred at a time and writes each run before it makes the next (``manifest.EncodedLater``:
 * a link's 15 MB of text is not made at once, fresh memory page by page). */
static PyObject *pl_entry_texts(PyObject *self, PyObject *args)
{
    Entries c;
    int joined = 0, have_ix = 0;
    Py_ssize_t start = 0;
    PyObject *stop_o = Py_None;
    Py_buffer kb = {0}, ob = {0}, fb = {0}, bb = {0}, sab = {0}, aab = {0}, capb = {0},
        olb = {0}, alb = {0};
    Buf b = {NULL, 0, 0, NULL};
    PyObject *out = NULL, *holes = NULL, *result = NULL;
    Py_ssize_t in_run = 0;  /* (joined: the entries in b) */
    memset(&c, 0, sizeof c);
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!OOOOOOOOOOOOOOO|pnO", &PyDict_Type, &c.heads,
                          &PyDict_Type, &c.cbs, &PyDict_Type, &c.codes, &PyDict_Type,
                          &c.simple, &PyDict_Type, &c.plans, &c.site_text,
                          &c.repl_text, &c.callback, &c.cap_raws, &c.index, &c.a_addr,
                          &c.a_code, &c.alt_lens, &c.s_addr, &c.s_code, &c.s_bin, &c.s_file,
                          &c.orig_lens, &c.src, &c.names, &joined, &start, &stop_o))
        return NULL;
    if (!PyList_CheckExact(c.callback)) {
        PyErr_SetString(PyExc_ValueError, "entry_texts: callback is not a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(c.callback), stop = n;
    if (stop_o != Py_None && (stop = PyNumber_AsSsize_t(stop_o, PyExc_OverflowError)) == -1 &&
        PyErr_Occurred())
        return NULL;
    if (start < 0 || start > stop || stop > n) {
        PyErr_SetString(PyExc_ValueError, "entry_texts: start and stop are not a range of "
                        "the entries");
        return NULL;
    }
    if (PyTuple_CheckExact(c.names)) {  /* a table of names: (keys, offsets, strtab) */
        PyObject *strtab;
        if (PyTuple_GET_SIZE(c.names) != 3 ||
            !PyBytes_CheckExact(strtab = PyTuple_GET_ITEM(c.names, 2))) {
            PyErr_SetString(PyExc_ValueError, "entry_texts: names is not (keys, offsets, "
                            "strtab)");
            return NULL;
        }
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(c.names, 0), &kb, PyBUF_SIMPLE) < 0)
            return NULL;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(c.names, 1), &ob, PyBUF_SIMPLE) < 0) {
            PyBuffer_Release(&kb);
            return NULL;
        }
        have_ix = 1;
        if (kb.len % 8 || ob.len != kb.len) {
            PyErr_SetString(PyExc_ValueError, "entry_texts: the names' keys and offsets are "
                            "not of 64-bit items, one each");
            goto fail;
        }
        c.ix.keys = kb.buf;
        c.ix.offs = ob.buf;
        c.ix.n = kb.len / 8;
        c.ix.strtab = PyBytes_AS_STRING(strtab);
        c.ix.strtab_len = PyBytes_GET_SIZE(strtab);
        c.ix.last = -1;
        if (!c.ix.n)
            c.ix.keys = (const uint64_t *)"";  /* (not NULL: the table is used, and empty) */
    }
    if (compacts_of(&c.compact, c.codes) < 0)
        goto fail;
    if (!offsets_column(c.cap_raws, n, "cap_raws", &capb, &c.cap_u) ||
        (c.index != Py_None && !as_list(c.index, n, "index")) ||
        !offsets_column(c.a_addr, n, "a_addr", &aab, &c.aa_u) ||
        !as_list(c.a_code, n, "a_code") ||
        !offsets_column(c.alt_lens, n, "alt_lens", &alb, &c.al_u) ||
        !offsets_column(c.s_addr, n, "s_addr", &sab, &c.sa_u) ||
        !as_list(c.s_code, n, "s_code") ||
        !offsets_column(c.s_bin, n, "s_bin", &bb, &c.bin_u) ||
        !offsets_column(c.s_file, n, "s_file", &fb, &c.file_u) ||
        !offsets_column(c.orig_lens, n, "orig_lens", &olb, &c.ol_u) ||
        (!have_ix && !as_list(c.names, n, "names")) ||
        (c.src != Py_None && !as_list(c.src, n, "src")))
        goto fail;
    out = joined ? PyList_New(0) : PyList_New(stop - start);
    if (!out || (joined && !(holes = PyList_New(0))))
        goto done;
    /* (about a link's entry's length) */
    if (joined && buf_new_bytes(&b, (stop - start) * 400 + 1024) < 0)
        goto done;
    for (Py_ssize_t k = start; k < stop; k++) {
        int r;
        if (!joined) {
            b.n = 0;
            if ((r = put_entry(&b, &c, k)) < 0)
                goto done;
            PyObject *s = r ? buf_str(&b) : Py_NewRef(Py_None);
            if (!s)
                goto done;
            PyList_SET_ITEM(out, k - start, s);
            continue;
        }
        Py_ssize_t mark = b.n;
        if (in_run && PUT_LIT(&b, ",\n  ") < 0)
            goto done;
        if ((r = put_entry(&b, &c, k)) < 0)
            goto done;
        if (r) {
            in_run++;
            continue;
        }
        b.n = mark;  /* a hole: the run so far, then None */
        if (in_run && (append_new(out, buf_bytes(&b)) < 0 ||
                       buf_new_bytes(&b, (stop - k) * 400) < 0))
            goto done;
        b.n = 0;
        in_run = 0;
        if (PyList_Append(out, Py_None) < 0 || append_new(holes, PyLong_FromSsize_t(k)) < 0)
            goto done;
    }
    if (joined && in_run && append_new(out, buf_bytes(&b)) < 0)
        goto done;
    if (joined) {
        result = PyTuple_Pack(2, out, holes);
        goto done;  /* (the tuple holds out and holes) */
    }
    result = out;
    out = NULL;
done:  /* (result holds its own references) */
    Py_XDECREF(out);  /* (its items not yet set are NULL: list_dealloc passes them) */
    Py_XDECREF(holes);
fail:
    if (b.bytes)
        Py_CLEAR(b.bytes);
    else
        PyMem_Free(b.p);
    if (have_ix) {
        PyBuffer_Release(&kb);
        PyBuffer_Release(&ob);
    }
    compacts_release(&c.compact);
    if (c.file_u)
        PyBuffer_Release(&fb);
    if (c.bin_u)
        PyBuffer_Release(&bb);
    if (c.sa_u)
        PyBuffer_Release(&sab);
    if (c.aa_u)
        PyBuffer_Release(&aab);
    if (c.cap_u)
        PyBuffer_Release(&capb);
    if (c.ol_u)
        PyBuffer_Release(&olb);
    if (c.al_u)
        PyBuffer_Release(&alb);
    return result;
}

/* -- manifest._Records._places_np's codes ------------------------------------------------
 * places_codes(datas, columns, known=None, fresh=None) -> list[list[bytes]] | None
 * For each (idx, off, length) of ``columns``: ``[datas[i][o:o + k] for i, o, k in zip(idx,
 * off, length)]``, of the columns' buffers (each of 64-bit items: ``idx`` signed, ``off`` and
 * ``length`` unsigned, of one length); ``datas`` a dict of bytes by section index. None where
 * an index is not in ``datas`` or its bytes are not bytes (the Python then says so, or reads
 * them), or a triple's buffers are not of one length.
 * Equal codes are one object, in all the columns: the key of ``known`` (a dict, the texts'
 * ``code_json``) of those bytes where it has one, else the first made (a link's 80,000
 * places, sites and replacements, hold about 20,000 codes: no object made for each, and the
 * dicts they are looked up in then find their own keys, hashed once). ``known``'s keys are
 * read once for all the columns. ``fresh``: a list, to which each code made here (none of
 * ``known``'s keys) is appended, once, at its first place that a column's fourth item
 * ``unlisted`` (where given: a buffer of a byte a place, not 0 for such a place) does not
 * mark: the codes of the places whose text is made (a callback's replacement: none), which
 * ``_Records._from_columns`` prepares (none where it stays empty).
 * place_codes(datas, idx, off, length, known=None) -> list[bytes] | None
 * The same of one triple. */

/* A set of bytes objects (borrowed: ``known``'s keys and the result lists' items), by
 * their bytes: open addressing, each slot the object and the bytes' hash (``code_hash``:
 * this set's own, not Python's). */
typedef struct {
    uint64_t h;  /* the hash; its top bit: the code is a key of ``known``, or in ``fresh`` */
    PyObject *o;
} CodeSlot;

typedef struct {
    CodeSlot *s;
    size_t mask, used;
} CodeSet;

/* The slot of the bytes ``p[:n]`` (hash ``h``): the one that holds them, or the empty slot
 * where they go. */
static CodeSlot *codeset_find(const CodeSet *t, const char *p, Py_ssize_t n, uint64_t h)
{
    for (size_t i = (size_t)h & t->mask;; i = (i + 1) & t->mask) {
        CodeSlot *s = &t->s[i];
        if (!s->o || ((s->h & ~CODE_LISTED) == h && PyBytes_GET_SIZE(s->o) == n &&
                      !memcmp(PyBytes_AS_STRING(s->o), p, (size_t)n)))
            return s;
    }
}

/* Room for ``more`` more (the table kept at most three quarters full, its first size made
 * for ``more``: a link's 20,000 codes in 32,768 slots, half a megabyte of fresh pages in the
 * forked writer): 0, or -1. */
static int codeset_room(CodeSet *t, size_t more)
{
    if (t->s && 4 * (t->used + more) <= 3 * (t->mask + 1))
        return 0;
    size_t size = t->s ? 2 * (t->mask + 1) : 1024;
    while (3 * size < 4 * (t->used + more))
        size *= 2;
    CodeSlot *old = t->s, *s = PyMem_Calloc(size, sizeof(CodeSlot));
    if (!s) {
        PyErr_NoMemory();
        return -1;
    }
    size_t old_size = old ? t->mask + 1 : 0;
    t->s = s;
    t->mask = size - 1;
    for (size_t i = 0; i < old_size; i++)
        if (old[i].o)
            *codeset_find(t, PyBytes_AS_STRING(old[i].o), PyBytes_GET_SIZE(old[i].o),
                          old[i].h & ~CODE_LISTED) = old[i];
    PyMem_Free(old);
    return 0;
}

/* The codes of one triple of columns (``places_codes``), equal ones one object through
 * ``set``: a new list; None (a new reference) where the Python reads them; NULL on an
 * error. */
static PyObject *column_codes(PyObject *datas, PyObject *cols, CodeSet *set,
                               const Compacts *known, PyObject *fresh)
{
    if (!PyTuple_Check(cols) || PyTuple_GET_SIZE(cols) < 3 || PyTuple_GET_SIZE(cols) > 4) {
        PyErr_SetString(PyExc_TypeError, "places_codes: a column is not (idx, off, length) "
                        "or (idx, off, length, unlisted)");
        return NULL;
    }
    /* idx, off, length, and unlisted where given: held in view[:held] */
    Py_buffer view[4];
    int held = 0, want = PyTuple_GET_SIZE(cols) == 4 && PyTuple_GET_ITEM(cols, 3) != Py_None
        ? 4 : 3;
    PyObject *out = NULL, *key = NULL;
    for (; held < want; held++)
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(cols, held), &view[held], PyBUF_SIMPLE) < 0)
            goto done;
    Py_buffer ib = view[0], ob = view[1], lb = view[2];
    const unsigned char *skip = want == 4 ? view[3].buf : NULL;
    Py_ssize_t n = ib.len / 8;
    if (ib.len % 8 || ob.len != ib.len || lb.len != ib.len || (skip && view[3].len != n))
        goto none;
    out = PyList_New(n);
    if (!out)
        goto done;
    const unsigned char *ip = ib.buf, *op = ob.buf, *lp = lb.buf;
    int64_t last = 0;
    PyObject *data = NULL;  /* (borrowed: the dict's) */
    for (Py_ssize_t k = 0; k < n; k++) {
        int64_t i;
        uint64_t o, len;
        memcpy(&i, ip + 8 * k, 8);
        memcpy(&o, op + 8 * k, 8);
        memcpy(&len, lp + 8 * k, 8);
        if (!data || i != last) {
            key = PyLong_FromLongLong((long long)i);
            if (!key)
                goto fail;
            data = PyDict_GetItemWithError(datas, key);
            Py_CLEAR(key);
            if (!data) {
                if (PyErr_Occurred())
                    goto fail;
                goto none;
            }
            if (!PyBytes_CheckExact(data))
                goto none;
            last = i;
        }
        uint64_t size = (uint64_t)PyBytes_GET_SIZE(data);
        uint64_t start = o < size ? o : size;
        uint64_t count = len < size - start ? len : size - start;
        const char *p = PyBytes_AS_STRING(data) + start;
        uint64_t h = code_hash(p, (size_t)count);
        if (codeset_room(set, 1) < 0)
            goto fail;
        CodeSlot *s = codeset_find(set, p, (Py_ssize_t)count, h);
        PyObject *code = s->o;
        if (code) {
            Py_INCREF(code);
        } else {
            if (!(code = PyBytes_FromStringAndSize(p, (Py_ssize_t)count)))
                goto fail;
            s->o = code;  /* (borrowed: the list holds it) */
            s->h = h;
            set->used++;
            const char *text;
            size_t text_n;
            if (compacts_find(known, p, (size_t)count, h, &text, &text_n))
                s->h |= CODE_LISTED;  /* (known: a compact table's) */
        }
        PyList_SET_ITEM(out, k, code);
        /* (a code made here, listed in fresh at its first place not marked unlisted) */
        if (!(s->h & CODE_LISTED) && !(skip && skip[k])) {
            s->h |= CODE_LISTED;
            if (fresh != Py_None && PyList_Append(fresh, code) < 0)
                goto fail;
        }
    }
    goto done;
fail:
    Py_CLEAR(out);
    goto done;
none:
    Py_CLEAR(out);
    out = Py_NewRef(Py_None);
done:
    while (held)
        PyBuffer_Release(&view[--held]);
    return out;
}

/* ``places_codes``' (``place_codes``' with ``one``: the first list alone) */
static PyObject *codes_of_columns(PyObject *datas, PyObject *columns, PyObject *known,
                                  PyObject *fresh, int one)
{
    PyObject *out = NULL, *seq = NULL;
    CodeSet set = {NULL, 0, 0};
    Compacts compact = {0, NULL, NULL};
    if (!PyDict_Check(datas)) {
        PyErr_SetString(PyExc_TypeError, "places_codes: datas is not a dict");
        return NULL;
    }
    if (known != Py_None) {
        if (!PyDict_Check(known)) {
            PyErr_SetString(PyExc_TypeError, "places_codes: known is not a dict");
            return NULL;
        }
        if (codeset_room(&set, (size_t)PyDict_GET_SIZE(known) + 1024) < 0 ||
            compacts_of(&compact, known) < 0)
            goto done;
        Py_ssize_t pos = 0;
        PyObject *k, *v;
        while (PyDict_Next(known, &pos, &k, &v)) {
            if (!PyBytes_CheckExact(k))
                continue;
            const char *p = PyBytes_AS_STRING(k);
            Py_ssize_t n = PyBytes_GET_SIZE(k);
            uint64_t h = code_hash(p, (size_t)n);
            if (codeset_room(&set, 1) < 0)
                goto done;
            CodeSlot *s = codeset_find(&set, p, n, h);
            if (!s->o) {
                s->o = k;
                s->h = h | CODE_LISTED;
                set.used++;
            }
        }
    }
    if (fresh != Py_None && !PyList_Check(fresh)) {
        PyErr_SetString(PyExc_TypeError, "places_codes: fresh is not a list");
        goto done;
    }
    if (!(seq = PySequence_Fast(columns, "places_codes: columns is not a sequence")))
        goto done;
    Py_ssize_t m = PySequence_Fast_GET_SIZE(seq);
    PyObject *lists = PyList_New(m);
    if (!lists)
        goto done;
    for (Py_ssize_t j = 0; j < m; j++) {
        PyObject *got = column_codes(datas, PySequence_Fast_GET_ITEM(seq, j), &set, &compact,
                                     fresh);
        if (!got || got == Py_None) {
            Py_DECREF(lists);
            out = got;
            goto done;
        }
        PyList_SET_ITEM(lists, j, got);
    }
    if (one) {
        out = Py_NewRef(PyList_GET_ITEM(lists, 0));
        Py_DECREF(lists);
    } else {
        out = lists;
    }
done:
    Py_XDECREF(seq);
    PyMem_Free(set.s);
    compacts_release(&compact);
    return out;
}

static PyObject *pl_places_codes(PyObject *self, PyObject *args)
{
    PyObject *datas, *columns, *known = Py_None, *fresh = Py_None;
    if (!PyArg_ParseTuple(args, "OO|OO", &datas, &columns, &known, &fresh))
        return NULL;
    return codes_of_columns(datas, columns, known, fresh, 0);
}

static PyObject *pl_place_codes(PyObject *self, PyObject *args)
{
    PyObject *datas, *idx, *off, *length, *known = Py_None;
    if (!PyArg_ParseTuple(args, "O!OOO|O", &PyDict_Type, &datas, &idx, &off, &length, &known))
        return NULL;
    PyObject *cols = PyTuple_Pack(3, idx, off, length);
    if (!cols)
        return NULL;
    PyObject *one = PyTuple_Pack(1, cols);
    Py_DECREF(cols);
    if (!one)
        return NULL;
    PyObject *got = codes_of_columns(datas, one, known, Py_None, 1);
    Py_DECREF(one);
    return got;
}

/* -- binding.digest_of_places' bytes ---------------------------------------------------
 * places_blob(site_addrs, orig_lens, site_bytes, alt_addrs, alt_lens, alt_bytes,
 *             callback=None) -> bytes | None
 * ``b"".join`` of each entry's ``pack("<QH", site_addr, orig_len)``, site bytes,
 * ``pack("<QH", alt_addr, alt_len)`` and replacement bytes, as ``digest_of_places`` hashes
 * them; where ``callback`` (a list of bools) is given, a callback's entry (True) has 0xffff
 * for its length and no bytes. Each column a list or tuple of the entries' length; the
 * addresses and lengths may also be arrays of 64-bit integers (numpy's int64 or uint64: a
 * table's columns, ``manifest._Records.table_json``'s). None where a value is not what
 * ``pack`` takes (an exact int, 64-bit or 16-bit unsigned) or
 * bytes (the Python then packs, or fails as it does). */
/* ``put_le`` of a value read from a buffer (``is_signed``: of signed items): 1; 0 not a value
 * ``pack`` takes (below 0, or over 0xffff for 2 bytes); -1 an error. */
HOT int put_le_value(Buf *b, uint64_t x, int is_signed, int size)
{
    if ((is_signed && (int64_t)x < 0) || (size == 2 && x > 0xFFFF))
        return 0;
    if (buf_room(b, size) < 0)
        return -1;
    unsigned char *q = (unsigned char *)b->p + b->n;
    b->n += size;
    q[0] = (unsigned char)x;
    q[1] = (unsigned char)(x >> 8);
    if (size == 2)
        return 1;
    q[2] = (unsigned char)(x >> 16);
    q[3] = (unsigned char)(x >> 24);
    q[4] = (unsigned char)(x >> 32);
    q[5] = (unsigned char)(x >> 40);
    q[6] = (unsigned char)(x >> 48);
    q[7] = (unsigned char)(x >> 56);
    return 1;
}

HOT int put_le(Buf *b, PyObject *v, int size)
{
    if (!PyLong_CheckExact(v))
        return 0;
    unsigned long long x = PyLong_AsUnsignedLongLong(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return put_le_value(b, x, 0, size);
}

static int put_raw(Buf *b, PyObject *v)
{
    if (!PyBytes_CheckExact(v))
        return 0;
    return buf_put(b, PyBytes_AS_STRING(v), PyBytes_GET_SIZE(v)) < 0 ? -1 : 1;
}

/* A column of integers given as a buffer of 64-bit integers (numpy's int64 or uint64, as a
 * table's columns are), not a list or tuple: held in ``view`` (``*u`` its bytes, its items'
 * length ``*n``, ``*is_signed``): 1; 0 not such a buffer (no error set); -1 an error. */
static int int64_column(PyObject *o, Py_buffer *view, const unsigned char **u, Py_ssize_t *n,
                        int *is_signed)
{
    if (PyList_Check(o) || PyTuple_Check(o) || !PyObject_CheckBuffer(o))
        return 0;
    if (PyObject_GetBuffer(o, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0)
        return -1;
    const char *f = view->format ? view->format : "B";
    if (*f == '<' || *f == '=' || *f == '@')
        f++;
    if (view->itemsize != 8 || strlen(f) != 1 || !strchr("qQlL", *f)) {
        PyBuffer_Release(view);
        return 0;
    }
    *u = view->buf;
    *n = view->len / 8;
    *is_signed = *f == 'q' || *f == 'l';
    return 1;
}

static PyObject *pl_places_blob(PyObject *self, PyObject *args)
{
    PyObject *in[7] = {NULL}, *col[7] = {NULL}, *out = NULL;
    Py_buffer view[7];
    const unsigned char *u[7] = {NULL};
    int is_signed[7] = {0};
    Py_ssize_t len[7];
    Buf b = {NULL, 0, 0, NULL};
    if (!PyArg_ParseTuple(args, "OOOOOO|O", &in[0], &in[1], &in[2], &in[3], &in[4], &in[5],
                          &in[6]))
        return NULL;
    int ncol = in[6] && in[6] != Py_None ? 7 : 6;
    for (int j = 0; j < ncol; j++) {
        int r = 0;
        /* (the addresses and lengths may be arrays of 64-bit integers) */
        if ((j == 0 || j == 1 || j == 3 || j == 4) &&
            (r = int64_column(in[j], &view[j], &u[j], &len[j], &is_signed[j])) < 0)
            goto done;
        if (r)
            continue;
        if (!(col[j] = PySequence_Fast(in[j], "places_blob: a column is not a sequence")))
            goto done;
        len[j] = PySequence_Fast_GET_SIZE(col[j]);
    }
    Py_ssize_t n = len[0];
    for (int j = 1; j < ncol; j++)
        if (len[j] != n)
            goto none;
    if (buf_new_bytes(&b, n * 64 + 64) < 0)
        goto done;
    PyObject **items[7] = {NULL};
    for (int j = 0; j < ncol; j++)
        if (col[j])
            items[j] = PySequence_Fast_ITEMS(col[j]);
    static const unsigned char ffff[2] = {0xFF, 0xFF};
    static const int sizes[5] = {8, 2, 0, 8, 2};
    for (Py_ssize_t k = 0; k < n; k++) {
        int r, is_cb = 0;
        if (ncol == 7) {
            PyObject *cb = items[6][k];
            if (cb != Py_True && cb != Py_False)
                goto none;
            is_cb = cb == Py_True;
        }
        for (int j = 0; j < 6; j++) {
            if (is_cb && j == 4) {  /* a callback: 0xffff, no bytes */
                if (buf_put(&b, (const char *)ffff, 2) < 0)
                    goto done;
                break;
            }
            if (j == 2 || j == 5) {
                r = put_raw(&b, items[j][k]);
            } else if (u[j]) {
                uint64_t x;
                memcpy(&x, u[j] + 8 * k, 8);
                r = put_le_value(&b, x, is_signed[j], sizes[j]);
            } else {
                r = put_le(&b, items[j][k], sizes[j]);
            }
            if (r < 0)
                goto done;
            if (r == 0)
                goto none;
        }
    }
    out = buf_bytes(&b);
    goto done;
none:
    out = Py_NewRef(Py_None);
done:
    Py_XDECREF(b.bytes);
    for (int j = 0; j < 7; j++) {
        Py_XDECREF(col[j]);
        if (u[j])
            PyBuffer_Release(&view[j]);
    }
    return out;
}

static PyMethodDef methods[] = {
    {"entry_texts", pl_entry_texts, METH_VARARGS,
     "manifest._Records._from_columns' entries' texts (None where the Python writes one)"},
    {"place_codes", pl_place_codes, METH_VARARGS,
     "manifest._Records._places_np's codes, or None"},
    {"places_codes", pl_places_codes, METH_VARARGS,
     "manifest._Records._places_np's codes of several columns, equal ones one object, or "
     "None"},
    {"places_blob", pl_places_blob, METH_VARARGS,
     "binding.digest_of_places' bytes of every entry's places, or None"},
    {"compact_table", pl_compact_table, METH_O,
     "the compact table of (code, text) pairs (textcache._compact_table)"},
    {"compact_get", pl_compact_get, METH_VARARGS,
     "a code's text in a compact table, or None (textcache._compact_get)"},
    {"compact_items", pl_compact_items, METH_O,
     "a compact table's (code, text) pairs (textcache._compact_items)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "altlink._postlink",
    "A compiled fast path for a link's work after its linker (optional; see "
    "altlink/speedups.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__postlink(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "SOURCE_SHA256", ALTLINK_SOURCE_SHA256) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
