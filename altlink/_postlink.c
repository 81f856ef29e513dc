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

/* -- manifest._Records._from_columns' entries --------------------------------------------
 * entry_texts(heads, cbs, codes, simple, site_text, repl_text, callback, cap_raws, index,
 *             a_addr, a_code, s_addr, s_code, s_bin, s_file, orig_lens, src, names)
 *   -> list[str | None]
 * Each entry's text as ``_format_entries`` writes it from its columns: a site's code text
 * ``codes[s_code[k]][0]``, else ``site_text(k)``; a static replacement's fields after its
 * address ``simple[a_code[k]]``, else ``repl_text(k)``; ``heads[cap_raws[k]]``,
 * ``cbs[a_addr[k]]`` for a callback. ``src``: the sites' "source" fields, or None for none.
 * Every column a list of the entries' length. None in the result where a field is not
 * ASCII text or an int the f-string would write so (a name outside ASCII, say): the Python
 * writes that entry. */
static PyObject *pl_entry_texts(PyObject *self, PyObject *args)
{
    PyObject *heads, *cbs, *codes, *simple, *site_text, *repl_text, *callback, *cap_raws,
        *index, *a_addr, *a_code, *s_addr, *s_code, *s_bin, *s_file, *orig_lens, *src, *names;
    if (!PyArg_ParseTuple(args, "O!O!O!O!OOOOOOOOOOOOOO", &PyDict_Type, &heads, &PyDict_Type,
                          &cbs, &PyDict_Type, &codes, &PyDict_Type, &simple, &site_text,
                          &repl_text, &callback, &cap_raws, &index, &a_addr, &a_code, &s_addr,
                          &s_code, &s_bin, &s_file, &orig_lens, &src, &names))
        return NULL;
    if (!PyList_CheckExact(callback)) {
        PyErr_SetString(PyExc_ValueError, "entry_texts: callback is not a list");
        return NULL;
    }
    Py_ssize_t n = PyList_GET_SIZE(callback);
    if (!as_list(cap_raws, n, "cap_raws") || !as_list(index, n, "index") ||
        !as_list(a_addr, n, "a_addr") || !as_list(a_code, n, "a_code") ||
        !as_list(s_addr, n, "s_addr") || !as_list(s_code, n, "s_code") ||
        !as_list(s_bin, n, "s_bin") || !as_list(s_file, n, "s_file") ||
        !as_list(orig_lens, n, "orig_lens") || !as_list(names, n, "names") ||
        (src != Py_None && !as_list(src, n, "src")))
        return NULL;
    PyObject *out = PyList_New(n);
    if (!out)
        return NULL;
    Buf b = {NULL, 0, 0};
    PyObject *st = NULL, *rc = NULL;  /* (new references: made by a Python callable) */
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
        if (st == Py_None) {
            PyObject *kk = PyLong_FromSsize_t(k);
            if (!kk)
                goto error;
            st = PyObject_CallOneArg(site_text, kk);
            Py_DECREF(kk);
            if (!st)
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
            if (rc == Py_None) {
                PyObject *kk = PyLong_FromSsize_t(k);
                if (!kk)
                    goto error;
                rc = PyObject_CallOneArg(repl_text, kk);
                Py_DECREF(kk);
                if (!rc)
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
        TRY(put_ascii(&b, PyList_GET_ITEM(names, k)));
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
    return out;
error:
    Py_XDECREF(st);
    Py_XDECREF(rc);
    PyMem_Free(b.p);
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
