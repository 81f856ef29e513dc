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
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
static PyObject *global_defines_core(const unsigned char *sym, Py_ssize_t symlen,
                                     const unsigned char *str, Py_ssize_t strlen,
                                     Py_ssize_t nsecs, PyObject **secname,
                                     const uint64_t *secflags)
{
    /* ``global_defines`` of the two tables' bytes, each section's name and flags given (a
     * name NULL: not a section this reads): a new reference, None, or NULL. */
    PyObject *out = NULL;
    Py_ssize_t nsyms = symlen / SYM_SIZE;
    if (symlen % SYM_SIZE)
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
        PyObject *nm = cstr(str, strlen, rd32(s));
        if (!nm)
            goto fail;
        int have = PyUnicode_GET_LENGTH(nm) == 0 ? 1 : PyDict_Contains(out, nm);
        if (have) {
            Py_DECREF(nm);
            if (have < 0)
                goto fail;
            continue;
        }
        PyObject *name = Py_None, *code = Py_False;
        if (shndx < nsecs) {
            if (!secname[shndx]) {
                Py_DECREF(nm);
                goto none;
            }
            name = secname[shndx];
            code = secflags[shndx] & SHF_EXECINSTR ? Py_True : Py_False;
        }
        PyObject *ty = PyLong_FromLong(info & 0xf);
        PyObject *v = ty ? PyTuple_Pack(3, ty, name, code) : NULL;
        Py_XDECREF(ty);
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
    return out;
}

static PyObject *sp_global_defines(PyObject *self, PyObject *args)
{
    Py_buffer sb, stb;
    PyObject *secs;
    if (!PyArg_ParseTuple(args, "y*y*O!", &sb, &stb, &PyList_Type, &secs))
        return NULL;
    Py_ssize_t nsecs = PyList_GET_SIZE(secs);
    PyObject **names = PyMem_Calloc(nsecs ? nsecs : 1, sizeof *names), *out = NULL;
    uint64_t *flags = PyMem_Calloc(nsecs ? nsecs : 1, sizeof *flags);
    if (!names || !flags) {
        PyErr_NoMemory();
        goto done;
    }
    for (Py_ssize_t i = 0; i < nsecs; i++) {
        PyObject *sec = PyList_GET_ITEM(secs, i);
        if (!PyTuple_Check(sec) || PyTuple_GET_SIZE(sec) < 4)
            continue;  /* (None, where a definition names it) */
        flags[i] = PyLong_AsUnsignedLongLongMask(PyTuple_GET_ITEM(sec, 3));
        if (flags[i] == (uint64_t)-1 && PyErr_Occurred())
            goto done;
        names[i] = PyTuple_GET_ITEM(sec, 1);
    }
    out = global_defines_core(sb.buf, sb.len, stb.buf, stb.len, nsecs, names, flags);
done:
    PyMem_Free(names);
    PyMem_Free(flags);
    PyBuffer_Release(&sb);
    PyBuffer_Release(&stb);
    return out;
}

/* ``caps.get(cap)``, else ``facts(cap)`` kept in ``caps`` (``check_core.facts_of``'s use):
 * a new reference, NULL on an error. */
static PyObject *cap_facts(PyObject *caps, PyObject *facts, PyObject *cap)
{
    PyObject *got = PyDict_GetItemWithError(caps, cap);
    if (got)
        return Py_NewRef(got);
    if (PyErr_Occurred())
        return NULL;
    got = PyObject_CallOneArg(facts, cap);
    if (got && PyDict_SetItem(caps, cap, got) < 0)
        Py_CLEAR(got);
    return got;
}

/* ``cap_facts`` of a capability field as two flags (callback, capability in range): 0, or
 * -1 on an error. */
static int cap_pair(PyObject *caps, PyObject *facts, PyObject *cap, int *cb, int *cap_ok)
{
    PyObject *got = cap_facts(caps, facts, cap);
    if (!got)
        return -1;
    if (!PyTuple_Check(got) || PyTuple_GET_SIZE(got) != 2) {
        Py_DECREF(got);
        PyErr_SetString(PyExc_TypeError, "cap_facts: not a pair");
        return -1;
    }
    *cb = PyObject_IsTrue(PyTuple_GET_ITEM(got, 0));
    *cap_ok = PyObject_IsTrue(PyTuple_GET_ITEM(got, 1));
    Py_DECREF(got);
    return *cb < 0 || *cap_ok < 0 ? -1 : 0;
}

/* Whether an entry's capability field marks a callback (``cap_facts(...)[0]``): 1, 0, or
 * -1 on an error. */
static int is_callback(PyObject *caps, PyObject *facts, PyObject *cap)
{
    PyObject *got = cap_facts(caps, facts, cap);
    if (!got)
        return -1;
    PyObject *first = PySequence_GetItem(got, 0);
    Py_DECREF(got);
    if (!first)
        return -1;
    int cb = PyObject_IsTrue(first);
    Py_DECREF(first);
    return cb;
}

/* -- check_objects.may_find ----------------------------------------------------------------
 * may_find(entries, sections, caps, facts, section_data, maybe_not_plain, rest)
 *   -> list[tuple[int, bool]] | None
 * The loop of ``may_find`` over an object's entries (``table.Entry`` tuples): ``caps`` the
 * profile's facts by capability field (``facts_of``), ``facts(cap_raw)`` those of a field not
 * met yet (kept in ``caps``); ``section_data(section)`` a section's bytes;
 * ``maybe_not_plain``: 256 bytes, 1 for a top byte whose word may not be plain;
 * ``rest(idx, aoff, alen)``: True where a replacement whose words are not all plain by
 * their top byte is kept (its words' classification). None, before anything is called,
 * where a field is not an int of 64 bits or an entry is not of ``Entry``'s shape. */
struct mf_entry {
    int64_t soff, olen, sidx, aoff, alen, idx;
    int addr;  /* a place by address (site or replacement) */
};

static int as_i64(PyObject *o, int64_t *v)
{
    /* 1 where ``o`` is an int of 64 bits (its value in *v), 0 otherwise; -1 on an error. */
    if (!PyLong_CheckExact(o))
        return 0;
    int over = 0;
    long long x = PyLong_AsLongLongAndOverflow(o, &over);
    if (x == -1 && PyErr_Occurred())
        return -1;
    if (over)
        return 0;
    *v = x;
    return 1;
}

static int sec_fields(PyObject *sec, uint64_t *flags, uint64_t *type, int64_t *size)
{
    /* A Section's flags, type and size (size: -1 where past 63 bits): 1, or 0 where it is
     * not of that shape; -1 on an error. */
    if (!PyTuple_Check(sec) || PyTuple_GET_SIZE(sec) != 11)
        return 0;
    PyObject *f = PyTuple_GET_ITEM(sec, 3), *t = PyTuple_GET_ITEM(sec, 2);
    PyObject *z = PyTuple_GET_ITEM(sec, 6);
    if (!PyLong_CheckExact(f) || !PyLong_CheckExact(t) || !PyLong_CheckExact(z))
        return 0;
    *flags = PyLong_AsUnsignedLongLongMask(f);
    *type = PyLong_AsUnsignedLongLongMask(t);
    int over = 0;
    long long x = PyLong_AsLongLongAndOverflow(z, &over);
    if (PyErr_Occurred())
        return -1;
    if (over || x < 0)
        return 0;
    *size = x;
    return 1;
}

static int abi_xen(PyObject *abi_obj);
static PyObject *moves_core(const unsigned char *code, Py_ssize_t len, int64_t offset,
                            int xen, PyObject *parts);

/* Whether each word of a replacement at ``aoff`` (``alen`` bytes) of a section's ``d``
 * (``len`` bytes) is plain by its top byte (``mark``: 1 where it may not be):
 * ``marks[aoff // 4:(aoff + alen) // 4]``, as a slice (clipped), has no 1; 0 where ``aoff``
 * is not a word's. */
static int plain_by_marks(const unsigned char *d, int64_t len, int64_t aoff, int64_t alen,
                          const unsigned char *mark)
{
    if (aoff % 4)
        return 0;
    int64_t a = aoff / 4, b = (aoff + alen) / 4, words = len / 4;
    if (b > words)
        b = words;
    for (int64_t k = a; k < b; k++)
        if (mark[d[4 * k + 3]] == 1)
            return 0;
    return 1;
}

static PyObject *sp_may_find(PyObject *self, PyObject *args)
{
    PyObject *entries, *secs, *caps, *facts, *section_data, *rest, *moves = Py_None;
    Py_buffer mb;
    if (!PyArg_ParseTuple(args, "O!O!O!OOy*O|O", &PyList_Type, &entries, &PyList_Type, &secs,
                          &PyDict_Type, &caps, &facts, &section_data, &mb, &rest, &moves))
        return NULL;
    /* ``moves``: (abi, rels_of, read_symbols), for the replacements' words decided here
     * (``moves_core``) where they can be: ``rels_of(idx)``, a section's ``_rela_parts``;
     * ``read_symbols(indexes)``, the symbols ``_moves_fine`` reads. */
    PyObject *rels_of = NULL, *read_symbols = NULL, **parts_of = NULL;
    int xen = -1;
    if (moves != Py_None) {
        if (!PyTuple_Check(moves) || PyTuple_GET_SIZE(moves) != 3) {
            PyBuffer_Release(&mb);
            Py_RETURN_NONE;
        }
        xen = abi_xen(PyTuple_GET_ITEM(moves, 0));
        if (xen == -2) {
            PyBuffer_Release(&mb);
            return NULL;
        }
        rels_of = PyTuple_GET_ITEM(moves, 1);
        read_symbols = PyTuple_GET_ITEM(moves, 2);
    }
    Py_ssize_t n = PyList_GET_SIZE(entries), nsecs = PyList_GET_SIZE(secs);
    struct mf_entry *es = NULL;
    int64_t *site_lim = NULL, *alt_lim = NULL;
    PyObject **datas = NULL, *out = NULL, *repl = NULL;
    const unsigned char *mark = mb.buf;
    if (mb.len != 256)
        goto none;
    es = PyMem_Calloc(n ? n : 1, sizeof *es);
    site_lim = PyMem_Calloc(nsecs ? nsecs : 1, sizeof *site_lim);
    alt_lim = PyMem_Calloc(nsecs ? nsecs : 1, sizeof *alt_lim);
    datas = PyMem_Calloc(nsecs ? nsecs : 1, sizeof *datas);
    parts_of = PyMem_Calloc(nsecs ? nsecs : 1, sizeof *parts_of);
    if (!es || !site_lim || !alt_lim || !datas || !parts_of) {
        PyErr_NoMemory();
        goto fail;
    }
    /* Every field first: None before anything is called where one is not as expected. */
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyList_GET_ITEM(entries, i);
        if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 10)
            goto none;
        PyObject *site = PyTuple_GET_ITEM(e, 4), *alt = PyTuple_GET_ITEM(e, 5);
        if (!PyTuple_Check(site) || PyTuple_GET_SIZE(site) != 6 || !PyTuple_Check(alt)
            || PyTuple_GET_SIZE(alt) != 6 || !PyLong_CheckExact(PyTuple_GET_ITEM(e, 6)))
            goto none;
        struct mf_entry *m = &es[i];
        PyObject *vals[6] = {PyTuple_GET_ITEM(site, 2), PyTuple_GET_ITEM(e, 7),
                             PyTuple_GET_ITEM(site, 1), PyTuple_GET_ITEM(alt, 2),
                             PyTuple_GET_ITEM(e, 8), PyTuple_GET_ITEM(alt, 1)};
        int64_t *dst[6] = {&m->soff, &m->olen, &m->sidx, &m->aoff, &m->alen, &m->idx};
        for (int k = 0; k < 6; k++) {
            int r = as_i64(vals[k], dst[k]);
            if (r < 0)
                goto fail;
            if (r == 0)
                goto none;
        }
        /* (the lengths are bytes: no sum below passes 64 bits) */
        if (m->olen < 0 || m->olen > 255 || m->alen < 0 || m->alen > 255)
            goto none;
        m->addr = PyTuple_GET_ITEM(site, 3) != Py_None || PyTuple_GET_ITEM(alt, 3) != Py_None;
    }
    for (Py_ssize_t i = 0; i < nsecs; i++) {
        uint64_t fl, ty;
        int64_t sz;
        int r = sec_fields(PyList_GET_ITEM(secs, i), &fl, &ty, &sz);
        if (r < 0)
            goto fail;
        if (r == 0)
            goto none;
        site_lim[i] = fl & SHF_EXECINSTR ? sz : -1;
        alt_lim[i] = -2;  /* (decided as first met: its name) */
    }
    repl = PyUnicode_FromString(".altinstr_replacement");
    out = PyList_New(0);
    if (!repl || !out)
        goto fail;
    for (Py_ssize_t pos = 0; pos < n; pos++) {
        struct mf_entry *m = &es[pos];
        PyObject *e = PyList_GET_ITEM(entries, pos);
        int cb, cap_ok;
        if (cap_pair(caps, facts, PyTuple_GET_ITEM(e, 6), &cb, &cap_ok) < 0)
            goto fail;
        int keep = 0;  /* 1: (pos, False); 2: (pos, True); 0: not kept */
        if (!cap_ok || (m->alen == 0 && !cb) || (cb && m->alen) || m->addr || !m->olen
            || m->olen % 4 || m->soff % 4 || !(0 < m->sidx && m->sidx < nsecs))
            keep = 1;
        else if (m->soff < 0 || m->soff > site_lim[m->sidx] - m->olen)
            keep = 1;
        else if (cb)
            keep = m->idx ? 1 : 2;
        else if (m->alen != m->olen || !(0 < m->idx && m->idx < nsecs))
            keep = 1;
        else {
            int64_t idx = m->idx;
            if (alt_lim[idx] == -2) {
                PyObject *rsec = PyList_GET_ITEM(secs, idx);
                uint64_t fl, ty;
                int64_t sz;
                if (sec_fields(rsec, &fl, &ty, &sz) != 1) {
                    PyErr_SetString(PyExc_TypeError, "a section changed");
                    goto fail;
                }
                int named = PyUnicode_Check(PyTuple_GET_ITEM(rsec, 1))
                    && PyUnicode_Compare(PyTuple_GET_ITEM(rsec, 1), repl) == 0;
                if (PyErr_Occurred())
                    goto fail;
                alt_lim[idx] = (fl & SHF_EXECINSTR || named) && ty != SHT_NOBITS ? sz : -1;
            }
            if (m->aoff < 0 || m->aoff > alt_lim[idx] - m->alen)
                keep = 1;
            else {
                if (!datas[idx]) {
                    datas[idx] = PyObject_CallOneArg(section_data, PyList_GET_ITEM(secs, idx));
                    if (!datas[idx])
                        goto fail;
                    if (!PyBytes_Check(datas[idx])) {
                        PyErr_SetString(PyExc_TypeError, "section_data: not bytes");
                        goto fail;
                    }
                }
                const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(datas[idx]);
                int plain = plain_by_marks(d, PyBytes_GET_SIZE(datas[idx]), m->aoff, m->alen,
                                           mark);
                int decided = 0;
                if (!plain && xen >= 0) {
                    if (!parts_of[idx]) {
                        parts_of[idx] = PyObject_CallFunction(rels_of, "n", (Py_ssize_t)idx);
                        if (!parts_of[idx])
                            goto fail;
                    }
                    PyObject *g = moves_core(d + m->aoff, (Py_ssize_t)m->alen, m->aoff, xen,
                                             parts_of[idx]);
                    if (!g)
                        goto fail;
                    if (g != Py_None) {
                        PyObject *syms = PyTuple_GET_ITEM(g, 1);
                        if (PyList_GET_SIZE(syms)) {
                            PyObject *r = PyObject_CallOneArg(read_symbols, syms);
                            if (!r) {
                                Py_DECREF(g);
                                goto fail;
                            }
                            Py_DECREF(r);
                        }
                        keep = PyTuple_GET_ITEM(g, 0) == Py_True ? 0 : 1;
                        decided = 1;
                    }
                    Py_DECREF(g);
                }
                if (!plain && !decided) {
                    PyObject *r = PyObject_CallFunction(rest, "LLL", (long long)idx,
                                                        (long long)m->aoff, (long long)m->alen);
                    if (!r)
                        goto fail;
                    int t = PyObject_IsTrue(r);
                    Py_DECREF(r);
                    if (t < 0)
                        goto fail;
                    keep = t ? 1 : 0;
                }
            }
        }
        if (keep) {
            PyObject *item = Py_BuildValue("(nO)", pos, keep == 2 ? Py_True : Py_False);
            if (!item || PyList_Append(out, item) < 0) {
                Py_XDECREF(item);
                goto fail;
            }
            Py_DECREF(item);
        }
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
    if (datas)
        for (Py_ssize_t i = 0; i < nsecs; i++)
            Py_XDECREF(datas[i]);
    if (parts_of)
        for (Py_ssize_t i = 0; i < nsecs; i++)
            Py_XDECREF(parts_of[i]);
    PyMem_Free(datas);
    PyMem_Free(parts_of);
    PyMem_Free(es);
    PyMem_Free(site_lim);
    PyMem_Free(alt_lim);
    Py_XDECREF(repl);
    PyBuffer_Release(&mb);
    return out;
}

