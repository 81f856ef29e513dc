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
} Buf;

static int buf_room(Buf *b, Py_ssize_t more)
{
    if (b->n + more <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap ? b->cap : 1024;
    while (cap < b->n + more)
        cap *= 2;
    char *p = PyMem_Realloc(b->p, (size_t)cap);
    if (!p) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static int buf_put(Buf *b, const char *s, Py_ssize_t n)
{
    if (buf_room(b, n) < 0)
        return -1;
    memcpy(b->p + b->n, s, (size_t)n);
    b->n += n;
    return 0;
}

#define PUT_LIT(b, s) buf_put((b), (s), (Py_ssize_t)(sizeof(s) - 1))

/* 1: put; 0: not an ASCII str (the entry is the Python's); -1: an error */
static int put_ascii(Buf *b, PyObject *s)
{
    if (!PyUnicode_CheckExact(s) || !PyUnicode_IS_ASCII(s))
        return 0;
    return buf_put(b, (const char *)PyUnicode_DATA(s), PyUnicode_GET_LENGTH(s)) < 0 ? -1 : 1;
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
    char tmp[24], *e = tmp + sizeof tmp, *q = e;
    unsigned long long u = x < 0 ? 0ULL - (unsigned long long)x : (unsigned long long)x;
    do {
        *--q = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (x < 0)
        *--q = '-';
    return buf_put(b, q, e - q) < 0 ? -1 : 1;
}

/* ``f"{v:#x}"`` of an exact int in [0, 2**64): 1 put; 0 not such an int. */
static int put_hex(Buf *b, PyObject *v)
{
    if (!PyLong_CheckExact(v))
        return 0;
    unsigned long long x = PyLong_AsUnsignedLongLong(v);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    char tmp[24], *e = tmp + sizeof tmp, *q = e;
    do {
        *--q = "0123456789abcdef"[x & 15];
        x >>= 4;
    } while (x);
    *--q = 'x';
    *--q = '0';
    return buf_put(b, q, e - q) < 0 ? -1 : 1;
}

/* an exact str (ASCII) or an int: as the f-string writes either; 1, 0 or -1 as above */
static int put_str_or_dec(Buf *b, PyObject *v)
{
    if (PyUnicode_CheckExact(v))
        return put_ascii(b, v);
    return put_dec(b, v);
}

/* ``f"{v:#x}"`` of a 64-bit unsigned value */
static int put_hex64(Buf *b, uint64_t x)
{
    char tmp[24], *e = tmp + sizeof tmp, *q = e;
    do {
        *--q = "0123456789abcdef"[x & 15];
        x >>= 4;
    } while (x);
    *--q = 'x';
    *--q = '0';
    return buf_put(b, q, e - q) < 0 ? -1 : 1;
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

/* ``repl_text``'s text (a static replacement's fields after its address) into ``t`` (emptied
 * first): its bytes and lines (``codes``' text, else from its plan at ``aa``) and its fix-ups
 * (``put_fixups``): 1 made; 0 not (the Python's); -1 an error. */
static int repl_fields(Buf *t, PyObject *codes, PyObject *plans, PyObject *code, PyObject *aa,
                       PyObject *alt_len)
{
    int r;
    long long len;
    if (!PyLong_CheckExact(aa) || !as_i64(alt_len, &len) || len < 0)
        return 0;
    unsigned long long addr = PyLong_AsUnsignedLongLong(aa);
    if (addr == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    PyObject *got = PyDict_GetItemWithError(codes, code);
    if (!got)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_CheckExact(got) || PyTuple_GET_SIZE(got) != 2)
        return 0;
    PyObject *text = PyTuple_GET_ITEM(got, 0), *branches = PyTuple_GET_ITEM(got, 1);
    t->n = 0;
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

/* -- manifest._Records._from_columns' entries --------------------------------------------
 * entry_texts(heads, cbs, codes, simple, plans, site_text, repl_text, callback,
 *             cap_raws, index, a_addr, a_code, alt_lens, s_addr, s_code, s_bin, s_file,
 *             orig_lens, src, names) -> list[str | None]
 * Each entry's text as ``_entry_texts`` writes it from its columns: a site's code text
 * ``codes[s_code[k]][0]``, else its bytes and its lines from their plan at the site
 * (``plans``: ``_disasm``'s), else ``site_text(k)``; a static replacement's fields after its
 * address ``simple[a_code[k]]``, else its text (``codes``' or made from its plan) and its
 * fix-ups (``put_fixups``), else ``repl_text(k)``; ``heads[cap_raws[k]]``,
 * ``cbs[a_addr[k]]`` for a callback; ``names[k]`` as ``_name_json`` writes it. ``src``: the
 * sites' "source" fields, or None for none.
 * Every column a list of the entries' length. None in the result where a field is not
 * ASCII text or an int the f-string would write so (a name outside ASCII, say): the Python
 * writes that entry. */
static PyObject *pl_entry_texts(PyObject *self, PyObject *args)
{
    PyObject *heads, *cbs, *codes, *simple, *plans, *site_text, *repl_text,
        *callback, *cap_raws, *index, *a_addr, *a_code, *alt_lens, *s_addr, *s_code, *s_bin,
        *s_file, *orig_lens, *src, *names;
    if (!PyArg_ParseTuple(args, "O!O!O!O!O!OOOOOOOOOOOOOOO", &PyDict_Type, &heads,
                          &PyDict_Type, &cbs, &PyDict_Type, &codes, &PyDict_Type, &simple,
                          &PyDict_Type, &plans, &site_text,
                          &repl_text, &callback, &cap_raws, &index, &a_addr, &a_code,
                          &alt_lens, &s_addr, &s_code, &s_bin, &s_file, &orig_lens, &src,
                          &names))
        return NULL;
    if (!PyList_CheckExact(callback)) {
        PyErr_SetString(PyExc_ValueError, "entry_texts: callback is not a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(callback);
    if (!as_list(cap_raws, n, "cap_raws") || !as_list(index, n, "index") ||
        !as_list(a_addr, n, "a_addr") || !as_list(a_code, n, "a_code") ||
        !as_list(alt_lens, n, "alt_lens") ||
        !as_list(s_addr, n, "s_addr") || !as_list(s_code, n, "s_code") ||
        !as_list(s_bin, n, "s_bin") || !as_list(s_file, n, "s_file") ||
        !as_list(orig_lens, n, "orig_lens") || !as_list(names, n, "names") ||
        (src != Py_None && !as_list(src, n, "src")))
        return NULL;
    PyObject *out = PyList_New(n);
    if (!out)
        return NULL;
    Buf b = {NULL, 0, 0}, t = {NULL, 0, 0};  /* (t: a site's or replacement's text) */
    PyObject *st = NULL, *rc = NULL;  /* (new references: made by a Python callable) */
    int r;
    for (Py_ssize_t k = 0; k < n; k++) {
        b.n = 0;
        PyObject *cb = PyList_GET_ITEM(callback, k);
        int is_cb = cb == Py_True ? 1 : cb == Py_False ? 0 : -1;
        if (is_cb < 0)
            goto hole;
        PyObject *head = PyDict_GetItemWithError(heads, PyList_GET_ITEM(cap_raws, k));
        if (!head) {
            if (PyErr_Occurred())
                goto error;
            goto hole;
        }
        PyObject *aa = PyList_GET_ITEM(a_addr, k);
        /* the site's code text */
        PyObject *got = PyDict_GetItemWithError(codes, PyList_GET_ITEM(s_code, k));
        if (!got) {
            if (PyErr_Occurred())
                goto error;
            goto hole;
        }
        if (!PyTuple_Check(got) || PyTuple_GET_SIZE(got) < 1)
            goto hole;
        st = PyTuple_GET_ITEM(got, 0);
        if (st == Py_None) {  /* its bytes and its lines' plan at the site, else the Python's */
            PyObject *sa = PyList_GET_ITEM(s_addr, k), *code = PyList_GET_ITEM(s_code, k);
            unsigned long long addr = PyLong_CheckExact(sa) ? PyLong_AsUnsignedLongLong(sa) : 0;
            st = NULL;
            if (PyLong_CheckExact(sa) && !(addr == (unsigned long long)-1 && PyErr_Occurred())) {
                t.n = 0;
                if (PUT_LIT(&t, "\"bytes\": \"") < 0 || (r = put_bytes_hex(&t, code)) < 0)
                    goto error;
                if (r > 0 && (PUT_LIT(&t, "\", \"disasm\": ") < 0 ||
                              (r = put_plan(&t, plans, code, addr)) < 0))
                    goto error;
                if (r > 0) {
                    st = PyUnicode_New(t.n, 127);
                    if (!st)
                        goto error;
                    memcpy(PyUnicode_DATA(st), t.p, (size_t)t.n);
                }
            } else {
                PyErr_Clear();
            }
            if (!st && !(st = call_k(site_text, k)))
                goto error;
        } else {
            Py_INCREF(st);
        }
        if (is_cb) {
            PyObject *cbt = PyDict_GetItemWithError(cbs, aa);
            if (!cbt) {
                if (PyErr_Occurred())
                    goto error;
                goto hole;
            }
            TRY(PUT_LIT(&b, "{\"callback\": ") == 0 ? 1 : -1);
            TRY(put_ascii(&b, cbt));
            TRY(PUT_LIT(&b, ", ") == 0 ? 1 : -1);
            TRY(put_ascii(&b, head));
            TRY(PUT_LIT(&b, "\"index\": ") == 0 ? 1 : -1);
            TRY(put_dec(&b, PyList_GET_ITEM(index, k)));
            TRY(PUT_LIT(&b, ", \"kind\": \"callback\", \"replacement\": null, ") == 0 ? 1 : -1);
        } else {
            rc = PyDict_GetItemWithError(simple, PyList_GET_ITEM(a_code, k));
            if (!rc) {
                if (PyErr_Occurred())
                    goto error;
                goto hole;
            }
            if (rc == Py_None) {  /* its text and fix-ups at its address, else the Python's */
                rc = NULL;
                if ((r = repl_fields(&t, codes, plans, PyList_GET_ITEM(a_code, k), aa,
                                     PyList_GET_ITEM(alt_lens, k))) < 0)
                    goto error;
                if (r > 0) {
                    rc = PyUnicode_New(t.n, 127);
                    if (!rc)
                        goto error;
                    memcpy(PyUnicode_DATA(rc), t.p, (size_t)t.n);
                }
                if (!rc && !(rc = call_k(repl_text, k)))
                    goto error;
            } else {
                Py_INCREF(rc);
            }
            TRY(PUT_LIT(&b, "{\"callback\": null, ") == 0 ? 1 : -1);
            TRY(put_ascii(&b, head));
            TRY(PUT_LIT(&b, "\"index\": ") == 0 ? 1 : -1);
            TRY(put_dec(&b, PyList_GET_ITEM(index, k)));
            TRY(PUT_LIT(&b, ", \"kind\": \"static\", \"replacement\": {\"address\": \"") == 0
                ? 1 : -1);
            TRY(put_hex(&b, aa));
            TRY(PUT_LIT(&b, "\", ") == 0 ? 1 : -1);
            TRY(put_ascii(&b, rc));
            TRY(PUT_LIT(&b, "}, ") == 0 ? 1 : -1);
            Py_CLEAR(rc);
        }
        TRY(PUT_LIT(&b, "\"site\": {\"address\": \"") == 0 ? 1 : -1);
        TRY(put_hex(&b, PyList_GET_ITEM(s_addr, k)));
        TRY(PUT_LIT(&b, "\", \"bin_offset\": ") == 0 ? 1 : -1);
        TRY(put_str_or_dec(&b, PyList_GET_ITEM(s_bin, k)));
        TRY(PUT_LIT(&b, ", ") == 0 ? 1 : -1);
        TRY(put_ascii(&b, st));
        Py_CLEAR(st);
        TRY(PUT_LIT(&b, ", \"file_offset\": ") == 0 ? 1 : -1);
        TRY(put_dec(&b, PyList_GET_ITEM(s_file, k)));
        TRY(PUT_LIT(&b, ", \"length\": ") == 0 ? 1 : -1);
        TRY(put_dec(&b, PyList_GET_ITEM(orig_lens, k)));
        TRY(PUT_LIT(&b, ", ") == 0 ? 1 : -1);
        if (src != Py_None)
            TRY(put_ascii(&b, PyList_GET_ITEM(src, k)));
        TRY(PUT_LIT(&b, "\"symbol\": ") == 0 ? 1 : -1);
        TRY(put_name(&b, PyList_GET_ITEM(names, k)));
        TRY(PUT_LIT(&b, "}}") == 0 ? 1 : -1);
        PyObject *s = PyUnicode_New(b.n, 127);
        if (!s)
            goto error;
        memcpy(PyUnicode_DATA(s), b.p, (size_t)b.n);
        PyList_SET_ITEM(out, k, s);
        continue;
    hole:
        Py_CLEAR(st);
        Py_CLEAR(rc);
        PyList_SET_ITEM(out, k, Py_NewRef(Py_None));
    }
    PyMem_Free(b.p);
    PyMem_Free(t.p);
    return out;
error:
    Py_XDECREF(st);
    Py_XDECREF(rc);
    PyMem_Free(b.p);
    PyMem_Free(t.p);
    Py_DECREF(out);  /* (its items not yet set are NULL: list_dealloc passes them) */
    return NULL;
}

/* -- manifest._Records._places_np's codes ------------------------------------------------
 * place_codes(datas, idx, off, length) -> list[bytes] | None
 * ``[datas[i][o:o + k] for i, o, k in zip(idx, off, length)]``, of the columns' buffers (each
 * of 64-bit items: ``idx`` signed, ``off`` and ``length`` unsigned, of one length); ``datas``
 * a dict of bytes by section index. None where an index is not in ``datas`` or its bytes are
 * not bytes (the Python then says so, or reads them). */
static PyObject *pl_place_codes(PyObject *self, PyObject *args)
{
    PyObject *datas;
    Py_buffer ib, ob, lb;
    if (!PyArg_ParseTuple(args, "O!y*y*y*", &PyDict_Type, &datas, &ib, &ob, &lb))
        return NULL;
    PyObject *out = NULL, *key = NULL;
    Py_ssize_t n = ib.len / 8;
    if (ib.len % 8 || ob.len != ib.len || lb.len != ib.len)
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
        PyObject *code = PyBytes_FromStringAndSize(PyBytes_AS_STRING(data) + start,
                                                   (Py_ssize_t)count);
        if (!code)
            goto fail;
        PyList_SET_ITEM(out, k, code);
    }
    goto done;
fail:
    Py_CLEAR(out);
    goto done;
none:
    Py_CLEAR(out);
    out = Py_NewRef(Py_None);
done:
    PyBuffer_Release(&ib);
    PyBuffer_Release(&ob);
    PyBuffer_Release(&lb);
    return out;
}

static PyMethodDef methods[] = {
    {"entry_texts", pl_entry_texts, METH_VARARGS,
     "manifest._Records._from_columns' entries' texts (None where the Python writes one)"},
    {"place_codes", pl_place_codes, METH_VARARGS,
     "manifest._Records._places_np's codes, or None"},
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
