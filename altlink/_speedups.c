/* altlink._speedups: a compiled fast path for the regular, hot part of making an object's
 * record (docs/dependencies.md). Optional: altlink/speedups.py loads it only where it was
 * built from this very file (the sha256 of the source, given at build time by setup.py, is
 * compared with the file shipped in the package), and ALTLINK_NO_SPEEDUPS=1 turns it off.
 *
 * Each function does exactly what the Python function it names does, for the inputs it
 * knows, and returns None for anything else (a damaged or unusual file): the Python then
 * does the work and says what is wrong. No function here makes a finding or an error
 * message. Every read is checked against the buffer it reads. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if PY_VERSION_HEX < 0x030A0000
static inline PyObject *Py_NewRef(PyObject *o) { Py_INCREF(o); return o; }
#endif

#ifndef ALTLINK_SPEEDUPS_SHA256
#define ALTLINK_SPEEDUPS_SHA256 ""
#endif

#define SHDR_SIZE 64
#define SYM_SIZE 24
#define RELA_SIZE 24
#define ENTRY_SIZE 12
#define SHT_NULL 0
#define SHT_NOBITS 8
#define SHN_UNDEF 0
#define SHN_LORESERVE 0xff00
#define SHN_XINDEX 0xffff
#define STT_SECTION 3
#define STB_LOCAL 0
#define SHF_EXECINSTR 0x4
#define R_AARCH64_PREL32 261

static inline uint16_t rd16(const unsigned char *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t rd32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t rd64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* elf._cstr: the string at ``off`` of a string table, to its NUL or the table's end, decoded
 * as UTF-8 with replacement; "" past the end. */
static PyObject *cstr(const unsigned char *tab, Py_ssize_t len, uint64_t off)
{
    if (off >= (uint64_t)len)
        return PyUnicode_FromStringAndSize("", 0);
    const unsigned char *s = tab + off;
    const unsigned char *e = memchr(s, 0, (size_t)(len - (Py_ssize_t)off));
    Py_ssize_t n = e ? (Py_ssize_t)(e - s) : len - (Py_ssize_t)off;
    return PyUnicode_DecodeUTF8((const char *)s, n, "replace");
}

static PyObject *new_tuple_of(PyObject *type, Py_ssize_t n)
{
    /* A named tuple of ``type`` (tuple.__new__(type, fields)): the caller fills it. */
    PyTypeObject *t = (PyTypeObject *)type;
    PyObject *o = t->tp_alloc(t, n);
    return o;
}

/* -- ElfFile.sections ----------------------------------------------------------------------
 * sections(data, shoff, shnum, names, strings, Section) -> list[Section] | None
 * ``shnum`` as ``_header_table`` gives it (checked: the table is in the file); ``names``:
 * the section name table's bytes, ``strings`` its strings by offset (``_section_names``: a
 * name is that dict's string where it has one, the same object, else read as ``_cstr``).
 * None where a section runs past the end of the file (the Python says so). */