/* -- check_objects.check_object_branches' word scans ------------------------------------------
 * object_branch_words(data, ranges) -> (hits, marked) | None
 * ``data``: a section's bytes; ``ranges``: its replacements' (start, end, ...) tuples,
 * sorted. ``hits``: ``branches.into_ranges_py(data, 0, starts, ends)``, (offset, word,
 * target) of each immediate branch whose target (modulo 2**64) is in a range; ``marked``:
 * the offsets of the words that may be branches (``maybe_branch``) in the ranges' words,
 * the ranges merged where they overlap or touch (in order). None where a start or end is
 * not an int of 64 bits. */
static int64_t branch_offset(uint32_t w)
{
    /* ``insn.decode(w).offset`` of a word ``maybe_branch`` holds for (by its top byte). */
    unsigned b = w >> 24;
    if ((b & 0x7c) == 0x14)  /* B, BL: imm26 */
        return ((int64_t)((int32_t)(w << 6) >> 6)) * 4;
    if ((b & 0x7e) == 0x36)  /* TBZ, TBNZ: imm14 at bit 5 */
        return ((int64_t)((int32_t)(w << 13) >> 18)) * 4;
    /* B.cond, BC.cond, CBZ, CBNZ: imm19 at bit 5 */
    return ((int64_t)((int32_t)(w << 8) >> 13)) * 4;
}

static int is_branch_byte(unsigned b)
{
    return (b & 0x7c) == 0x14 || b == 0x54 || (b & 0x7e) == 0x34 || (b & 0x7e) == 0x36;
}

/* The ranges' words (``marked_words``' spans): the ranges (sorted by start) as spans of word
 * numbers [sa, sb), merged where they overlap or touch, clipped to the words of ``len``
 * bytes; their count. */
static Py_ssize_t merged_spans(const int64_t *starts, const int64_t *ends, Py_ssize_t nr,
                               int64_t len, int64_t *sa, int64_t *sb)
{
    int64_t last = len - 3, words = len / 4, a0 = -1, b0 = -1;
    Py_ssize_t n = 0;
    for (Py_ssize_t i = 0; i <= nr; i++) {
        int64_t a = 0, b = 0;
        if (i < nr) {
            int64_t lo = starts[i], hi = ends[i];
            int64_t start = lo > 0 ? lo - lo % 4 : 0;
            int64_t stop = hi < last ? hi : last;
            if (start >= stop)
                continue;
            a = start >> 2;
            b = (stop + 3) >> 2;
            if (a <= b0) {
                if (b > b0)
                    b0 = b;
                continue;
            }
        }
        if (b0 >= 0) {
            sa[n] = a0;
            sb[n] = b0 < words ? b0 : words;
            n++;
        }
        if (i < nr) {
            a0 = a;
            b0 = b;
        }
    }
    return n;
}

/* Whether the branch ``w`` at word ``k`` lands (its target modulo 2**64, in ``*tgt``) in one
 * of the ranges (sorted by start; ``hi`` the largest end): ``starts[0] <= t < hi`` and,
 * for ``j = bisect_right(starts, t) - 1``, ``j >= 0 and t < ends[j]``. */
static int lands_in(uint32_t w, int64_t k, const int64_t *starts, const int64_t *ends,
                    Py_ssize_t nr, __int128 hi, uint64_t *tgt)
{
    *tgt = (uint64_t)(4 * k) + (uint64_t)branch_offset(w);
    __int128 t = (__int128)*tgt;
    if (!nr || !((__int128)starts[0] <= t && t < hi))
        return 0;
    Py_ssize_t a = 0, b = nr;
    while (a < b) {
        Py_ssize_t m = (a + b) / 2;
        if (t < (__int128)starts[m])
            b = m;
        else
            a = m + 1;
    }
    return a - 1 >= 0 && t < (__int128)ends[a - 1];
}

static PyObject *sp_object_branch_words(PyObject *self, PyObject *args)
{
    Py_buffer db;
    PyObject *ranges;
    if (!PyArg_ParseTuple(args, "y*O!", &db, &PyList_Type, &ranges))
        return NULL;
    Py_ssize_t nr = PyList_GET_SIZE(ranges);
    int64_t *starts = PyMem_Calloc(nr ? nr : 1, sizeof *starts);
    int64_t *ends = PyMem_Calloc(nr ? nr : 1, sizeof *ends);
    int64_t *sa = PyMem_Calloc(nr ? nr : 1, sizeof *sa);
    int64_t *sb = PyMem_Calloc(nr ? nr : 1, sizeof *sb);
    PyObject *hits = NULL, *marked = NULL, *out = NULL;
    const unsigned char *d = db.buf;
    int64_t words = db.len / 4;
    if (!starts || !ends || !sa || !sb) {
        PyErr_NoMemory();
        goto fail;
    }
    for (Py_ssize_t i = 0; i < nr; i++) {
        PyObject *r = PyList_GET_ITEM(ranges, i);
        if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) < 2)
            goto none;
        int a = as_i64(PyTuple_GET_ITEM(r, 0), &starts[i]);
        int b = a > 0 ? as_i64(PyTuple_GET_ITEM(r, 1), &ends[i]) : a;
        if (a < 0 || b < 0)
            goto fail;
        if (!a || !b)
            goto none;
        if (i && starts[i] < starts[i - 1])
            goto none;  /* (not sorted: the Python's bisect decides) */
    }
    hits = PyList_New(0);
    marked = PyList_New(0);
    if (!hits || !marked)
        goto fail;
    if (nr) {
        __int128 hi = ends[0];
        for (Py_ssize_t i = 1; i < nr; i++)
            if (ends[i] > hi)
                hi = ends[i];
        for (int64_t k = 0; k < words; k++) {
            uint64_t tgt;
            if (!is_branch_byte(d[4 * k + 3])
                || !lands_in(rd32(d + 4 * k), k, starts, ends, nr, hi, &tgt))
                continue;
            PyObject *h = Py_BuildValue("(LkK)", (long long)(4 * k),
                                        (unsigned long)rd32(d + 4 * k), (unsigned long long)tgt);
            if (!h || PyList_Append(hits, h) < 0) {
                Py_XDECREF(h);
                goto fail;
            }
            Py_DECREF(h);
        }
    }
    /* The ranges' words, merged, and in them the marked ones. */
    Py_ssize_t ns = merged_spans(starts, ends, nr, (int64_t)db.len, sa, sb);
    for (Py_ssize_t i = 0; i < ns; i++)
        for (int64_t k = sa[i]; k < sb[i]; k++)
            if (is_branch_byte(d[4 * k + 3])) {
                PyObject *o = PyLong_FromLongLong(4 * k);
                if (!o || PyList_Append(marked, o) < 0) {
                    Py_XDECREF(o);
                    goto fail;
                }
                Py_DECREF(o);
            }
    out = PyTuple_Pack(2, hits, marked);
    goto done;
none:
    out = Py_NewRef(Py_None);
    goto done;
fail:
    out = NULL;
done:
    Py_XDECREF(hits);
    Py_XDECREF(marked);
    PyMem_Free(starts);
    PyMem_Free(ends);
    PyMem_Free(sa);
    PyMem_Free(sb);
    PyBuffer_Release(&db);
    return out;
}

/* -- branches.into_ranges: an image's word scan (ALT017) ----------------------------------------
 * into_ranges(data, addr, starts, ends) -> [(pc, word, target), ...] | None
 * ``branches.into_ranges_py``: every immediate branch of ``data`` (code at ``addr``) whose
 * target, modulo 2**64, is in a range: ``t`` is when ``starts[0] <= t < max(ends)`` and, for
 * ``j = bisect_right(starts, t) - 1``, ``j >= 0 and t < ends[j]``. None where ``addr`` or a
 * start or end is not an int of 0 to 2**64 - 1, or the code runs past 2**64 (the reference's
 * pc is not taken modulo 2**64). */
static int as_u64(PyObject *o, uint64_t *v)
{
    /* 1: ``*v`` is ``o``; 0: ``o`` is not an int of 0 to 2**64 - 1; -1: an error. */
    if (!PyLong_Check(o))
        return 0;
    unsigned long long u = PyLong_AsUnsignedLongLong(o);
    if (u == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    *v = (uint64_t)u;
    return 1;
}

static int u64_list(PyObject *list, uint64_t *out)
{
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
        int r = as_u64(PyList_GET_ITEM(list, i), &out[i]);
        if (r <= 0)
            return r;
    }
    return 1;
}

static PyObject *sp_into_ranges(PyObject *self, PyObject *args)
{
    Py_buffer db;
    PyObject *addr_obj, *starts_obj, *ends_obj;
    if (!PyArg_ParseTuple(args, "y*OO!O!", &db, &addr_obj, &PyList_Type, &starts_obj,
                          &PyList_Type, &ends_obj))
        return NULL;
    Py_ssize_t ns = PyList_GET_SIZE(starts_obj), ne = PyList_GET_SIZE(ends_obj);
    uint64_t *starts = PyMem_Calloc(ns ? ns : 1, sizeof *starts);
    uint64_t *ends = PyMem_Calloc(ne ? ne : 1, sizeof *ends);
    PyObject *out = NULL;
    const unsigned char *d = db.buf;
    uint64_t words = (uint64_t)db.len / 4, addr;
    if (!starts || !ends) {
        PyErr_NoMemory();
        goto fail;
    }
    int r = as_u64(addr_obj, &addr);
    if (r > 0)
        r = u64_list(starts_obj, starts);
    if (r > 0)
        r = u64_list(ends_obj, ends);
    if (r < 0)
        goto fail;
    if (r == 0 || (words && addr + 4 * (words - 1) < addr))
        goto none;
    out = PyList_New(0);
    if (!out)
        goto fail;
    if (!ns)
        goto done;  /* (the reference: nothing in no range) */
    if (!ne)
        goto none;  /* (the reference fails on max(ends)) */
    uint64_t lo = starts[0], hi = ends[0];
    for (Py_ssize_t i = 1; i < ne; i++)
        if (ends[i] > hi)
            hi = ends[i];
    for (uint64_t k = 0; k < words; k++) {
        if (!is_branch_byte(d[4 * k + 3]))
            continue;
        uint32_t w = rd32(d + 4 * k);
        uint64_t pc = addr + 4 * k;
        uint64_t tgt = pc + (uint64_t)branch_offset(w);  /* modulo 2**64 */
        if (!(lo <= tgt && tgt < hi))
            continue;
        Py_ssize_t a = 0, b = ns;  /* bisect_right(starts, tgt), step for step */
        while (a < b) {
            Py_ssize_t m = (a + b) / 2;
            if (tgt < starts[m])
                b = m;
            else
                a = m + 1;
        }
        Py_ssize_t j = a - 1;
        if (j < 0)
            continue;
        if (j >= ne)
            goto none;  /* (the reference fails on ends[j]) */
        if (tgt < ends[j]) {
            PyObject *h = Py_BuildValue("(KkK)", (unsigned long long)pc, (unsigned long)w,
                                        (unsigned long long)tgt);
            if (!h || PyList_Append(out, h) < 0) {
                Py_XDECREF(h);
                goto fail;
            }
            Py_DECREF(h);
        }
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
    PyMem_Free(starts);
    PyMem_Free(ends);
    PyBuffer_Release(&db);
    return out;
}

/* -- check_objects.check_object_branches' replacements ----------------------------------------
 * branch_ranges(entries, sections, caps, facts) -> dict | None
 * The loop of ``check_object_branches`` over an object's entries: for each section holding
 * replacements (not NOBITS) of static entries (not callbacks, by ``caps``/``facts`` as
 * ``may_find``), a list of (offset, offset + alt_len, index, entry), in the entries'
 * order, by section index in the order first met. None, before anything is called, where
 * a field is not an int of 64 bits or an entry is not of ``Entry``'s shape. */
static PyObject *sp_branch_ranges(PyObject *self, PyObject *args)
{
    PyObject *entries, *secs, *caps, *facts;
    if (!PyArg_ParseTuple(args, "O!O!O!O", &PyList_Type, &entries, &PyList_Type, &secs,
                          &PyDict_Type, &caps, &facts))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(entries), nsecs = PyList_GET_SIZE(secs);
    PyObject *out = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyList_GET_ITEM(entries, i);
        if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 10)
            goto none;
        PyObject *alt = PyTuple_GET_ITEM(e, 5);
        if (!PyTuple_Check(alt) || PyTuple_GET_SIZE(alt) != 6)
            goto none;
        int64_t v;
        PyObject *vals[3] = {PyTuple_GET_ITEM(alt, 1), PyTuple_GET_ITEM(alt, 2),
                             PyTuple_GET_ITEM(e, 8)};
        for (int k = 0; k < 3; k++) {
            int r = as_i64(vals[k], &v);
            if (r < 0)
                return NULL;
            if (r == 0 || (k == 1 && (v > INT64_MAX / 2 || v < INT64_MIN / 2))
                || (k == 2 && (v < 0 || v > 255)))
                goto none;
        }
        if (!PyLong_CheckExact(PyTuple_GET_ITEM(e, 6)))
            goto none;
    }
    for (Py_ssize_t i = 0; i < nsecs; i++) {
        uint64_t fl, ty;
        int64_t sz;
        int r = sec_fields(PyList_GET_ITEM(secs, i), &fl, &ty, &sz);
        if (r < 0)
            return NULL;
        if (r == 0)
            goto none;
    }
    out = PyDict_New();
    if (!out)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyList_GET_ITEM(entries, i), *alt = PyTuple_GET_ITEM(e, 5);
        int64_t shndx = 0, offset = 0, alen = 0;
        as_i64(PyTuple_GET_ITEM(alt, 1), &shndx);
        as_i64(PyTuple_GET_ITEM(alt, 2), &offset);
        as_i64(PyTuple_GET_ITEM(e, 8), &alen);
        if (!(PyTuple_GET_ITEM(alt, 3) == Py_None && alen > 0 && 0 < shndx && shndx < nsecs))
            continue;
        int cb = is_callback(caps, facts, PyTuple_GET_ITEM(e, 6));
        if (cb < 0)
            goto fail;
        uint64_t fl, ty;
        int64_t sz;
        sec_fields(PyList_GET_ITEM(secs, shndx), &fl, &ty, &sz);
        if (cb || ty == SHT_NOBITS)
            continue;
        PyObject *key = PyTuple_GET_ITEM(alt, 1);
        PyObject *list = PyDict_GetItemWithError(out, key);
        if (!list) {
            if (PyErr_Occurred())
                goto fail;
            list = PyList_New(0);
            if (!list || PyDict_SetItem(out, key, list) < 0) {
                Py_XDECREF(list);
                goto fail;
            }
            Py_DECREF(list);  /* (the dict holds it) */
        }
        PyObject *end = PyLong_FromLongLong(offset + alen);
        if (!end)
            goto fail;
        PyObject *item = PyTuple_Pack(4, PyTuple_GET_ITEM(alt, 2), end, PyTuple_GET_ITEM(e, 1),
                                      e);
        Py_DECREF(end);
        if (!item || PyList_Append(list, item) < 0) {
            Py_XDECREF(item);
            goto fail;
        }
        Py_DECREF(item);
    }
    return out;
none:
    Py_RETURN_NONE;
fail:
    Py_XDECREF(out);
    return NULL;
}

/* -- records.digest -----------------------------------------------------------------------
 * digest_entries(entries, nsecs, caps, facts, part, rows, masked, alt_relocs, nones,
 *                make_nones, EntryDigest, Anchor) -> list[EntryDigest] | None
 * The loop of ``digest`` over an object's entries. Called back, each as ``digest`` asks:
 * ``part(shndx)``, a section's (bytes, relocations, relocated offsets) (once a section
 * here); ``rows(shndx)``, its anchors' rows (``Anchors``: once a section here);
 * ``masked(part, offset, length)``, a site's words where a relocation falls in them;
 * ``alt_relocs(part, offset, words)``, a replacement's relocations where one falls in it;
 * ``caps``/``facts`` as ``may_find``'s; ``nones``/``make_nones(n)`` the shared tuples of
 * n Nones (``_NONES``, ``_nones``). None, before anything is called, where a field is not
 * an int of 64 bits, a place's section is out of range, or an entry is not of ``Entry``'s
 * shape; None too where a part is not of its shape (the Python then makes the digest). */
static int bisect_right(PyObject *list, PyObject *x, Py_ssize_t *at)
{
    Py_ssize_t lo = 0, hi = PyList_GET_SIZE(list);
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        int lt = PyObject_RichCompareBool(x, PyList_GET_ITEM(list, mid), Py_LT);
        if (lt < 0)
            return -1;
        if (lt)
            hi = mid;
        else
            lo = mid + 1;
    }
    *at = lo;
    return 0;
}

static PyObject *words_at(const unsigned char *d, int64_t off, int64_t n)
{
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    if (!t)
        return NULL;
    for (int64_t i = 0; i < n; i++) {
        PyObject *w = PyLong_FromUnsignedLong(rd32(d + off + 4 * i));
        if (!w) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, w);
    }
    return t;
}

/* Whether any of the n words at ``off`` is in ``relocated``: 1, 0, or -1 on an error. */
static int any_relocated(PyObject *relocated, int64_t off, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        PyObject *k = PyLong_FromLongLong(off + 4 * i);
        if (!k)
            return -1;
        int in = PySequence_Contains(relocated, k);
        Py_DECREF(k);
        if (in)
            return in;
    }
    return 0;
}

/* The part of section ``shndx`` (cached in ``parts``): borrowed, NULL on an error, and
 * *bad set where it is not (bytes, _, _). */
static PyObject *get_part(PyObject **parts, PyObject *fn, PyObject *shndx_obj, int64_t shndx,
                          int *bad)
{
    if (!parts[shndx]) {
        PyObject *got = PyObject_CallOneArg(fn, shndx_obj);
        if (!got)
            return NULL;
        parts[shndx] = got;
    }
    PyObject *p = parts[shndx];
    if (!PyTuple_Check(p) || PyTuple_GET_SIZE(p) != 3 || !PyBytes_Check(PyTuple_GET_ITEM(p, 0)))
        *bad = 1;
    return p;
}

static PyObject *sp_digest_entries(PyObject *self, PyObject *args)
{
    PyObject *entries, *caps, *facts, *part_fn, *rows_fn, *masked_fn, *alt_relocs_fn, *nones,
        *make_nones, *EntryDigest, *Anchor;
    Py_ssize_t nsecs;
    if (!PyArg_ParseTuple(args, "O!nO!OOOOOO!OOO", &PyList_Type, &entries, &nsecs,
                          &PyDict_Type, &caps, &facts, &part_fn, &rows_fn, &masked_fn,
                          &alt_relocs_fn, &PyDict_Type, &nones, &make_nones, &EntryDigest,
                          &Anchor))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(entries);
    PyObject **parts = NULL, **rows = NULL, *out = NULL;
    char *rows_made = NULL;
    if (!PyType_Check(EntryDigest) || !PyType_Check(Anchor) || nsecs < 0)
        goto none;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyList_GET_ITEM(entries, i);
        if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 10)
            goto none;
        PyObject *site = PyTuple_GET_ITEM(e, 4), *alt = PyTuple_GET_ITEM(e, 5);
        if (!PyTuple_Check(site) || PyTuple_GET_SIZE(site) != 6 || !PyTuple_Check(alt)
            || PyTuple_GET_SIZE(alt) != 6)
            goto none;
        PyObject *vals[6] = {PyTuple_GET_ITEM(site, 1), PyTuple_GET_ITEM(site, 2),
                             PyTuple_GET_ITEM(alt, 1), PyTuple_GET_ITEM(alt, 2),
                             PyTuple_GET_ITEM(e, 7), PyTuple_GET_ITEM(e, 8)};
        int64_t v[6];
        for (int k = 0; k < 6; k++) {
            int r = as_i64(vals[k], &v[k]);
            if (r < 0)
                return NULL;
            if (r == 0 || v[k] > INT64_MAX / 4 || v[k] < INT64_MIN / 4)
                goto none;
        }
        if (v[0] < 0 || v[0] >= nsecs || v[4] < 0 || v[4] > 255 || v[5] < 0 || v[5] > 255)
            goto none;
    }
    parts = PyMem_Calloc(nsecs ? nsecs : 1, sizeof *parts);
    rows = PyMem_Calloc(nsecs ? nsecs : 1, sizeof *rows);
    rows_made = PyMem_Calloc(nsecs ? nsecs : 1, 1);
    if (!parts || !rows || !rows_made) {
        PyErr_NoMemory();
        goto fail;
    }
    out = PyList_New(n);
    if (!out)
        goto fail;
    for (Py_ssize_t pos = 0; pos < n; pos++) {
        PyObject *e = PyList_GET_ITEM(entries, pos);
        PyObject *site = PyTuple_GET_ITEM(e, 4), *alt = PyTuple_GET_ITEM(e, 5);
        PyObject *site_words = Py_NewRef(Py_None), *site_anchor = Py_NewRef(Py_None);
        PyObject *alt_words = Py_NewRef(Py_None), *alt_relocs = Py_NewRef(Py_None);
        int64_t shndx = 0, offset = 0, orig_len = 0, alt_len = 0, ashndx = 0, aoff = 0;
        as_i64(PyTuple_GET_ITEM(site, 1), &shndx);
        as_i64(PyTuple_GET_ITEM(site, 2), &offset);
        as_i64(PyTuple_GET_ITEM(e, 7), &orig_len);
        as_i64(PyTuple_GET_ITEM(e, 8), &alt_len);
        as_i64(PyTuple_GET_ITEM(alt, 1), &ashndx);
        as_i64(PyTuple_GET_ITEM(alt, 2), &aoff);
        int bad = 0;
        if (shndx) {
            PyObject *p = get_part(parts, part_fn, PyTuple_GET_ITEM(site, 1), shndx, &bad);
            if (!p)
                goto fail_entry;
            if (bad)
                goto none_entry;
            PyObject *data = PyTuple_GET_ITEM(p, 0), *relocated = PyTuple_GET_ITEM(p, 2);
            int64_t nw = orig_len / 4;
            Py_DECREF(site_words);
            if (offset < 0 || offset + 4 * nw > PyBytes_GET_SIZE(data))
                site_words = PyTuple_New(0);
            else {
                site_words = words_at((const unsigned char *)PyBytes_AS_STRING(data), offset, nw);
                if (!site_words)
                    goto fail_entry;
                int some = PyObject_IsTrue(relocated);
                if (some > 0)
                    some = any_relocated(relocated, offset, nw);
                if (some < 0)
                    goto fail_entry;
                if (some) {
                    Py_DECREF(site_words);
                    site_words = PyObject_CallFunctionObjArgs(
                        masked_fn, p, PyTuple_GET_ITEM(site, 2), PyTuple_GET_ITEM(e, 7), NULL);
                    if (!site_words)
                        goto fail_entry;
                }
            }
            if (!site_words)
                goto fail_entry;
            if (!rows_made[shndx]) {
                rows[shndx] = PyObject_CallOneArg(rows_fn, PyTuple_GET_ITEM(site, 1));
                if (!rows[shndx])
                    goto fail_entry;
                rows_made[shndx] = 1;
            }
            PyObject *r = rows[shndx];
            if (r != Py_None) {
                if (!PyTuple_Check(r) || PyTuple_GET_SIZE(r) != 2
                    || !PyList_Check(PyTuple_GET_ITEM(r, 0))
                    || !PyList_Check(PyTuple_GET_ITEM(r, 1)))
                    goto none_entry;
                Py_ssize_t at;
                if (bisect_right(PyTuple_GET_ITEM(r, 1), PyTuple_GET_ITEM(site, 2), &at) < 0)
                    goto fail_entry;
                Py_ssize_t i = at - 1;
                if (i >= 0) {
                    PyObject *rowlist = PyTuple_GET_ITEM(r, 0);
                    if (i >= PyList_GET_SIZE(rowlist))
                        goto none_entry;
                    PyObject *row = PyList_GET_ITEM(rowlist, i);
                    if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != 4)
                        goto none_entry;
                    PyObject *delta = PyNumber_Subtract(PyTuple_GET_ITEM(site, 2),
                                                        PyTuple_GET_ITEM(row, 0));
                    if (!delta)
                        goto fail_entry;
                    PyObject *a = new_tuple_of(Anchor, 3);
                    if (!a) {
                        Py_DECREF(delta);
                        goto fail_entry;
                    }
                    PyTuple_SET_ITEM(a, 0, Py_NewRef(PyTuple_GET_ITEM(row, 3)));
                    PyTuple_SET_ITEM(a, 1, Py_NewRef(PyTuple_GET_ITEM(row, 1)));
                    PyTuple_SET_ITEM(a, 2, delta);
                    Py_DECREF(site_anchor);
                    site_anchor = a;
                }
            }
        }
        if (ashndx && 0 < ashndx && ashndx < nsecs) {
            int cb = is_callback(caps, facts, PyTuple_GET_ITEM(e, 6));
            if (cb < 0)
                goto fail_entry;
            if (!cb) {
                PyObject *p = get_part(parts, part_fn, PyTuple_GET_ITEM(alt, 1), ashndx, &bad);
                if (!p)
                    goto fail_entry;
                if (bad)
                    goto none_entry;
                PyObject *data = PyTuple_GET_ITEM(p, 0), *relocated = PyTuple_GET_ITEM(p, 2);
                int64_t nw = alt_len / 4;
                if (0 <= aoff && aoff + 4 * nw <= PyBytes_GET_SIZE(data)) {
                    Py_DECREF(alt_words);
                    alt_words = words_at((const unsigned char *)PyBytes_AS_STRING(data), aoff,
                                         nw);
                    if (!alt_words)
                        goto fail_entry;
                    int some = PyObject_IsTrue(relocated);
                    if (some > 0)
                        some = any_relocated(relocated, aoff, nw);
                    if (some < 0)
                        goto fail_entry;
                    Py_DECREF(alt_relocs);
                    if (!some) {
                        PyObject *key = PyLong_FromLongLong(nw);
                        if (!key) {
                            alt_relocs = NULL;
                            goto fail_entry;
                        }
                        alt_relocs = PyDict_GetItemWithError(nones, key);
                        if (alt_relocs && PyObject_IsTrue(alt_relocs) == 1)
                            Py_INCREF(alt_relocs);
                        else if (PyErr_Occurred())
                            alt_relocs = NULL;
                        else
                            alt_relocs = PyObject_CallOneArg(make_nones, key);
                        Py_DECREF(key);
                    } else
                        alt_relocs = PyObject_CallFunctionObjArgs(
                            alt_relocs_fn, p, PyTuple_GET_ITEM(alt, 2), alt_words, NULL);
                    if (!alt_relocs)
                        goto fail_entry;
                }
            }
        }
        {
            PyObject *d = new_tuple_of(EntryDigest, 14);
            PyObject *pos_obj = PyLong_FromSsize_t(pos);
            if (!d || !pos_obj) {
                Py_XDECREF(d);
                Py_XDECREF(pos_obj);
                goto fail_entry;
            }
            PyObject *fields[14] = {
                pos_obj, Py_NewRef(PyTuple_GET_ITEM(e, 1)), Py_NewRef(PyTuple_GET_ITEM(e, 2)),
                Py_NewRef(PyTuple_GET_ITEM(e, 6)), Py_NewRef(PyTuple_GET_ITEM(e, 7)),
                Py_NewRef(PyTuple_GET_ITEM(e, 8)), Py_NewRef(PyTuple_GET_ITEM(site, 0)),
                Py_NewRef(PyTuple_GET_ITEM(site, 2)), site_words, site_anchor,
                Py_NewRef(PyTuple_GET_ITEM(alt, 4)),
                Py_NewRef(ashndx ? Py_True : Py_False), alt_words, alt_relocs};
            for (int k = 0; k < 14; k++)
                PyTuple_SET_ITEM(d, k, fields[k]);
            PyList_SET_ITEM(out, pos, d);
            continue;
        }
    fail_entry:
        Py_XDECREF(site_words);
        Py_XDECREF(site_anchor);
        Py_XDECREF(alt_words);
        Py_XDECREF(alt_relocs);
        goto fail;
    none_entry:
        Py_XDECREF(site_words);
        Py_XDECREF(site_anchor);
        Py_XDECREF(alt_words);
        Py_XDECREF(alt_relocs);
        goto none;
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
    if (parts)
        for (Py_ssize_t i = 0; i < nsecs; i++)
            Py_XDECREF(parts[i]);
    if (rows)
        for (Py_ssize_t i = 0; i < nsecs; i++)
            Py_XDECREF(rows[i]);
    PyMem_Free(parts);
    PyMem_Free(rows);
    PyMem_Free(rows_made);
    return out;
}