static PyObject *sp_sections(PyObject *self, PyObject *args)
{
    Py_buffer buf, nb;
    unsigned long long shoff, shnum;
    PyObject *strings, *Section;
    if (!PyArg_ParseTuple(args, "y*KKy*O!O", &buf, &shoff, &shnum, &nb, &PyDict_Type,
                          &strings, &Section))
        return NULL;
    PyObject *out = NULL;
    const unsigned char *d = buf.buf;
    uint64_t size = (uint64_t)buf.len;
    if (!PyType_Check(Section) || shoff > size || shnum > (size - shoff) / SHDR_SIZE)
        goto none;
    out = PyList_New((Py_ssize_t)shnum);
    if (!out)
        goto fail;
    for (uint64_t i = 0; i < shnum; i++) {
        const unsigned char *h = d + shoff + i * SHDR_SIZE;
        uint32_t name = rd32(h), typ = rd32(h + 4), link = rd32(h + 40), info = rd32(h + 44);
        uint64_t flags = rd64(h + 8), addr = rd64(h + 16), off = rd64(h + 24);
        uint64_t sz = rd64(h + 32), align = rd64(h + 48), entsize = rd64(h + 56);
        if (typ != SHT_NOBITS && typ != SHT_NULL && (off > size || sz > size - off))
            goto none;
        PyObject *t = new_tuple_of(Section, 11);
        if (!t)
            goto fail;
        PyList_SET_ITEM(out, (Py_ssize_t)i, t);
        PyObject *f[11];
        f[0] = PyLong_FromUnsignedLongLong(i);
        f[1] = NULL;
        PyObject *key = PyLong_FromUnsignedLong(name);
        if (key) {
            f[1] = PyDict_GetItemWithError(strings, key);
            Py_DECREF(key);
            if (f[1])
                Py_INCREF(f[1]);
            else if (!PyErr_Occurred())
                f[1] = cstr(nb.buf, nb.len, name);
        }
        f[2] = PyLong_FromUnsignedLong(typ);
        f[3] = PyLong_FromUnsignedLongLong(flags);
        f[4] = PyLong_FromUnsignedLongLong(addr);
        f[5] = PyLong_FromUnsignedLongLong(off);
        f[6] = PyLong_FromUnsignedLongLong(sz);
        f[7] = PyLong_FromUnsignedLong(link);
        f[8] = PyLong_FromUnsignedLong(info);
        f[9] = PyLong_FromUnsignedLongLong(align);
        f[10] = PyLong_FromUnsignedLongLong(entsize);
        int bad = 0;
        for (int k = 0; k < 11; k++) {
            if (!f[k])
                bad = 1;
            PyTuple_SET_ITEM(t, k, f[k] ? f[k] : Py_NewRef(Py_None));
        }
        if (bad)
            goto fail;
    }
    PyBuffer_Release(&buf);
    PyBuffer_Release(&nb);
    return out;
none:
    Py_XDECREF(out);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&nb);
    Py_RETURN_NONE;
fail:
    Py_XDECREF(out);
    PyBuffer_Release(&buf);
    PyBuffer_Release(&nb);
    return NULL;
}

/* -- table._entries_in_order and _targets ---------------------------------------------------
 * object_entries(table, rela, symtab, strtab, sections, path, name, base, n, Entry, Place)
 *   -> list[Entry] | None
 * ``table``: the table section's bytes (at least n entries); ``rela``: its one RELA
 * section's bytes (48 * n); ``symtab``/``strtab``: the symbol table's and its string
 * table's bytes. None where the relocations are not two PREL32 ones an entry at its two
 * offsets in order, or a symbol is not one ``_targets`` reads from its bytes as a place. */
struct target {
    PyObject *secname;  /* borrowed */
    uint64_t shndx;
    uint64_t value;
    PyObject *named;  /* owned: a str or None */
    int made;
};

static PyObject *place(PyObject *Place, struct target *t, int64_t addend)
{
    PyObject *off;
    int64_t sum;
    if (t->value <= (uint64_t)INT64_MAX && !__builtin_add_overflow((int64_t)t->value, addend, &sum))
        off = PyLong_FromLongLong(sum);
    else {
        PyObject *v = PyLong_FromUnsignedLongLong(t->value), *a = PyLong_FromLongLong(addend);
        off = v && a ? PyNumber_Add(v, a) : NULL;
        Py_XDECREF(v);
        Py_XDECREF(a);
    }
    if (!off)
        return NULL;
    PyObject *p = new_tuple_of(Place, 6);
    if (!p) {
        Py_DECREF(off);
        return NULL;
    }
    PyObject *sh = PyLong_FromUnsignedLongLong(t->shndx), *ad = PyLong_FromLongLong(addend);
    PyTuple_SET_ITEM(p, 0, Py_NewRef(t->secname));
    PyTuple_SET_ITEM(p, 1, sh ? sh : Py_NewRef(Py_None));
    PyTuple_SET_ITEM(p, 2, off);
    PyTuple_SET_ITEM(p, 3, Py_NewRef(Py_None));
    PyTuple_SET_ITEM(p, 4, Py_NewRef(t->named));
    PyTuple_SET_ITEM(p, 5, ad ? ad : Py_NewRef(Py_None));
    if (!sh || !ad) {
        Py_DECREF(p);
        return NULL;
    }
    return p;
}