/* -- check_entries.sites_overlap ------------------------------------------------------------
 * sites_overlap(entries) -> bool | None
 * Whether two of the entries' defined sites (a site section index and an original length
 * that are not 0) share a byte: sorted by (section, start, end), one that begins before the
 * one before it in its section ends. None where an entry is not a tuple of 10, a site not a
 * tuple of 3 or more, or a field the test reads not an int of 64 bits (None for a site's
 * section: no section), or an end past 64 bits: the Python's. */
struct span { int64_t s, a, b; };

static int span_cmp(const void *x, const void *y)
{
    const struct span *p = x, *q = y;
    if (p->s != q->s)
        return p->s < q->s ? -1 : 1;
    if (p->a != q->a)
        return p->a < q->a ? -1 : 1;
    if (p->b != q->b)
        return p->b < q->b ? -1 : 1;
    return 0;
}

static void sort_spans(struct span *r, size_t n)
{
    /* ``qsort`` by ``span_cmp``; a few spans (an object's, mostly in order already) by
     * insertion. */
    if (n > 64) {
        qsort(r, n, sizeof *r, span_cmp);
        return;
    }
    for (size_t i = 1; i < n; i++) {
        struct span x = r[i];
        size_t j = i;
        for (; j > 0 && span_cmp(&r[j - 1], &x) > 0; j--)
            r[j] = r[j - 1];
        r[j] = x;
    }
}

static PyObject *sp_sites_overlap(PyObject *self, PyObject *args)
{
    PyObject *entries;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &entries))
        return NULL;
    Py_ssize_t n = PyList_GET_SIZE(entries);
    struct span *rows = PyMem_Malloc(sizeof(struct span) * (size_t)(n ? n : 1));
    if (!rows)
        return PyErr_NoMemory();
    Py_ssize_t k = 0;
    PyObject *out = Py_None;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *e = PyList_GET_ITEM(entries, i);
        if (!PyTuple_Check(e) || PyTuple_GET_SIZE(e) != 10)
            goto done;
        PyObject *site = PyTuple_GET_ITEM(e, 4);
        int64_t olen, sidx, soff;
        int r = as_i64(PyTuple_GET_ITEM(e, 7), &olen);
        if (r < 0) {
            out = NULL;
            goto done;
        }
        if (!r || !PyTuple_Check(site) || PyTuple_GET_SIZE(site) < 3)
            goto done;
        if (!olen)
            continue;
        PyObject *so = PyTuple_GET_ITEM(site, 1);
        if (so == Py_None)
            continue;
        if ((r = as_i64(so, &sidx)) <= 0 || (r = as_i64(PyTuple_GET_ITEM(site, 2), &soff)) <= 0) {
            if (r < 0)
                out = NULL;
            goto done;
        }
        if (!sidx)
            continue;
        rows[k].s = sidx;
        rows[k].a = soff;
        if (__builtin_add_overflow(soff, olen, &rows[k].b))
            goto done;
        k++;
    }
    qsort(rows, (size_t)k, sizeof(struct span), span_cmp);
    out = Py_False;
    for (Py_ssize_t i = 1; i < k; i++) {
        if (rows[i - 1].s == rows[i].s && rows[i - 1].b > rows[i].a) {
            out = Py_True;
            break;
        }
    }
done:
    PyMem_Free(rows);
    Py_XINCREF(out);
    return out;
}

/* -- ElfFile.code_size ----------------------------------------------------------------------
 * code_size(data, shoff, shnum) -> int | None
 * The sizes of the executable sections but NOBITS, summed from the section header table's
 * flags, types and sizes (``shnum`` as ``_header_table`` gives it). None where the table is
 * not in the file or the sum passes 64 bits (the Python's). */
static PyObject *sp_code_size(PyObject *self, PyObject *args)
{
    Py_buffer buf;
    unsigned long long shoff, shnum;
    if (!PyArg_ParseTuple(args, "y*KK", &buf, &shoff, &shnum))
        return NULL;
    uint64_t size = (uint64_t)buf.len, sum = 0;
    const unsigned char *d = buf.buf;
    if (shoff > size || shnum > (size - shoff) / SHDR_SIZE)
        goto none;
    for (uint64_t i = 0; i < shnum; i++) {
        const unsigned char *h = d + shoff + i * SHDR_SIZE;
        if ((rd64(h + 8) & SHF_EXECINSTR) && rd32(h + 4) != SHT_NOBITS &&
                __builtin_add_overflow(sum, rd64(h + 32), &sum))
            goto none;
    }
    PyBuffer_Release(&buf);
    return PyLong_FromUnsignedLongLong(sum);
none:
    PyBuffer_Release(&buf);
    Py_RETURN_NONE;
}

/* -- ElfFile._index_sections -----------------------------------------------------------------
 * index_sections(sections, alloc_too) -> (by_name, symtab, rel) | None
 * The sections by name (lists, in order), the first symbol table (else the first dynamic
 * one, else None), and the relocation sections (RELA, REL, CREL; allocated ones only where
 * ``alloc_too``) by the section they apply to (their info, the same int), in order. None
 * where a section is not a tuple of 11 whose name is a str and whose type, flags and info
 * are ints. */
static int append_to(PyObject *dict, PyObject *key, PyObject *item)
{
    /* ``dict.setdefault(key, []).append(item)``: 0, or -1 on an error. */
    PyObject *got = PyDict_GetItemWithError(dict, key);
    if (got)
        return PyList_Append(got, item);
    if (PyErr_Occurred())
        return -1;
    PyObject *l = PyList_New(1);
    if (!l)
        return -1;
    PyList_SET_ITEM(l, 0, Py_NewRef(item));
    int r = PyDict_SetItem(dict, key, l);
    Py_DECREF(l);
    return r;
}

static PyObject *sp_index_sections(PyObject *self, PyObject *args)
{
    PyObject *secs;
    int alloc_too;
    if (!PyArg_ParseTuple(args, "O!p", &PyList_Type, &secs, &alloc_too))
        return NULL;
    PyObject *by_name = PyDict_New(), *rel = PyDict_New();
    PyObject *symtab = NULL, *dynsym = NULL, *out = NULL;
    if (!by_name || !rel)
        goto fail;
    Py_ssize_t n = PyList_GET_SIZE(secs);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *s = PyList_GET_ITEM(secs, i);
        if (!PyTuple_Check(s) || PyTuple_GET_SIZE(s) != 11)
            goto none;
        PyObject *name = PyTuple_GET_ITEM(s, 1), *t = PyTuple_GET_ITEM(s, 2);
        PyObject *f = PyTuple_GET_ITEM(s, 3), *info = PyTuple_GET_ITEM(s, 8);
        if (!PyUnicode_CheckExact(name) || !PyLong_CheckExact(t) || !PyLong_CheckExact(f) ||
                !PyLong_CheckExact(info))
            goto none;
        if (append_to(by_name, name, s) < 0)
            goto fail;
        uint64_t typ = PyLong_AsUnsignedLongLongMask(t);
        uint64_t flags = PyLong_AsUnsignedLongLongMask(f);
        if (PyErr_Occurred())
            goto fail;
        if (typ == 2) {  /* SHT_SYMTAB */
            if (!symtab)
                symtab = s;
        } else if (typ == 11) {  /* SHT_DYNSYM */
            if (!dynsym)
                dynsym = s;
        } else if ((typ == 4 || typ == 9 || typ == 0x40000014) &&
                   (alloc_too || !(flags & 0x2))) {  /* RELA, REL, CREL; SHF_ALLOC */
            if (append_to(rel, info, s) < 0)
                goto fail;
        }
    }
    if (!symtab)
        symtab = dynsym ? dynsym : Py_None;
    out = PyTuple_Pack(3, by_name, symtab, rel);
fail:
    Py_XDECREF(by_name);
    Py_XDECREF(rel);
    return out;
none:
    Py_DECREF(by_name);
    Py_DECREF(rel);
    Py_RETURN_NONE;
}

/* -- check_objects._moves_fine ---------------------------------------------------------------
 * moves_fine(code, offset, abi, parts) -> (fine, symbols) | None
 * Whether each word of a replacement (``code``, at ``offset`` of its section) is plain or
 * one a patcher moves (``insn.decode``'s kinds, and ``insn.profile_problem`` under ``abi``),
 * in order, stopping at the first that is not; ``symbols``: the symbol indexes of the
 * relocations of the branches met on the way (the Python reads each, as ``_moves_fine``
 * does). ``parts``: the bytes of the section's RELA sections (whole entries), in order, or
 * None. None where a word is one ``insn.classify`` asks capstone about, where a branch or
 * ADRP is met and ``parts`` is None, where ``code`` is not whole words, or ``abi`` is not
 * a profile. */
enum { K_PLAIN, K_BRANCH, K_BCCOND, K_ADRP, K_STOP };

static int decode_kind(uint32_t w, int64_t *adrp_off)
{
    /* insn.decode's kind: K_STOP for "immovable" and "pcrel-unknown"; a B.cond with bit 4
     * set (BC.cond) is K_BCCOND; an ADRP's page offset in *adrp_off. */
    unsigned group = (w >> 25) & 0xF;
    if ((group & 0xE) == 0xA) {
        uint32_t top = w & 0x7E000000;
        if (top == 0x14000000 || top == 0x16000000 || top == 0x34000000 || top == 0x36000000)
            return K_BRANCH;
        if ((w & 0xFF000000) == 0x54000000)
            return (w & 0x10) ? K_BCCOND : K_BRANCH;
        if (top == 0x74000000)
            return K_STOP;
        return K_PLAIN;
    }
    if ((group & 0xE) == 0x8) {
        if ((w & 0x1F000000) == 0x10000000) {
            if (!(w >> 31))
                return K_STOP;
            int64_t imm = (int64_t)(((w >> 3) & 0x1FFFFC) | ((w >> 29) & 3));
            if (imm >> 20)
                imm -= (int64_t)1 << 21;
            *adrp_off = imm * 4096;
            return K_ADRP;
        }
        return K_PLAIN;
    }
    if ((group & 0x5) == 0x4)
        return (w & 0x3B000000) == 0x18000000 ? K_STOP : K_PLAIN;
    return K_PLAIN;
}

static int may_be_pcrel(uint32_t w)
{
    /* insn._may_be_pcrel */
    if (w >> 26 == 0x35)
        return 0;
    unsigned op0 = (w >> 25) & 0xF;
    if ((op0 & 0x7) == 0x5 || (op0 & 0x7) == 0x7 || (op0 & 0xE) == 0x8 || (op0 & 0x5) == 0x4)
        return 0;
    return 1;
}

static int abi_xen(PyObject *abi_obj)
{
    /* 1 for xen-v4.17, 0 for a Linux profile, -1 for anything else; -2 on an error. */
    if (!PyUnicode_CheckExact(abi_obj))
        return -1;
    const char *abi = PyUnicode_AsUTF8(abi_obj);
    if (!abi)
        return -2;
    if (!strcmp(abi, "xen-v4.17"))
        return 1;
    if (!strcmp(abi, "linux-v4.17") || !strcmp(abi, "linux-v6.1"))
        return 0;
    return -1;
}

static PyObject *moves_core(const unsigned char *code, Py_ssize_t len, int64_t offset,
                            int xen, PyObject *parts)
{
    /* moves_fine's answer (a new reference: the pair, or None), or NULL on an error. */
    if (offset < 0 || len % 4)
        Py_RETURN_NONE;
    if (parts != Py_None) {
        if (!PyList_Check(parts))
            Py_RETURN_NONE;
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(parts); k++) {
            PyObject *b = PyList_GET_ITEM(parts, k);
            if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) % RELA_SIZE)
                Py_RETURN_NONE;
        }
    }
    PyObject *syms = PyList_New(0), *out = NULL;
    if (!syms)
        return NULL;
    int fine = 1;
    for (Py_ssize_t i = 0; i < len / 4; i++) {
        uint32_t w = rd32(code + 4 * i);
        int64_t page = 0;
        int k = decode_kind(w, &page);
        if (k == K_PLAIN) {
            if (may_be_pcrel(w))
                goto none;  /* capstone's second opinion: the Python's */
            continue;
        }
        if (k == K_STOP) {
            fine = 0;
            break;
        }
        if (parts == Py_None)
            goto none;
        /* RelocMap.get: the first relocation at the offset, in the first part that has one */
        uint64_t at = (uint64_t)offset + 4 * (uint64_t)i;
        int found = 0;
        uint64_t sym = 0;
        for (Py_ssize_t p = 0; p < PyList_GET_SIZE(parts) && !found; p++) {
            PyObject *b = PyList_GET_ITEM(parts, p);
            const unsigned char *r = (const unsigned char *)PyBytes_AS_STRING(b);
            Py_ssize_t nr = PyBytes_GET_SIZE(b) / RELA_SIZE;
            for (Py_ssize_t j = 0; j < nr; j++) {
                if (rd64(r + j * RELA_SIZE) == at) {
                    found = 1;
                    sym = rd64(r + j * RELA_SIZE + 8) >> 32;
                    break;
                }
            }
        }
        if (k != K_ADRP && found) {
            PyObject *v = PyLong_FromUnsignedLongLong(sym);
            if (!v || PyList_Append(syms, v) < 0) {
                Py_XDECREF(v);
                goto fail;
            }
            Py_DECREF(v);
        }
        /* insn.profile_problem */
        if (k == K_BCCOND || (k == K_ADRP && (xen || page < -((int64_t)1 << 31) ||
                                               page > ((int64_t)1 << 31) - 4096))) {
            fine = 0;
            break;
        }
    }
    out = PyTuple_Pack(2, fine ? Py_True : Py_False, syms);
fail:
    Py_DECREF(syms);
    return out;
none:
    Py_DECREF(syms);
    Py_RETURN_NONE;
}

static PyObject *sp_moves_fine(PyObject *self, PyObject *args)
{
    Py_buffer cb;
    int64_t offset = 0;
    PyObject *off_obj, *abi_obj, *parts, *out = NULL;
    if (!PyArg_ParseTuple(args, "y*OOO", &cb, &off_obj, &abi_obj, &parts))
        return NULL;
    int r = as_i64(off_obj, &offset), xen = r > 0 ? abi_xen(abi_obj) : 0;
    if (r < 0 || xen == -2)
        out = NULL;
    else if (!r || xen < 0)
        out = Py_NewRef(Py_None);
    else
        out = moves_core(cb.buf, cb.len, offset, xen, parts);
    PyBuffer_Release(&cb);
    return out;
}

/* -- check_objects.check_object_branches' words, their relocations looked up ------------------
 * object_branch_found(data, ranges, parts, shndx) -> (found, relocated) | None
 * ``object_branch_words(data, ranges)``, its hits and marked words split by the relocations
 * of the section (``parts``: the bytes of its RELA sections, whole entries, in order, as
 * ``_rela_parts`` gives them): ``found``, (offset, shndx, target) of each hit that no
 * relocation applies to; ``relocated``, (offset, symbol, addend) of the first relocation
 * (the first part's that has one, its first) at each marked word that has one. None where
 * ``object_branch_words`` gives None or a part is not bytes of whole entries. */
static int first_reloc(PyObject *parts, uint64_t at, uint64_t *sym, int64_t *addend)
{
    for (Py_ssize_t p = 0; p < PyList_GET_SIZE(parts); p++) {
        PyObject *b = PyList_GET_ITEM(parts, p);
        const unsigned char *r = (const unsigned char *)PyBytes_AS_STRING(b);
        Py_ssize_t nr = PyBytes_GET_SIZE(b) / RELA_SIZE;
        for (Py_ssize_t j = 0; j < nr; j++)
            if (rd64(r + j * RELA_SIZE) == at) {
                *sym = rd64(r + j * RELA_SIZE + 8) >> 32;
                *addend = (int64_t)rd64(r + j * RELA_SIZE + 16);
                return 1;
            }
    }
    return 0;
}

static PyObject *sp_object_branch_words(PyObject *self, PyObject *args);

static PyObject *sp_object_branch_found(PyObject *self, PyObject *args)
{
    PyObject *data, *ranges, *parts, *shndx;
    if (!PyArg_ParseTuple(args, "OO!O!O", &data, &PyList_Type, &ranges, &PyList_Type, &parts,
                          &shndx))
        return NULL;
    for (Py_ssize_t k = 0; k < PyList_GET_SIZE(parts); k++) {
        PyObject *b = PyList_GET_ITEM(parts, k);
        if (!PyBytes_Check(b) || PyBytes_GET_SIZE(b) % RELA_SIZE)
            Py_RETURN_NONE;
    }
    PyObject *pair = PyTuple_Pack(2, data, ranges);
    if (!pair)
        return NULL;
    PyObject *words = sp_object_branch_words(self, pair);
    Py_DECREF(pair);
    if (!words || words == Py_None)
        return words;
    PyObject *hits = PyTuple_GET_ITEM(words, 0), *marked = PyTuple_GET_ITEM(words, 1);
    PyObject *found = PyList_New(0), *relocated = PyList_New(0), *out = NULL;
    if (!found || !relocated)
        goto done;
    uint64_t sym;
    int64_t addend;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(hits); i++) {
        PyObject *h = PyList_GET_ITEM(hits, i);  /* (offset, word, target) */
        PyObject *off = PyTuple_GET_ITEM(h, 0);
        uint64_t at = PyLong_AsUnsignedLongLong(off);
        if (PyErr_Occurred())
            goto done;
        if (first_reloc(parts, at, &sym, &addend))
            continue;
        PyObject *t = PyTuple_Pack(3, off, shndx, PyTuple_GET_ITEM(h, 2));
        if (!t || PyList_Append(found, t) < 0) {
            Py_XDECREF(t);
            goto done;
        }
        Py_DECREF(t);
    }
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(marked); i++) {
        PyObject *off = PyList_GET_ITEM(marked, i);
        uint64_t at = PyLong_AsUnsignedLongLong(off);
        if (PyErr_Occurred())
            goto done;
        if (!first_reloc(parts, at, &sym, &addend))
            continue;
        PyObject *t = Py_BuildValue("(OKL)", off, (unsigned long long)sym, (long long)addend);
        if (!t || PyList_Append(relocated, t) < 0) {
            Py_XDECREF(t);
            goto done;
        }
        Py_DECREF(t);
    }
    out = PyTuple_Pack(2, found, relocated);
done:
    Py_XDECREF(found);
    Py_XDECREF(relocated);
    Py_DECREF(words);
    return out;
}

/* -- elf.map_file, for a small file ----------------------------------------------------------
 * read_small(path, below) -> bytes | int | None
 * A regular file's bytes, where it opens and is not empty and smaller than ``below``, read
 * whole: open, fstat, read, close. A regular file of ``below`` bytes or more: its open file
 * descriptor, for the caller to map and close. None otherwise, or on any error (the Python
 * then reads it, or names the problem). */
static PyObject *sp_read_small(PyObject *self, PyObject *args)
{
    PyObject *path, *fs = NULL;
    long long below;
    if (!PyArg_ParseTuple(args, "OL", &path, &below))
        return NULL;
    if (!PyUnicode_FSConverter(path, &fs)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    const char *name = PyBytes_AS_STRING(fs);
    if ((Py_ssize_t)strlen(name) != PyBytes_GET_SIZE(fs)) {
        Py_DECREF(fs);
        Py_RETURN_NONE;
    }
    PyObject *out = NULL;
    int fd;
    struct stat st;
    Py_BEGIN_ALLOW_THREADS
    fd = open(name, O_RDONLY | O_CLOEXEC);
    Py_END_ALLOW_THREADS
    Py_DECREF(fs);
    if (fd < 0)
        Py_RETURN_NONE;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0)
        goto done;
    if ((long long)st.st_size >= below) {
        out = PyLong_FromLong(fd);
        if (out)
            return out;  /* (the caller's to close) */
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)st.st_size);
    if (!out)
        goto done;
    char *buf = PyBytes_AS_STRING(out);
    Py_ssize_t got = 0, want = (Py_ssize_t)st.st_size;
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    while (got < want) {
        ssize_t n = read(fd, buf + got, (size_t)(want - got));
        if (n <= 0) {
            bad = 1;  /* an error, or the file cut short meanwhile: the Python's */
            break;
        }
        got += n;
    }
    Py_END_ALLOW_THREADS
    if (bad)
        Py_CLEAR(out);
done:
    close(fd);
    if (!out && !PyErr_Occurred())
        Py_RETURN_NONE;
    return out;
}

/* -- records.make_plain: an object's whole record, as plain data ------------------------------
 * object_plain(data, section_names, caps, facts, maybe_not_plain, abi, fmt[, with_digest])
 *   -> tuple | None
 * ``make_record(Input.load(elf), options, with_digest=False).to_plain()`` of an object
 * (``data``: its bytes, its ELF header checked; ``section_names``: ``elf._section_names``,
 * a section name table's strings by offset), its section headers read as ``sections`` reads
 * them, where
 * its checks make no finding: its table read from its relocations as the assembler writes
 * them (``table._entries_in_order``), no table finding, every entry passed by ``may_find``
 * or a callback it leaves undefined (its ``Deferred``), no two sites sharing a byte, no
 * branch ALT017 has to look at; ``caps``/``facts``/``maybe_not_plain`` as ``may_find``'s,
 * ``abi`` the profile's,
 * ``fmt`` the record format. None for anything else, and where a read would meet an error:
 * the Python then makes the record, and says what is wrong. ``with_digest`` (a link's
 * record): the last field is the digest's packed columns as a tuple (``op_digest``), or
 * b"" where the Python is to make the digest. */
#define SHT_RELA_ 4
#define SHT_REL_ 9
#define SHT_CREL_ 0x40000014
#define SHT_SYMTAB_ 2
#define SHT_DYNSYM_ 11
#define SHF_ALLOC_ 0x2
#define STB_WEAK_ 2
#define MAX_PARTS 8

struct op_sec {
    uint32_t name_at;  /* its name's offset in the section name table */
    uint64_t type, flags, offset, size, link, info, entsize;
};

struct op_parts {  /* a section's RELA sections' bytes, as ``_rela_parts`` gives them */
    int state;  /* 0: not read; 1: read; -1: None (the Python's other ways) */
    int n;
    const unsigned char *p[MAX_PARTS];
    uint64_t len[MAX_PARTS];
};

struct op_entry {
    uint64_t ssym, asym;  /* the relocations' symbols */
    int64_t soff, aoff;  /* the places' offsets (value + addend) */
    uint64_t sidx, aidx;  /* the places' section indexes */
    unsigned cap, olen, alen;
    int cb;  /* a callback */
};

struct op_ctx {
    const unsigned char *d;
    uint64_t size;
    Py_ssize_t nsecs;
    struct op_sec *secs;
    const unsigned char *sym, *str;
    uint64_t nsyms, strlen_;
    int have_symtab;
    struct op_parts *parts;
};

static const unsigned char *op_bytes(struct op_ctx *c, Py_ssize_t i, uint64_t *len)
{
    /* ``section_data`` of section ``i`` where it reads without an error (NOBITS: empty);
     * NULL otherwise. */
    struct op_sec *s = &c->secs[i];
    if (s->type == SHT_NOBITS) {
        *len = 0;
        return c->d;
    }
    if (s->offset > c->size || s->size > c->size - s->offset)
        return NULL;
    *len = s->size;
    return c->d + s->offset;
}

static int op_rela_parts(struct op_ctx *c, Py_ssize_t idx)
{
    /* ``_rela_parts`` of section ``idx`` (few=256): 1 where read (``c->parts[idx]``), 0
     * where the Python reads otherwise. */
    struct op_parts *p = &c->parts[idx];
    if (p->state)
        return p->state > 0;
    p->state = -1;
    uint64_t total = 0;
    for (Py_ssize_t i = 0; i < c->nsecs; i++) {
        struct op_sec *s = &c->secs[i];
        if (!(s->type == SHT_RELA_ || s->type == SHT_REL_ || s->type == SHT_CREL_)
            || s->info != (uint64_t)idx)
            continue;
        if (s->type != SHT_RELA_ || s->size % RELA_SIZE || p->n == MAX_PARTS)
            return 0;
        total += s->size;
        if (total > 256 * RELA_SIZE)
            return 0;
        uint64_t len;
        const unsigned char *b = op_bytes(c, i, &len);
        if (!b)
            return 0;
        p->p[p->n] = b;
        p->len[p->n] = len;
        p->n++;
    }
    p->state = 1;
    return 1;
}

static int op_first_reloc(struct op_parts *p, uint64_t at, uint64_t *sym, int64_t *addend)
{
    for (int k = 0; k < p->n; k++)
        for (uint64_t j = 0; j < p->len[k] / RELA_SIZE; j++) {
            const unsigned char *r = p->p[k] + j * RELA_SIZE;
            if (rd64(r) == at) {
                *sym = rd64(r + 8) >> 32;
                *addend = (int64_t)rd64(r + 16);
                return 1;
            }
        }
    return 0;
}

static int op_symbol(struct op_ctx *c, uint64_t i, unsigned *shndx, unsigned *bind)
{
    /* ``elf.symbol(i)``: 1 where it reads (its section index and binding), 0 where it
     * raises IndexError (which its callers pass), -1 where the Python is to read it. */
    if (!c->have_symtab || i >= c->nsyms)
        return 0;
    const unsigned char *s = c->sym + i * SYM_SIZE;
    *shndx = rd16(s + 6);
    *bind = s[4] >> 4;
    return *shndx == SHN_XINDEX ? -1 : 1;
}

static int op_moves(struct op_ctx *c, Py_ssize_t idx, const unsigned char *code, int64_t len,
                    int64_t offset, int xen)
{
    /* ``_moves_fine`` of a replacement whose words are not all plain by their top byte: 1
     * fine, 0 not, -1 where the Python decides (``moves_core``'s None, or a symbol it reads
     * that this does not). */
    if (offset < 0 || len % 4)
        return -1;
    int have_parts = -1;
    for (int64_t i = 0; i < len / 4; i++) {
        uint32_t w = rd32(code + 4 * i);
        int64_t page = 0;
        int k = decode_kind(w, &page);
        if (k == K_PLAIN) {
            if (may_be_pcrel(w))
                return -1;
            continue;
        }
        if (k == K_STOP)
            return 0;
        if (have_parts < 0)
            have_parts = op_rela_parts(c, idx);
        if (!have_parts)
            return -1;
        uint64_t sym;
        int64_t addend;
        if (k != K_ADRP && op_first_reloc(&c->parts[idx], (uint64_t)offset + 4 * (uint64_t)i,
                                          &sym, &addend)) {
            unsigned sh, bind;
            if (op_symbol(c, sym, &sh, &bind) < 0)
                return -1;
        }
        if (k == K_BCCOND || (k == K_ADRP && (xen || page < -((int64_t)1 << 31) ||
                                               page > ((int64_t)1 << 31) - 4096)))
            return 0;
    }
    return 1;
}

static int op_branches(struct op_ctx *c, Py_ssize_t shndx, const int64_t *starts,
                       const int64_t *ends, Py_ssize_t nr, int64_t *sa, int64_t *sb,
                       const unsigned char *inrange)
{
    /* ``check_object_branches`` of one section of replacements (its ranges' starts and
     * ends, sorted; ``sa``/``sb``: room for ``nr`` spans; ``inrange``: 1 for each section
     * that has ranges): 0 where it finds no branch to look at (``found`` empty), -1 where
     * the Python is to look. */
    uint64_t len, sym, tgt;
    int64_t addend;
    const unsigned char *d = op_bytes(c, shndx, &len);
    if (!d || !op_rela_parts(c, shndx))
        return -1;
    struct op_parts *p = &c->parts[shndx];
    __int128 hi = ends[0];
    for (Py_ssize_t i = 1; i < nr; i++)
        if (ends[i] > hi)
            hi = ends[i];
    for (int64_t k = 0; k < (int64_t)(len / 4); k++)
        if (is_branch_byte(d[4 * k + 3])
            && lands_in(rd32(d + 4 * k), k, starts, ends, nr, hi, &tgt)
            && !op_first_reloc(p, (uint64_t)(4 * k), &sym, &addend))
            return -1;  /* a branch the assembler resolved into a replacement */
    Py_ssize_t ns = merged_spans(starts, ends, nr, (int64_t)len, sa, sb);
    for (Py_ssize_t i = 0; i < ns; i++)
        for (int64_t k = sa[i]; k < sb[i]; k++) {
            if (!is_branch_byte(d[4 * k + 3])
                || !op_first_reloc(p, (uint64_t)(4 * k), &sym, &addend))
                continue;
            unsigned sh, bind;
            int got = op_symbol(c, sym, &sh, &bind);
            if (got < 0 || (got && sh < c->nsecs && inrange[sh] && bind != STB_WEAK_))
                return -1;  /* a relocated branch into a replacement the object defines */
        }
    return 0;
}

static int name_is_n(const unsigned char *names, uint64_t len, uint64_t off, const char *want,
                     uint64_t n)
{
    /* Whether the name at ``off`` of a section name table reads as ``want`` (ASCII, ``n``
     * bytes): its bytes, to a NUL or the table's end. */
    return off <= len && len - off >= n && (len - off == n || names[off + n] == 0)
        && !memcmp(names + off, want, n);
}

#define name_is(names, len, off, want) name_is_n(names, len, off, want, sizeof(want) - 1)