static PyObject *sp_object_entries(PyObject *self, PyObject *args)
{
    Py_buffer tb, rb, sb, stb;
    PyObject *secs, *path, *name, *Entry, *Place;
    unsigned long long base, n;
    if (!PyArg_ParseTuple(args, "y*y*y*y*O!OOKKOO", &tb, &rb, &sb, &stb, &PyList_Type, &secs,
                          &path, &name, &base, &n, &Entry, &Place))
        return NULL;
    PyObject *out = NULL, *empty = NULL;
    struct target *targets = NULL;
    uint64_t nsyms = (uint64_t)sb.len / SYM_SIZE;
    Py_ssize_t nsecs = PyList_GET_SIZE(secs);
    const unsigned char *rel = rb.buf, *tab = tb.buf, *sym = sb.buf, *str = stb.buf;
    if (!PyType_Check(Entry) || !PyType_Check(Place) || n == 0 || n > (uint64_t)tb.len / ENTRY_SIZE
        || (uint64_t)rb.len != 48 * n || nsyms > (uint64_t)1 << 40 || nsecs >= SHN_LORESERVE)
        goto none;
    /* The relocations: offsets 0, 4, 12, 16, ... in order, all PREL32, symbols in range. */
    for (uint64_t k = 0; k < 2 * n; k++) {
        const unsigned char *r = rel + k * RELA_SIZE;
        uint64_t want = (k / 2) * ENTRY_SIZE + (k % 2) * 4;
        uint64_t info = rd64(r + 8);
        if (rd64(r) != want || (uint32_t)info != R_AARCH64_PREL32 || (info >> 32) >= nsyms)
            goto none;
    }
    targets = PyMem_Calloc(nsyms ? nsyms : 1, sizeof(struct target));
    if (!targets) {
        PyErr_NoMemory();
        goto fail;
    }
    empty = PyUnicode_FromStringAndSize("", 0);
    if (!empty)
        goto fail;
    /* Each symbol's target, as ``_targets`` reads it: a place, or None (the Python). */
    for (uint64_t k = 0; k < 2 * n; k++) {
        uint64_t i = rd64(rel + k * RELA_SIZE + 8) >> 32;
        struct target *t = &targets[i];
        if (t->made)
            continue;
        const unsigned char *s = sym + i * SYM_SIZE;
        uint32_t nm = rd32(s);
        unsigned char info = s[4];
        uint16_t shndx = rd16(s + 6);
        if (shndx >= nsecs)
            goto none;
        if (shndx == SHN_UNDEF) {
            t->secname = empty;
            t->value = 0;
        } else {
            PyObject *sec = PyList_GET_ITEM(secs, shndx);
            if (!PyTuple_Check(sec) || PyTuple_GET_SIZE(sec) < 2)
                goto none;
            t->secname = PyTuple_GET_ITEM(sec, 1);
            t->value = rd64(s + 8);
        }
        t->shndx = shndx;
        if (shndx != SHN_UNDEF && (info & 0xf) == STT_SECTION)
            t->named = Py_NewRef(Py_None);
        else {
            PyObject *got = cstr(str, stb.len, nm);
            if (!got)
                goto fail;
            if (PyUnicode_GET_LENGTH(got) == 0) {
                Py_DECREF(got);
                got = Py_NewRef(Py_None);
            }
            t->named = got;
        }
        t->made = 1;
    }
    out = PyList_New((Py_ssize_t)n);
    if (!out)
        goto fail;
    for (uint64_t i = 0; i < n; i++) {
        const unsigned char *rs = rel + 2 * i * RELA_SIZE, *ra = rs + RELA_SIZE;
        const unsigned char *e = tab + i * ENTRY_SIZE;
        PyObject *site = place(Place, &targets[rd64(rs + 8) >> 32], (int64_t)rd64(rs + 16));
        if (!site)
            goto fail;
        PyObject *alt = place(Place, &targets[rd64(ra + 8) >> 32], (int64_t)rd64(ra + 16));
        if (!alt) {
            Py_DECREF(site);
            goto fail;
        }
        PyObject *en = new_tuple_of(Entry, 10);
        if (!en) {
            Py_DECREF(site);
            Py_DECREF(alt);
            goto fail;
        }
        PyList_SET_ITEM(out, (Py_ssize_t)i, en);
        PyObject *f[10] = {
            Py_NewRef(path), PyLong_FromUnsignedLongLong(base + i), Py_NewRef(name),
            PyLong_FromUnsignedLongLong(i * ENTRY_SIZE), site, alt,
            PyLong_FromUnsignedLong(rd16(e + 8)), PyLong_FromUnsignedLong(e[10]),
            PyLong_FromUnsignedLong(e[11]), Py_NewRef(Py_None)};
        int bad = 0;
        for (int k = 0; k < 10; k++) {
            if (!f[k])
                bad = 1;
            PyTuple_SET_ITEM(en, k, f[k] ? f[k] : Py_NewRef(Py_None));
        }
        if (bad)
            goto fail;
    }
    goto done;
none:
    Py_XDECREF(out);
    out = Py_NewRef(Py_None);
    goto done;
fail:
    Py_XDECREF(out);
    out = NULL;
done:
    if (targets) {
        for (uint64_t i = 0; i < nsyms; i++)
            Py_XDECREF(targets[i].named);
        PyMem_Free(targets);
    }
    Py_XDECREF(empty);
    PyBuffer_Release(&tb);
    PyBuffer_Release(&rb);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&stb);
    return out;
}