/* -- records.digest's packed columns (``_pack_columns``), from an object's bytes -------------
 * What ``object_plain`` gives with ``with_digest``: ``_pack_columns(digest(inp, profile))`` of
 * an object ``object_plain`` makes whole, made from the entries it read. The names are the
 * objects the Python's would be, shared where the Python's are (a pickle of the columns keeps
 * one copy of a string it meets twice): a section's name from the section name table's
 * strings by offset (``ElfFile.sections``), a symbol's as ``elf.symbols`` decodes it (one
 * string for each offset that starts a string of the table, ``_string_table``; a tail of a
 * longer name, its own for each symbol), a place's symbol one for each symbol
 * (``table._targets``). None (the Python makes the digest) where a section's relocations
 * are not only RELA sections of whole relocations, a symbol uses the extended section index
 * table, the string table does not start with its empty string, or a replacement's relocated
 * branch is against a section's symbol, an unnamed one or one outside the sections. */
struct dg_row {
    uint64_t value, pos;
    int glob;
};

struct dg_ctx {
    struct op_ctx *c;
    PyObject *strings;  /* the section names by offset */
    const unsigned char *nametab;
    uint64_t namelen;
    PyObject **secname;  /* each section's name (shared with ``object_plain``'s) */
    signed char *rel_state;  /* each section's relocations: 0 not read, 1 read, -1 not here */
    uint64_t **rel_offs;
    Py_ssize_t *rel_n;
    signed char *rows_state;  /* each section's anchors: 0 not made, 1 made */
    struct dg_row **rows;
    Py_ssize_t *nrows;
    PyObject **symname;  /* each symbol's name, as ``elf.symbols`` has it */
    PyObject *by_offset;  /* the names that start a string of the table, by offset */
    PyObject **altname;  /* each symbol's name as a place's symbol (Place.symbol) */
    char *altname_made;
};

static PyObject *dg_secname(struct dg_ctx *g, Py_ssize_t i)
{
    /* borrowed; NULL on an error */
    if (!g->secname[i]) {
        uint32_t at = g->c->secs[i].name_at;
        PyObject *key = PyLong_FromUnsignedLong(at);
        if (!key)
            return NULL;
        PyObject *got = PyDict_GetItemWithError(g->strings, key);
        Py_DECREF(key);
        if (got)
            Py_INCREF(got);
        else if (PyErr_Occurred() || !(got = cstr(g->nametab, (Py_ssize_t)g->namelen, at)))
            return NULL;
        g->secname[i] = got;
    }
    return g->secname[i];
}

static PyObject *dg_symname(struct dg_ctx *g, uint64_t i)
{
    /* borrowed; NULL on an error */
    if (g->symname[i])
        return g->symname[i];
    struct op_ctx *c = g->c;
    uint32_t off = rd32(c->sym + i * SYM_SIZE);
    PyObject *got;
    if (off >= c->strlen_ || off == 0)
        got = PyUnicode_FromStringAndSize("", 0);
    else if (c->str[off - 1] == 0) {  /* a string of the table: one for its offset */
        PyObject *key = PyLong_FromUnsignedLong(off);
        if (!key)
            return NULL;
        got = PyDict_GetItemWithError(g->by_offset, key);
        if (got)
            Py_INCREF(got);
        else if (!PyErr_Occurred() && (got = cstr(c->str, (Py_ssize_t)c->strlen_, off))
                 && PyDict_SetItem(g->by_offset, key, got) < 0)
            Py_CLEAR(got);
        Py_DECREF(key);
    } else
        got = cstr(c->str, (Py_ssize_t)c->strlen_, off);
    g->symname[i] = got;
    return got;
}

static PyObject *dg_altname(struct dg_ctx *g, uint64_t i)
{
    /* borrowed (None where the place has no symbol); NULL on an error */
    if (!g->altname_made[i]) {
        struct op_ctx *c = g->c;
        const unsigned char *s = c->sym + i * SYM_SIZE;
        PyObject *got;
        if (rd16(s + 6) != SHN_UNDEF && (s[4] & 0xf) == STT_SECTION)
            got = Py_NewRef(Py_None);
        else {
            got = cstr(c->str, (Py_ssize_t)c->strlen_, rd32(s));
            if (!got)
                return NULL;
            if (PyUnicode_GET_LENGTH(got) == 0) {
                Py_DECREF(got);
                got = Py_NewRef(Py_None);
            }
        }
        g->altname[i] = got;
        g->altname_made[i] = 1;
    }
    return g->altname[i];
}

static int u64_cmp(const void *x, const void *y)
{
    uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
    return a < b ? -1 : a > b;
}

static int dg_relocs(struct dg_ctx *g, Py_ssize_t sh)
{
    /* The offsets section ``sh``'s relocations apply at, sorted: 1, or 0 where they are not
     * RELA sections of whole relocations (the Python's), -1 on an error. */
    if (g->rel_state[sh])
        return g->rel_state[sh] > 0;
    struct op_ctx *c = g->c;
    g->rel_state[sh] = -1;
    Py_ssize_t total = 0;
    for (Py_ssize_t i = 0; i < c->nsecs; i++) {
        struct op_sec *s = &c->secs[i];
        if (!(s->type == SHT_RELA_ || s->type == SHT_REL_ || s->type == SHT_CREL_)
            || s->info != (uint64_t)sh)
            continue;
        if (s->type != SHT_RELA_ || s->size % RELA_SIZE)
            return 0;
        uint64_t len;
        if (!op_bytes(c, i, &len))
            return 0;
        total += (Py_ssize_t)(len / RELA_SIZE);
    }
    uint64_t *offs = PyMem_Malloc(sizeof *offs * (size_t)(total ? total : 1));
    if (!offs) {
        PyErr_NoMemory();
        return -1;
    }
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < c->nsecs; i++) {
        struct op_sec *s = &c->secs[i];
        if (s->type != SHT_RELA_ || s->info != (uint64_t)sh)
            continue;
        uint64_t len = 0;
        const unsigned char *b = op_bytes(c, i, &len);
        for (uint64_t j = 0; b && j < len / RELA_SIZE; j++)
            offs[k++] = rd64(b + j * RELA_SIZE);
    }
    qsort(offs, (size_t)k, sizeof *offs, u64_cmp);
    g->rel_offs[sh] = offs;
    g->rel_n[sh] = k;
    g->rel_state[sh] = 1;
    return 1;
}

static int dg_relocated(struct dg_ctx *g, Py_ssize_t sh, uint64_t at)
{
    /* whether a relocation applies at ``at`` (``dg_relocs`` made) */
    const uint64_t *o = g->rel_offs[sh];
    Py_ssize_t lo = 0, hi = g->rel_n[sh];
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (o[mid] < at)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < g->rel_n[sh] && o[lo] == at;
}

static int dg_first_reloc(struct dg_ctx *g, Py_ssize_t sh, uint64_t at, uint64_t *sym,
                          int64_t *addend)
{
    /* ``RelocMap.get``: the first relocation at ``at``, of the first section that has one */
    struct op_ctx *c = g->c;
    for (Py_ssize_t i = 0; i < c->nsecs; i++) {
        struct op_sec *s = &c->secs[i];
        if (s->type != SHT_RELA_ || s->info != (uint64_t)sh)
            continue;
        uint64_t len;
        const unsigned char *b = op_bytes(c, i, &len);
        for (uint64_t j = 0; b && j < len / RELA_SIZE; j++)
            if (rd64(b + j * RELA_SIZE) == at) {
                *sym = rd64(b + j * RELA_SIZE + 8) >> 32;
                *addend = (int64_t)rd64(b + j * RELA_SIZE + 16);
                return 1;
            }
    }
    return 0;
}

static int row_cmp(const void *x, const void *y)
{
    /* (value, is_global, -pos): ``Anchors``' order */
    const struct dg_row *a = x, *b = y;
    if (a->value != b->value)
        return a->value < b->value ? -1 : 1;
    if (a->glob != b->glob)
        return a->glob - b->glob;
    return a->pos > b->pos ? -1 : a->pos < b->pos;
}

static int dg_rows(struct dg_ctx *g, Py_ssize_t sh)
{
    /* ``Anchors._section``: the named symbols of section ``sh`` that can anchor a place,
     * sorted; 0, or -1 on an error */
    if (g->rows_state[sh])
        return 0;
    struct op_ctx *c = g->c;
    Py_ssize_t k = 0;
    struct dg_row *r = NULL;
    for (int pass = 0; pass < 2; pass++) {
        k = 0;
        for (uint64_t i = 0; i < c->nsyms; i++) {
            const unsigned char *s = c->sym + i * SYM_SIZE;
            uint32_t off = rd32(s);
            unsigned type = s[4] & 0xf, bind = s[4] >> 4;
            if (rd16(s + 6) != sh || type == STT_SECTION || bind == STB_WEAK_
                || off >= c->strlen_ || c->str[off] == 0 || c->str[off] == '$'
                || (c->str[off] == '.' && off + 1 < c->strlen_ && c->str[off + 1] == 'L'))
                continue;
            if (pass) {
                r[k].value = rd64(s + 8);
                r[k].pos = i;
                r[k].glob = bind != STB_LOCAL;
            }
            k++;
        }
        if (!pass) {
            r = PyMem_Malloc(sizeof *r * (size_t)(k ? k : 1));
            if (!r) {
                PyErr_NoMemory();
                return -1;
            }
        }
    }
    qsort(r, (size_t)k, sizeof *r, row_cmp);
    g->rows[sh] = r;
    g->nrows[sh] = k;
    g->rows_state[sh] = 1;
    return 0;
}

static const struct dg_row *dg_anchor(struct dg_ctx *g, Py_ssize_t sh, uint64_t off)
{
    /* ``Anchors.at``: the last row at or before ``off`` (``dg_rows`` made), or NULL */
    const struct dg_row *r = g->rows[sh];
    Py_ssize_t lo = 0, hi = g->nrows[sh];
    while (lo < hi) {
        Py_ssize_t mid = (lo + hi) / 2;
        if (off < r[mid].value)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo ? &r[lo - 1] : NULL;
}

static PyObject *dg_target(struct dg_ctx *g, Py_ssize_t sh, uint64_t at)
{
    /* ``_reloc_target`` of a relocated branch (its target's row of ``targets``: name, global
     * name, addend, anchor); None where the Python is to make it, NULL on an error */
    struct op_ctx *c = g->c;
    uint64_t sym;
    int64_t addend;
    if (!dg_first_reloc(g, sh, at, &sym, &addend) || sym >= c->nsyms)
        return Py_NewRef(Py_None);
    const unsigned char *s = c->sym + sym * SYM_SIZE;
    uint32_t off = rd32(s);
    uint16_t shndx = rd16(s + 6);
    unsigned type = s[4] & 0xf, bind = s[4] >> 4;
    if (type == STT_SECTION || off >= c->strlen_ || c->str[off] == 0)
        return Py_NewRef(Py_None);  /* (a section's symbol: named by the Symbolizer) */
    PyObject *anchor = Py_None;
    __int128 toff = (__int128)rd64(s + 8) + addend;
    if (shndx != SHN_UNDEF) {
        if (shndx >= c->nsecs || toff < 0 || toff > INT64_MAX)
            return Py_NewRef(Py_None);
        if (dg_rows(g, shndx) < 0)
            return NULL;
        const struct dg_row *r = dg_anchor(g, shndx, (uint64_t)toff);
        if (r) {
            PyObject *nm = dg_symname(g, r->pos);
            if (!nm)
                return NULL;
            anchor = Py_BuildValue("(OOK)", nm, r->glob ? Py_True : Py_False,
                                   (unsigned long long)((uint64_t)toff - r->value));
            if (!anchor)
                return NULL;
        }
    }
    if (anchor == Py_None)
        Py_INCREF(anchor);
    PyObject *name = dg_symname(g, sym);
    if (!name) {
        Py_DECREF(anchor);
        return NULL;
    }
    PyObject *got = Py_BuildValue("(OOLN)", name, bind != STB_LOCAL ? name : Py_None,
                                  (long long)addend, anchor);
    return got;
}

static PyObject *dg_columns(struct dg_ctx *g, const struct op_entry *es, uint64_t n,
                            Py_ssize_t table)
{
    if (!n)
        return Py_BuildValue("(()()()yyy()yy()yyyy())", "", "", "", "", "", "", "", "", "");
    struct op_ctx *c = g->c;
    PyObject *out = NULL, *tabname = dg_secname(g, table);
    if (!tabname)
        return NULL;
    uint64_t most = 0;
    for (uint64_t i = 0; i < n; i++)
        most += es[i].olen / 4 > es[i].alen / 4 ? es[i].olen / 4 : es[i].alen / 4;
    PyObject *t_sec = PyTuple_New((Py_ssize_t)n), *s_sec = PyTuple_New((Py_ssize_t)n);
    PyObject *s_off = PyTuple_New((Py_ssize_t)n), *a_name = PyTuple_New((Py_ssize_t)n);
    PyObject *a_sym = PyTuple_New((Py_ssize_t)n), *targets = PyList_New(0);
    unsigned char *s_count = PyMem_Malloc(n), *a_glob = PyMem_Malloc(n);
    unsigned char *a_def = PyMem_Malloc(n), *a_count = PyMem_Malloc(n);
    uint64_t *delta = PyMem_Malloc(8 * n);
    uint32_t *s_words = PyMem_Malloc(4 * (most + 1)), *a_words = PyMem_Malloc(4 * (most + 1));
    unsigned char *known = PyMem_Malloc(most + 1), *marks = PyMem_Malloc(most + 1);
    uint64_t ns = 0, na = 0;
    int some_unknown = 0, some_mark = 0;
    if (!t_sec || !s_sec || !s_off || !a_name || !a_sym || !targets)
        goto fail;
    if (!s_count || !a_glob || !a_def || !a_count || !delta || !s_words || !a_words || !known
        || !marks) {
        PyErr_NoMemory();
        goto fail;
    }
    for (uint64_t i = 0; i < n; i++) {
        const struct op_entry *e = &es[i];
        Py_ssize_t sh = (Py_ssize_t)e->sidx;
        PyObject *nm = dg_secname(g, sh), *off = PyLong_FromLongLong(e->soff);
        if (!nm || !off) {
            Py_XDECREF(off);
            goto fail;
        }
        PyTuple_SET_ITEM(t_sec, (Py_ssize_t)i, Py_NewRef(tabname));
        PyTuple_SET_ITEM(s_sec, (Py_ssize_t)i, Py_NewRef(nm));
        PyTuple_SET_ITEM(s_off, (Py_ssize_t)i, off);
        /* the site's words, None (0, not known) where relocated */
        uint64_t len, nw = e->olen / 4;
        const unsigned char *d = op_bytes(c, sh, &len);
        int got = d ? dg_relocs(g, sh) : 0;
        if (got <= 0) {
            if (got < 0)
                goto fail;
            goto none;
        }
        if ((uint64_t)e->soff + 4 * nw > len)
            s_count[i] = 1;
        else {
            s_count[i] = (unsigned char)(nw + 1);
            for (uint64_t k = 0; k < nw; k++) {
                uint64_t at = (uint64_t)e->soff + 4 * k;
                int moved = dg_relocated(g, sh, at);
                s_words[ns] = moved ? 0 : rd32(d + at);
                known[ns++] = !moved;
                some_unknown |= moved;
            }
        }
        /* the site's anchor */
        if (dg_rows(g, sh) < 0)
            goto fail;
        const struct dg_row *r = dg_anchor(g, sh, (uint64_t)e->soff);
        PyObject *an = Py_None;
        if (r && !(an = dg_symname(g, r->pos)))
            goto fail;
        PyTuple_SET_ITEM(a_name, (Py_ssize_t)i, Py_NewRef(an));
        a_glob[i] = r && r->glob;
        delta[i] = r ? (uint64_t)e->soff - r->value : 0;
        /* the replacement */
        PyObject *as = dg_altname(g, e->asym);
        if (!as)
            goto fail;
        PyTuple_SET_ITEM(a_sym, (Py_ssize_t)i, Py_NewRef(as));
        a_def[i] = e->aidx != 0;
        a_count[i] = 0;
        Py_ssize_t ah = (Py_ssize_t)e->aidx;
        if (ah && ah < c->nsecs && !e->cb) {
            nw = e->alen / 4;
            d = op_bytes(c, ah, &len);
            got = d ? dg_relocs(g, ah) : 0;
            if (got <= 0) {
                if (got < 0)
                    goto fail;
                goto none;
            }
            if (e->aoff >= 0 && (uint64_t)e->aoff + 4 * nw <= len) {
                a_count[i] = (unsigned char)(nw + 1);
                for (uint64_t k = 0; k < nw; k++) {
                    uint64_t at = (uint64_t)e->aoff + 4 * k;
                    uint32_t w = rd32(d + at);
                    a_words[na] = w;
                    unsigned char m = 0;
                    if (dg_relocated(g, ah, at)) {
                        m = 1;
                        if ((w & 0x7C000000) == 0x14000000) {  /* B, BL: its target */
                            PyObject *t = dg_target(g, ah, at);
                            if (!t)
                                goto fail;
                            if (t == Py_None) {
                                Py_DECREF(t);
                                goto none;
                            }
                            int bad = PyList_Append(targets, t);
                            Py_DECREF(t);
                            if (bad < 0)
                                goto fail;
                            m = 2;
                        }
                    }
                    marks[na++] = m;
                    some_mark |= m;
                }
            }
        }
    }
    {
        /* (``bytes`` of a tuple, as the Python makes ``alt_defined``, is a bytes object of
         * its own even of one byte, which a pickle of the columns writes out again: not
         * the shared one ``y#`` gives) */
        PyObject *tt = PyList_AsTuple(targets), *def = PyBytes_FromStringAndSize(NULL, n);
        if (!tt || !def) {
            Py_XDECREF(tt);
            Py_XDECREF(def);
            goto fail;
        }
        memcpy(PyBytes_AS_STRING(def), a_def, n);
        out = Py_BuildValue(
            "(NNNy#y#y#Ny#y#NNy#y#y#N)", t_sec, s_sec, s_off, (const char *)s_count,
            (Py_ssize_t)n, (const char *)s_words, (Py_ssize_t)(4 * ns), (const char *)known,
            (Py_ssize_t)(some_unknown ? ns : 0), a_name, (const char *)a_glob, (Py_ssize_t)n,
            (const char *)delta, (Py_ssize_t)(8 * n), a_sym, def, (const char *)a_count,
            (Py_ssize_t)n, (const char *)a_words, (Py_ssize_t)(4 * na), (const char *)marks,
            (Py_ssize_t)(some_mark ? na : 0), tt);
        t_sec = s_sec = s_off = a_name = a_sym = NULL;  /* (N: taken, or released on error) */
    }
    goto done;
none:
    out = Py_NewRef(Py_None);
    goto done;
fail:
    out = NULL;
done:
    Py_XDECREF(t_sec);
    Py_XDECREF(s_sec);
    Py_XDECREF(s_off);
    Py_XDECREF(a_name);
    Py_XDECREF(a_sym);
    Py_XDECREF(targets);
    PyMem_Free(s_count);
    PyMem_Free(a_glob);
    PyMem_Free(a_def);
    PyMem_Free(a_count);
    PyMem_Free(delta);
    PyMem_Free(s_words);
    PyMem_Free(a_words);
    PyMem_Free(known);
    PyMem_Free(marks);
    return out;
}

static PyObject *op_digest(struct op_ctx *c, PyObject *strings, const unsigned char *nametab,
                           uint64_t namelen, PyObject **secname, const struct op_entry *es,
                           uint64_t n, Py_ssize_t table)
{
    /* ``dg_columns`` with its context made and released */
    if (!n)  /* (no entries: the columns of an empty digest) */
        return dg_columns(NULL, es, 0, table);
    if (table < 0 || !c->have_symtab)
        return Py_NewRef(Py_None);  /* (no entries: ``object_plain`` needs a table for any) */
    if (c->strlen_ && c->str[0] != 0)
        return Py_NewRef(Py_None);
    for (uint64_t i = 0; i < c->nsyms; i++)
        if (rd16(c->sym + i * SYM_SIZE + 6) == SHN_XINDEX)
            return Py_NewRef(Py_None);
    struct dg_ctx g;
    memset(&g, 0, sizeof g);
    g.c = c;
    g.strings = strings;
    g.nametab = nametab;
    g.namelen = namelen;
    g.secname = secname;
    Py_ssize_t ns = c->nsecs;
    uint64_t nsym = c->nsyms ? c->nsyms : 1;
    PyObject *out = NULL;
    g.rel_state = PyMem_Calloc(ns, 1);
    g.rel_offs = PyMem_Calloc(ns, sizeof *g.rel_offs);
    g.rel_n = PyMem_Calloc(ns, sizeof *g.rel_n);
    g.rows_state = PyMem_Calloc(ns, 1);
    g.rows = PyMem_Calloc(ns, sizeof *g.rows);
    g.nrows = PyMem_Calloc(ns, sizeof *g.nrows);
    g.symname = PyMem_Calloc(nsym, sizeof *g.symname);
    g.altname = PyMem_Calloc(nsym, sizeof *g.altname);
    g.altname_made = PyMem_Calloc(nsym, 1);
    g.by_offset = PyDict_New();
    if (!g.rel_state || !g.rel_offs || !g.rel_n || !g.rows_state || !g.rows || !g.nrows
        || !g.symname || !g.altname || !g.altname_made)
        PyErr_NoMemory();
    else if (g.by_offset)
        out = dg_columns(&g, es, n, table);
    for (Py_ssize_t i = 0; i < ns; i++) {
        if (g.rel_offs)
            PyMem_Free(g.rel_offs[i]);
        if (g.rows)
            PyMem_Free(g.rows[i]);
    }
    for (uint64_t i = 0; i < c->nsyms; i++) {
        if (g.symname)
            Py_XDECREF(g.symname[i]);
        if (g.altname)
            Py_XDECREF(g.altname[i]);
    }
    PyMem_Free(g.rel_state);
    PyMem_Free(g.rel_offs);
    PyMem_Free(g.rel_n);
    PyMem_Free(g.rows_state);
    PyMem_Free(g.rows);
    PyMem_Free(g.nrows);
    PyMem_Free(g.symname);
    PyMem_Free(g.altname);
    PyMem_Free(g.altname_made);
    Py_XDECREF(g.by_offset);
    return out;
}

static PyObject *sp_object_plain(PyObject *self, PyObject *args)
{
    Py_buffer db, mb;
    PyObject *names_of, *caps, *facts, *abi, *fmt;
    int with_digest = 0;
    if (!PyArg_ParseTuple(args, "y*OO!Oy*OO|p", &db, &names_of, &PyDict_Type, &caps, &facts,
                          &mb, &abi, &fmt, &with_digest))
        return NULL;
    const unsigned char *mark = mb.buf, *d = db.buf;
    uint64_t size = (uint64_t)db.len;
    struct op_ctx c = {d, size, 0, NULL, NULL, NULL, 0, 0, 0, NULL};
    Py_ssize_t nsecs = 0;
    struct op_entry *es = NULL;
    struct span *ranges = NULL;  /* ALT017's: (start, end, entry index) */
    PyObject **names = NULL;  /* each symbol's name (Place.symbol), made once */
    PyObject **secname = NULL;  /* each section's name, as ``ElfFile.sections`` has it */
    uint64_t *secflags = NULL;
    unsigned char *inrange = NULL;
    int64_t *site_lim = NULL, *alt_lim = NULL;
    PyObject *out = NULL, *d_index = NULL, *d_symbol = NULL, *flags = NULL, *summary = NULL;
    PyObject *defs = NULL, *dcols[4] = {NULL, NULL, NULL, NULL}, *strings = NULL;
    uint64_t n = 0;
    int xen = abi_xen(abi);
    if (xen == -2)
        goto fail;
    /* The section header table, as ``ElfFile.sections`` reads and checks it (an ELF header
     * ``check_header`` passed); anything it would refuse, or does not read the common way
     * (no table, more sections than SHN_LORESERVE), is the Python's. */
    if (xen < 0 || mb.len != 256 || size < 64)
        goto none;
    uint64_t shoff = rd64(d + 0x28), shnum = rd16(d + 0x3c), shstrndx = rd16(d + 0x3e);
    if (rd16(d + 0x3a) != SHDR_SIZE || shoff == 0 || shoff > size || size - shoff < SHDR_SIZE
        || shnum == 0 || shnum >= SHN_LORESERVE || shstrndx == SHN_XINDEX
        || shnum > (size - shoff) / SHDR_SIZE)
        goto none;
    nsecs = c.nsecs = (Py_ssize_t)shnum;
    const unsigned char *hdr = d + shoff, *nametab = (const unsigned char *)"";
    uint64_t namelen = 0;
    if (0 < shstrndx && shstrndx < shnum) {
        const unsigned char *h = hdr + shstrndx * SHDR_SIZE;
        uint64_t off = rd64(h + 24), sz = rd64(h + 32);
        if (off > size || sz > size - off)
            goto none;
        nametab = d + off;
        namelen = sz;
    }
    /* (``_section_names``: the names by offset, kept for the process) */
    PyObject *nb = PyBytes_FromStringAndSize((const char *)nametab, (Py_ssize_t)namelen);
    if (!nb)
        goto fail;
    strings = PyObject_CallOneArg(names_of, nb);
    Py_DECREF(nb);
    if (!strings)
        goto fail;
    if (!PyDict_Check(strings))
        goto none;
    c.secs = PyMem_Calloc(nsecs, sizeof *c.secs);
    c.parts = PyMem_Calloc(nsecs, sizeof *c.parts);
    secname = PyMem_Calloc(nsecs, sizeof *secname);
    secflags = PyMem_Calloc(nsecs, sizeof *secflags);
    site_lim = PyMem_Calloc(nsecs, sizeof *site_lim);
    alt_lim = PyMem_Calloc(nsecs, sizeof *alt_lim);
    inrange = PyMem_Calloc(nsecs, 1);
    if (!c.secs || !c.parts || !secname || !secflags || !site_lim || !alt_lim || !inrange) {
        PyErr_NoMemory();
        goto fail;
    }
    /* The sections: the table's, the module's, the symbol table (``_index_sections``). */
    Py_ssize_t table = -1, symtab = -1, dynsym = -1;
    int module = 0;
    for (Py_ssize_t i = 0; i < nsecs; i++) {
        const unsigned char *h = hdr + i * SHDR_SIZE;
        struct op_sec *o = &c.secs[i];
        uint32_t nm = rd32(h);
        o->type = rd32(h + 4);
        o->flags = secflags[i] = rd64(h + 8);
        o->offset = rd64(h + 24);
        o->size = rd64(h + 32);
        o->link = rd32(h + 40);
        o->info = rd32(h + 44);
        o->entsize = rd64(h + 56);
        if (o->type != SHT_NOBITS && o->type != SHT_NULL
            && (o->offset > size || o->size > size - o->offset))
            goto none;  /* (``sections``' error) */
        if (o->size > INT64_MAX)
            goto none;
        o->name_at = nm;
        if (name_is(nametab, namelen, nm, ".altinstructions")) {
            if (table >= 0)
                goto none;  /* (several tables: the Python's) */
            table = i;
        } else if (name_is(nametab, namelen, nm, ".gnu.linkonce.this_module"))
            module = 1;
        if (o->type == SHT_SYMTAB_ && symtab < 0)
            symtab = i;
        else if (o->type == SHT_DYNSYM_ && dynsym < 0)
            dynsym = i;
        site_lim[i] = o->flags & SHF_EXECINSTR ? (int64_t)o->size : -1;
        alt_lim[i] = (o->flags & SHF_EXECINSTR
                      || name_is(nametab, namelen, nm, ".altinstr_replacement"))
            && o->type != SHT_NOBITS ? (int64_t)o->size : -1;
    }
    if (symtab < 0)
        symtab = dynsym;
    /* The symbol table and its strings (``_symbol_bytes``, ``_global_defines``). */
    if (symtab >= 0) {
        struct op_sec *s = &c.secs[symtab];
        uint64_t len, slen = 0;
        if (s->link >= (uint64_t)nsecs || (s->entsize != 0 && s->entsize != SYM_SIZE)
            || s->size % SYM_SIZE)
            goto none;
        c.sym = op_bytes(&c, symtab, &len);
        c.str = s->link ? op_bytes(&c, (Py_ssize_t)s->link, &slen) : (const unsigned char *)"";
        if (!c.sym || !c.str)
            goto none;
        c.nsyms = len / SYM_SIZE;
        c.strlen_ = slen;
        c.have_symtab = 1;
    }
    flags = PyTuple_New(table >= 0 ? 1 : 0);
    if (!flags)
        goto fail;
    if (table >= 0) {
        struct op_sec *t = &c.secs[table];
        /* no table finding: contents, whole entries, entry size, allocated */
        if (t->type == SHT_NOBITS || t->size % ENTRY_SIZE || t->size == 0
            || (t->entsize != 0 && t->entsize != ENTRY_SIZE) || !(t->flags & SHF_ALLOC_)
            || !c.have_symtab)
            goto none;
        PyObject *fl = PyLong_FromUnsignedLongLong(t->flags);
        if (!fl)
            goto fail;
        PyTuple_SET_ITEM(flags, 0, fl);
        n = t->size / ENTRY_SIZE;
        Py_ssize_t rel = -1;
        for (Py_ssize_t i = 0; i < nsecs; i++) {
            struct op_sec *s = &c.secs[i];
            if ((s->type == SHT_RELA_ || s->type == SHT_REL_ || s->type == SHT_CREL_)
                && s->info == (uint64_t)table) {
                if (rel >= 0)
                    goto none;
                rel = i;
            }
        }
        if (rel < 0 || c.secs[rel].type != SHT_RELA_ || c.secs[rel].size != 48 * n)
            goto none;
        uint64_t tlen, rlen;
        const unsigned char *tab = op_bytes(&c, table, &tlen), *rb = op_bytes(&c, rel, &rlen);
        if (!tab || !rb)
            goto none;
        es = PyMem_Calloc(n, sizeof *es);
        names = PyMem_Calloc(c.nsyms ? c.nsyms : 1, sizeof *names);
        if (!es || !names) {
            PyErr_NoMemory();
            goto fail;
        }
        for (uint64_t i = 0; i < n; i++) {
            struct op_entry *e = &es[i];
            for (int k = 0; k < 2; k++) {
                const unsigned char *r = rb + (2 * i + k) * RELA_SIZE;
                uint64_t info = rd64(r + 8), symi = info >> 32;
                if (rd64(r) != i * ENTRY_SIZE + 4 * (uint64_t)k
                    || (uint32_t)info != R_AARCH64_PREL32 || symi >= c.nsyms)
                    goto none;
                const unsigned char *s = c.sym + symi * SYM_SIZE;
                uint16_t shndx = rd16(s + 6);
                if (shndx >= nsecs)
                    goto none;
                uint64_t value = shndx == SHN_UNDEF ? 0 : rd64(s + 8);
                int64_t addend = (int64_t)rd64(r + 16), off;
                if (value > (uint64_t)INT64_MAX
                    || __builtin_add_overflow((int64_t)value, addend, &off))
                    goto none;
                *(k ? &e->asym : &e->ssym) = symi;
                *(k ? &e->aoff : &e->soff) = off;
                *(k ? &e->aidx : &e->sidx) = shndx;
            }
            const unsigned char *en = tab + i * ENTRY_SIZE;
            e->cap = rd16(en + 8);
            e->olen = en[10];
            e->alen = en[11];
        }
    }
    /* may_find: each entry passed, or a callback left undefined (its Deferred). */
    d_index = PyList_New(0);
    d_symbol = PyList_New(0);
    if (!d_index || !d_symbol)
        goto fail;
    Py_ssize_t nranges = 0;
    ranges = PyMem_Calloc(n ? n : 1, sizeof *ranges);
    if (!ranges) {
        PyErr_NoMemory();
        goto fail;
    }
    unsigned seen_cap[16];  /* the fields met so far, and their facts (a table uses few) */
    int seen_cb[16], seen_ok[16], nseen = 0;
    for (uint64_t pos = 0; pos < n; pos++) {
        struct op_entry *m = &es[pos];
        int cb, cap_ok, k = 0;
        while (k < nseen && seen_cap[k] != m->cap)
            k++;
        if (k < nseen) {
            cb = seen_cb[k];
            cap_ok = seen_ok[k];
        } else {
            PyObject *cap = PyLong_FromUnsignedLong(m->cap);
            if (!cap)
                goto fail;
            int bad = cap_pair(caps, facts, cap, &cb, &cap_ok);
            Py_DECREF(cap);
            if (bad < 0)
                goto fail;
            if (nseen < 16) {
                seen_cap[nseen] = m->cap;
                seen_cb[nseen] = cb;
                seen_ok[nseen++] = cap_ok;
            }
        }
        m->cb = cb;
        int64_t olen = m->olen, alen = m->alen, sidx = (int64_t)m->sidx, idx = (int64_t)m->aidx;
        if (!cap_ok || (alen == 0 && !cb) || (cb && alen) || !olen || olen % 4 || m->soff % 4
            || !(0 < sidx && sidx < nsecs) || m->soff < 0 || m->soff > site_lim[sidx] - olen)
            goto none;
        if (cb) {
            if (idx)
                goto none;  /* a callback defined here: check_entry's */
            PyObject *nm = names[m->asym];
            if (!nm) {
                /* Place.symbol: the symbol's name, None where empty (or a section's) */
                const unsigned char *s = c.sym + m->asym * SYM_SIZE;
                if ((s[4] & 0xf) == STT_SECTION && rd16(s + 6) != SHN_UNDEF)
                    nm = PyUnicode_FromStringAndSize("", 0);
                else
                    nm = cstr(c.str, (Py_ssize_t)c.strlen_, rd32(s));
                if (!nm)
                    goto fail;
                names[m->asym] = nm;
            }
            PyObject *ix = PyLong_FromUnsignedLongLong(pos);
            if (!ix || PyList_Append(d_index, ix) < 0 || PyList_Append(d_symbol, nm) < 0) {
                Py_XDECREF(ix);
                goto fail;
            }
            Py_DECREF(ix);
            continue;
        }
        if (alen != olen || !(0 < idx && idx < nsecs) || m->aoff < 0
            || m->aoff > alt_lim[idx] - alen)
            goto none;
        uint64_t len;
        const unsigned char *d = op_bytes(&c, idx, &len);
        if (!d)
            goto none;
        if (!plain_by_marks(d, (int64_t)len, m->aoff, alen, mark)
            && op_moves(&c, idx, d + m->aoff, alen, m->aoff, xen) != 1)
            goto none;
        /* ALT017's ranges (``branch_ranges``): a static entry's replacement */
        ranges[nranges].s = m->aoff;
        ranges[nranges].a = m->aoff + alen;
        ranges[nranges].b = (int64_t)pos;
        nranges++;
        inrange[idx] = 1;
    }
    /* ALT010: no two sites share a byte (``sites_overlap``) */
    if (n > 1) {
        struct span *rows = PyMem_Malloc(sizeof(struct span) * n);
        if (!rows) {
            PyErr_NoMemory();
            goto fail;
        }
        for (uint64_t i = 0; i < n; i++) {
            rows[i].s = (int64_t)es[i].sidx;
            rows[i].a = es[i].soff;
            rows[i].b = es[i].soff + (int64_t)es[i].olen;
        }
        sort_spans(rows, n);
        int over = 0;
        for (uint64_t i = 1; i < n && !over; i++)
            over = rows[i - 1].s == rows[i].s && rows[i - 1].b > rows[i].a;
        PyMem_Free(rows);
        if (over)
            goto none;
    }
    /* ALT017: each section of replacements, its ranges sorted */
    for (Py_ssize_t sh = 1; sh < nsecs && nranges; sh++) {
        if (!inrange[sh])
            continue;
        struct span *r = PyMem_Malloc(sizeof *r * (size_t)nranges);
        int64_t *cols = PyMem_Malloc(sizeof *cols * 4 * (size_t)nranges);
        if (!r || !cols) {
            PyMem_Free(r);
            PyMem_Free(cols);
            PyErr_NoMemory();
            goto fail;
        }
        Py_ssize_t k = 0;
        for (Py_ssize_t i = 0; i < nranges; i++)
            if ((Py_ssize_t)es[ranges[i].b].aidx == sh)
                r[k++] = ranges[i];
        sort_spans(r, (size_t)k);  /* by start, end and index */
        for (Py_ssize_t i = 0; i < k; i++) {
            cols[i] = r[i].s;
            cols[nranges + i] = r[i].a;
        }
        int got = op_branches(&c, sh, cols, cols + nranges, k, cols + 2 * nranges,
                              cols + 3 * nranges, inrange);
        PyMem_Free(r);
        PyMem_Free(cols);
        if (got)
            goto none;
    }
    /* The global definitions (``_global_defines``), as columns (``define_columns``) */
    if (c.have_symtab) {
        /* the names of the sections a global definition is in, as ``sections`` has them */
        for (uint64_t i = 0; i < c.nsyms; i++) {
            const unsigned char *sy = c.sym + i * SYM_SIZE;
            uint16_t sh = rd16(sy + 6);
            if ((sy[4] >> 4) == STB_LOCAL || sh == SHN_UNDEF || sh >= nsecs || secname[sh])
                continue;
            PyObject *key = PyLong_FromUnsignedLong(c.secs[sh].name_at);
            if (!key)
                goto fail;
            PyObject *got = PyDict_GetItemWithError(strings, key);
            Py_DECREF(key);
            if (got)
                Py_INCREF(got);
            else if (PyErr_Occurred()
                     || !(got = cstr(nametab, (Py_ssize_t)namelen, c.secs[sh].name_at)))
                goto fail;
            secname[sh] = got;
        }
        defs = global_defines_core(c.sym, (Py_ssize_t)(c.nsyms * SYM_SIZE), c.str,
                                   (Py_ssize_t)c.strlen_, nsecs, secname, secflags);
        if (!defs)
            goto fail;
        if (defs == Py_None)
            goto none;
    } else if (!(defs = PyDict_New()))
        goto fail;
    Py_ssize_t nd = PyDict_GET_SIZE(defs), at = 0, k = 0;
    PyObject *key, *value;
    for (int j = 0; j < 4; j++)
        if (!(dcols[j] = PyTuple_New(nd)))
            goto fail;
    while (PyDict_Next(defs, &at, &key, &value)) {
        if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 3 || k >= nd)
            goto none;
        PyTuple_SET_ITEM(dcols[0], k, Py_NewRef(key));
        for (int j = 0; j < 3; j++)
            PyTuple_SET_ITEM(dcols[j + 1], k, Py_NewRef(PyTuple_GET_ITEM(value, j)));
        k++;
    }
    /* The summary rows (``_SUMMARY_ROW``: index, cap_raw, orig_len, alt_len) */
    summary = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(8 * n));
    if (!summary)
        goto fail;
    unsigned char *row = (unsigned char *)PyBytes_AS_STRING(summary);
    for (uint64_t i = 0; i < n; i++, row += 8) {
        row[0] = (unsigned char)i;
        row[1] = (unsigned char)(i >> 8);
        row[2] = (unsigned char)(i >> 16);
        row[3] = (unsigned char)(i >> 24);
        row[4] = (unsigned char)es[i].cap;
        row[5] = (unsigned char)(es[i].cap >> 8);
        row[6] = (unsigned char)es[i].olen;
        row[7] = (unsigned char)es[i].alen;
    }
    /* (format, is_module, flags, table findings, findings, their positions, the callbacks'
     * columns, the definitions' columns, the summary rows, the packed digest: not made) */
    PyObject *cols[2] = {PyList_AsTuple(d_index), PyList_AsTuple(d_symbol)};
    PyObject *f[10] = {Py_NewRef(fmt), Py_NewRef(module ? Py_True : Py_False),
                       Py_NewRef(flags), PyList_New(0), PyList_New(0), PyTuple_New(0),
                       cols[0] && cols[1] ? PyTuple_Pack(2, cols[0], cols[1]) : NULL,
                       PyTuple_Pack(4, dcols[0], dcols[1], dcols[2], dcols[3]),
                       Py_NewRef(summary), NULL};
    if (with_digest) {  /* the packed digest, or not made (b""): the Python makes it */
        f[9] = op_digest(&c, strings, nametab, namelen, secname, es, n, table);
        if (f[9] == Py_None) {
            Py_DECREF(f[9]);
            f[9] = PyBytes_FromStringAndSize("", 0);
        }
    } else
        f[9] = PyBytes_FromStringAndSize("", 0);
    Py_XDECREF(cols[0]);
    Py_XDECREF(cols[1]);
    out = PyTuple_New(10);
    for (int k = 0; k < 10; k++) {
        if (!f[k])
            Py_CLEAR(out);
        if (out)
            PyTuple_SET_ITEM(out, k, f[k]);
        else
            Py_XDECREF(f[k]);
    }
    goto done;