/* -- records._global_defines ---------------------------------------------------------------
 * global_defines(symtab, strtab, sections) -> dict | None
 * The symbol table's bytes (whole symbols) and its string table's. From the first symbol
 * that is not local: each defined one, not a section's, not local, named, first of its
 * name: name -> (type, its section's name or None, whether that section is code). None
 * where a symbol from there has SHN_XINDEX. */
static PyObject *sp_global_defines(PyObject *self, PyObject *args)
{
    Py_buffer sb, stb;
    PyObject *secs;
    if (!PyArg_ParseTuple(args, "y*y*O!", &sb, &stb, &PyList_Type, &secs))
        return NULL;
    PyObject *out = NULL;
    const unsigned char *sym = sb.buf, *str = stb.buf;
    Py_ssize_t nsyms = sb.len / SYM_SIZE, nsecs = PyList_GET_SIZE(secs);
    if (sb.len % SYM_SIZE)
        goto none;
    Py_ssize_t first = 0;
    while (first < nsyms && (sym[first * SYM_SIZE + 4] >> 4) == STB_LOCAL)
        first++;
    for (Py_ssize_t i = first; i < nsyms; i++)
        if (rd16(sym + i * SYM_SIZE + 6) == SHN_XINDEX)
            goto none;
    out = PyDict_New();
    if (!out)
        goto fail;
    for (Py_ssize_t i = first; i < nsyms; i++) {
        const unsigned char *s = sym + i * SYM_SIZE;
        unsigned char info = s[4];
        uint16_t shndx = rd16(s + 6);
        if (shndx == SHN_UNDEF || (info & 0xf) == STT_SECTION || (info >> 4) == STB_LOCAL)
            continue;
        PyObject *nm = cstr(str, stb.len, rd32(s));
        if (!nm)
            goto fail;
        int have = PyUnicode_GET_LENGTH(nm) == 0 ? 1 : PyDict_Contains(out, nm);
        if (have) {
            Py_DECREF(nm);
            if (have < 0)
                goto fail;
            continue;
        }
        PyObject *secname = Py_None, *code = Py_False;
        if (shndx < nsecs) {
            PyObject *sec = PyList_GET_ITEM(secs, shndx);
            if (!PyTuple_Check(sec) || PyTuple_GET_SIZE(sec) < 4) {
                Py_DECREF(nm);
                goto none;
            }
            secname = PyTuple_GET_ITEM(sec, 1);
            unsigned long long fl = PyLong_AsUnsignedLongLongMask(PyTuple_GET_ITEM(sec, 3));
            if (fl == (unsigned long long)-1 && PyErr_Occurred()) {
                Py_DECREF(nm);
                goto fail;
            }
            code = fl & SHF_EXECINSTR ? Py_True : Py_False;
        }
        PyObject *v = Py_BuildValue("(iOO)", info & 0xf, secname, code);
        if (!v || PyDict_SetItem(out, nm, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(nm);
            goto fail;
        }
        Py_DECREF(v);
        Py_DECREF(nm);
    }
    goto done;
none:
    Py_XDECREF(out);
    out = Py_NewRef(Py_None);
    goto done;
fail:
    Py_XDECREF(out);
    out = NULL;
done:
    PyBuffer_Release(&sb);
    PyBuffer_Release(&stb);
    return out;
}

static PyMethodDef methods[] = {
    {"sections", sp_sections, METH_VARARGS, "elf.ElfFile.sections' headers, or None"},
    {"object_entries", sp_object_entries, METH_VARARGS,
     "table._entries_in_order's entries, or None"},
    {"global_defines", sp_global_defines, METH_VARARGS, "records._global_defines, or None"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "altlink._speedups",
    "A compiled fast path for making an object's record (optional; see altlink/speedups.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m && PyModule_AddStringConstant(m, "SOURCE_SHA256", ALTLINK_SPEEDUPS_SHA256) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