none:
    out = Py_NewRef(Py_None);
    goto done;
fail:
    out = NULL;
done:
    if (names) {
        for (uint64_t i = 0; i < c.nsyms; i++)
            Py_XDECREF(names[i]);
        PyMem_Free(names);
    }
    if (secname)
        for (Py_ssize_t i = 0; i < nsecs; i++)
            Py_XDECREF(secname[i]);
    PyMem_Free(secname);
    PyMem_Free(secflags);
    Py_XDECREF(strings);
    PyMem_Free(c.secs);
    PyMem_Free(c.parts);
    PyMem_Free(es);
    PyMem_Free(ranges);
    PyMem_Free(site_lim);
    PyMem_Free(alt_lim);
    PyMem_Free(inrange);
    Py_XDECREF(flags);
    Py_XDECREF(d_index);
    Py_XDECREF(d_symbol);
    Py_XDECREF(summary);
    Py_XDECREF(defs);
    for (int j = 0; j < 4; j++)
        Py_XDECREF(dcols[j]);
    PyBuffer_Release(&db);
    PyBuffer_Release(&mb);
    return out;
}

/* -- records._summary_columns ----------------------------------------------------------------
 * summary_columns(rows) -> tuple
 * A record's summary rows (``_SUMMARY_ROW``: index u32, cap_raw u16, orig_len u8, alt_len u8,
 * an entry a row) as its four columns, each a tuple of ints. None where the bytes are not
 * whole rows (the Python says so). */
static PyObject *sp_summary_columns(PyObject *self, PyObject *args)
{
    Py_buffer b;
    if (!PyArg_ParseTuple(args, "y*", &b))
        return NULL;
    PyObject *out = NULL, *cols[4] = {NULL, NULL, NULL, NULL};
    Py_ssize_t n = b.len / 8;
    const unsigned char *r = b.buf;
    if (b.len % 8 || n == 0) {
        PyBuffer_Release(&b);
        return n == 0 && b.len == 0 ? Py_BuildValue("(()()()())") : Py_NewRef(Py_None);
    }
    for (int k = 0; k < 4; k++)
        if (!(cols[k] = PyTuple_New(n)))
            goto done;
    for (Py_ssize_t i = 0; i < n; i++, r += 8) {
        PyObject *v[4] = {PyLong_FromUnsignedLong(rd32(r)), PyLong_FromUnsignedLong(rd16(r + 4)),
                          PyLong_FromUnsignedLong(r[6]), PyLong_FromUnsignedLong(r[7])};
        for (int k = 0; k < 4; k++) {
            if (!v[k]) {
                for (int j = k + 1; j < 4; j++)
                    Py_XDECREF(v[j]);
                goto done;
            }
            PyTuple_SET_ITEM(cols[k], i, v[k]);
        }
    }
    out = PyTuple_Pack(4, cols[0], cols[1], cols[2], cols[3]);
done:
    for (int k = 0; k < 4; k++)
        Py_XDECREF(cols[k]);
    PyBuffer_Release(&b);
    return out;
}

static PyMethodDef methods[] = {
    {"sections", sp_sections, METH_VARARGS, "elf.ElfFile.sections' headers, or None"},
    {"object_entries", sp_object_entries, METH_VARARGS,
     "table._entries_in_order's entries, or None"},
    {"global_defines", sp_global_defines, METH_VARARGS, "records._global_defines, or None"},
    {"may_find", sp_may_find, METH_VARARGS, "check_objects.may_find's loop, or None"},
    {"branch_ranges", sp_branch_ranges, METH_VARARGS,
     "check_objects.check_object_branches' replacements by section, or None"},
    {"digest_entries", sp_digest_entries, METH_VARARGS, "records.digest's loop, or None"},
    {"object_branch_words", sp_object_branch_words, METH_VARARGS,
     "check_objects.check_object_branches' word scans, or None"},
    {"into_ranges", sp_into_ranges, METH_VARARGS,
     "branches.into_ranges_py's scan of a section of code, or None"},
    {"sites_overlap", sp_sites_overlap, METH_VARARGS,
     "check_entries.sites_overlap, or None"},
    {"code_size", sp_code_size, METH_VARARGS, "elf.ElfFile.code_size's sum, or None"},
    {"index_sections", sp_index_sections, METH_VARARGS,
     "elf.ElfFile._index_sections' three, or None"},
    {"moves_fine", sp_moves_fine, METH_VARARGS, "check_objects._moves_fine, or None"},
    {"object_branch_found", sp_object_branch_found, METH_VARARGS,
     "check_objects.check_object_branches' words split by their relocations, or None"},
    {"read_small", sp_read_small, METH_VARARGS, "elf.map_file of a small file, or None"},
    {"summary_columns", sp_summary_columns, METH_VARARGS, "records._summary_columns, or None"},
    {"object_plain", sp_object_plain, METH_VARARGS,
     "records.make_plain: an object's record as plain data, or None"},
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
