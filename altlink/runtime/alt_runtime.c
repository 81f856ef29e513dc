/*
 * altlink/runtime/alt_runtime.c: applies an alternatives table (docs/reference.md,
 * section 2), from the image's own table or from a compact binary manifest.
 *
 * The rules are altlink/patch.py's, word for word (its instruction decoder is
 * altlink/insn.py's decode()):
 *
 *   - entries in table order; each sees what earlier ones wrote;
 *   - a static entry applies when its capability is active. Each replacement
 *     word is copied to the site, except that a B/BL, B.cond/BC.cond,
 *     CBZ/CBNZ or TBZ/TBNZ whose target lies outside [repl, repl + alt_len]
 *     (end inclusive) is re-encoded to reach the same target from the site,
 *     and an ADRP is always re-encoded to reach the same 4 KiB page (its
 *     page delta kept in an s32, as Linux does); ADR, literal loads and the
 *     PC-relative words nobody can re-encode (FEAT_CMPBR) are errors, and so
 *     is a new offset that does not fit its field;
 *   - a callback entry (cap == ncaps under linux-v4.17; cap & 0x8000 under
 *     linux-v6.1, when cap & 0x7fff is active) calls
 *     cb(alt, origptr, updptr, nr_inst) with updptr a buffer that starts as
 *     a copy of the site;
 *   - the site is written between the make_writable and restore hooks, then
 *     the sync hook makes the instruction cache coherent.
 *
 * Freestanding: no libc calls (copies are written out with volatile accesses
 * so that the compiler does not turn them into memcpy), no global state.
 */
#include "alt_runtime.h"

/* ---- instruction classes (altlink/insn.py decode()) --------------------- */

enum alt_kind {
	K_PLAIN,
	K_BRANCH26,	/* B, BL */
	K_COND19,	/* B.cond, BC.cond */
	K_CMP19,	/* CBZ, CBNZ */
	K_TEST14,	/* TBZ, TBNZ */
	K_ADRP,
	K_IMMOVABLE,	/* ADR, LDR/LDRSW/PRFM literal, SIMD/FP LDR literal */
	K_PCREL_UNKNOWN,	/* FEAT_CMPBR, the unallocated SIMD/FP literal slot */
};

#define IMM26 0x03ffffffu
#define IMM19 0x00ffffe0u	/* bits 23:5 */
#define IMM14 0x0007ffe0u	/* bits 18:5 */
#define ADR_IMM 0x60ffffe0u	/* immlo 30:29, immhi 23:5 */
#define PAGE_MASK (~(uint64_t)0xfff)

static int64_t sign_extend(uint64_t value, unsigned bits)
{
	uint64_t sign = (uint64_t)1 << (bits - 1);

	value &= (sign << 1) - 1;
	return (int64_t)(value ^ sign) - (int64_t)sign;
}

/* The class of `w` and its displacement in bytes (ADRP: the page delta). */
static enum alt_kind decode(uint32_t w, int64_t *offset)
{
	uint32_t group = (w >> 25) & 0xf;

	*offset = 0;
	if ((group & 0xe) == 0xa) {	/* branches, exception generation, system */
		uint32_t top = w & 0x7e000000u;

		if (top == 0x14000000u || top == 0x16000000u) {
			*offset = sign_extend(w & IMM26, 26) * 4;
			return K_BRANCH26;
		}
		if (top == 0x34000000u) {
			*offset = sign_extend((w & IMM19) >> 5, 19) * 4;
			return K_CMP19;
		}
		if (top == 0x36000000u) {
			*offset = sign_extend((w & IMM14) >> 5, 14) * 4;
			return K_TEST14;
		}
		if ((w & 0xff000000u) == 0x54000000u) {
			*offset = sign_extend((w & IMM19) >> 5, 19) * 4;
			return K_COND19;
		}
		if (top == 0x74000000u)	/* FEAT_CMPBR compare and branch */
			return K_PCREL_UNKNOWN;
		return K_PLAIN;
	}
	if ((group & 0xe) == 0x8) {	/* data processing -- immediate */
		if ((w & 0x1f000000u) == 0x10000000u) {
			int64_t imm = sign_extend(((w >> 3) & 0x1ffffcu) | ((w >> 29) & 3u), 21);

			if (w >> 31) {
				*offset = imm * 4096;
				return K_ADRP;
			}
			return K_IMMOVABLE;	/* ADR */
		}
		return K_PLAIN;
	}
	if ((group & 0x5) == 0x4) {	/* loads and stores */
		if ((w & 0x3b000000u) == 0x18000000u) {	/* LDR (literal) family */
			if ((w & 0x04000000u) && (w >> 30) == 3)
				return K_PCREL_UNKNOWN;	/* unallocated SIMD/FP slot */
			return K_IMMOVABLE;
		}
		return K_PLAIN;
	}
	return K_PLAIN;
}

/*
 * `w` with displacement `delta` (bytes; ADRP: page delta) in its field, or
 * ALT_E_RANGE when it does not fit. The reach is the field's, except ADRP:
 * [-2 GiB, +2 GiB - 4 KiB], the s32 of Linux's patcher (both profiles).
 */
static enum alt_status encode(uint32_t *w, enum alt_kind kind, int64_t delta)
{
	int64_t lo, hi;
	uint64_t imm;

	switch (kind) {
	case K_BRANCH26:
		lo = -((int64_t)1 << 27);
		hi = ((int64_t)1 << 27) - 4;
		break;
	case K_COND19:
	case K_CMP19:
		lo = -((int64_t)1 << 20);
		hi = ((int64_t)1 << 20) - 4;
		break;
	case K_TEST14:
		lo = -((int64_t)1 << 15);
		hi = ((int64_t)1 << 15) - 4;
		break;
	case K_ADRP:
		lo = -((int64_t)1 << 31);
		hi = ((int64_t)1 << 31) - 4096;
		break;
	default:
		return ALT_E_IMMOVABLE;
	}
	if (delta < lo || delta > hi)
		return ALT_E_RANGE;
	if (kind == K_ADRP) {
		imm = (uint64_t)(delta / 4096);
		*w = (*w & ~ADR_IMM) | (uint32_t)((imm & 3) << 29) |
		     (uint32_t)(((imm >> 2) << 5) & IMM19);
		return ALT_OK;
	}
	imm = (uint64_t)(delta / 4);
	if (kind == K_BRANCH26)
		*w = (*w & ~IMM26) | (uint32_t)(imm & IMM26);
	else if (kind == K_TEST14)
		*w = (*w & ~IMM14) | (uint32_t)((imm << 5) & IMM14);
	else
		*w = (*w & ~IMM19) | (uint32_t)((imm << 5) & IMM19);
	return ALT_OK;
}

/*
 * Replacement word `w`, at address `pc` inside [repl, repl + len), made
 * ready to run at `site_pc`.
 */
static enum alt_status move_word(uint32_t *w, uint64_t pc, uint64_t repl, uint64_t len,
				 uint64_t site_pc)
{
	int64_t offset;
	enum alt_kind kind = decode(*w, &offset);
	uint64_t dest;

	switch (kind) {
	case K_PLAIN:
		return ALT_OK;
	case K_IMMOVABLE:
		return ALT_E_IMMOVABLE;
	case K_PCREL_UNKNOWN:
		return ALT_E_PCREL_UNKNOWN;
	case K_ADRP:
		/* Always: the same page from the site's page. */
		dest = (pc & PAGE_MASK) + (uint64_t)offset;
		return encode(w, kind, (int64_t)(dest - (site_pc & PAGE_MASK)));
	default:
		dest = pc + (uint64_t)offset;
		if (dest >= repl && dest <= repl + len)
			return ALT_OK;	/* inside: the code moves as a block */
		return encode(w, kind, (int64_t)(dest - site_pc));
	}
}

/* ---- applying one entry -------------------------------------------------- */

/* One entry, at running addresses, whichever form it came from. */
struct entry {
	uint64_t site;
	uint64_t alt;		/* replacement or callback */
	uint32_t cap_raw;
	uint32_t orig_len;
	uint32_t alt_len;
	struct alt_instr *table_entry;	/* passed to a callback; may be NULL */
};

#define MAX_WORDS 64		/* orig_len is a u8: at most 63 words */

static int cap_active(const struct alt_config *cfg, uint32_t cap)
{
	if (cfg->has_cap != NULL)
		return cfg->has_cap(cfg->ctx, cap) != 0;
	if (cfg->caps == NULL || cap >= cfg->caps_bits)
		return 0;
	return (cfg->caps[cap / 64] >> (cap % 64)) & 1;
}

static void fail(struct alt_result *res, enum alt_status status, int32_t insn, uint32_t word)
{
	res->status = status;
	res->insn = insn;
	res->word = word;
}

static enum alt_status apply_entry(const struct alt_config *cfg, uint32_t ncaps,
				   const struct entry *e, struct alt_result *res)
{
	uint32_t words[MAX_WORDS];
	volatile uint32_t *site = (volatile uint32_t *)(uintptr_t)e->site;
	int nr = (int)(e->orig_len / 4);
	int callback;
	uint32_t cap;

	if (cfg->profile == ALT_PROFILE_LINUX_V6_1) {
		callback = (e->cap_raw & ALT_CB_BIT) != 0;
		cap = e->cap_raw & ALT_CAPNUM_MASK;
	} else {
		callback = ncaps != ALT_NCAPS_UNKNOWN && e->cap_raw == ncaps;
		cap = e->cap_raw;
	}
	/* An empty static entry (orig_len and alt_len 0) patches nothing, as the kernel's
	 * patcher reads it: Linux 7 makes them where an alternative's body assembles to nothing. */
	if (e->orig_len % 4 != 0 ||
	    (e->orig_len == 0 && (callback || e->alt_len != 0))) {
		fail(res, ALT_E_LENGTH, -1, 0);
		return ALT_E_LENGTH;
	}
	if (e->site % 4 != 0) {
		fail(res, ALT_E_ALIGN, -1, 0);
		return ALT_E_ALIGN;
	}
	if (cfg->profile == ALT_PROFILE_LINUX_V6_1 ? !cap_active(cfg, cap)
						   : !callback && !cap_active(cfg, cap))
		return ALT_OK;
	if (nr == 0) {
		res->applied++;
		return ALT_OK;
	}

	if (callback) {
		alt_callback_fn *cb = (alt_callback_fn *)(uintptr_t)e->alt;

		for (int i = 0; i < nr; i++)
			((volatile uint32_t *)words)[i] = site[i];
		cb(e->table_entry, (uint32_t *)(uintptr_t)e->site, words, nr);
	} else {
		const volatile uint32_t *repl = (const volatile uint32_t *)(uintptr_t)e->alt;

		if (e->alt_len != e->orig_len) {
			fail(res, ALT_E_LENGTH, -1, 0);
			return ALT_E_LENGTH;
		}
		if (e->alt % 4 != 0) {
			fail(res, ALT_E_ALIGN, -1, 0);
			return ALT_E_ALIGN;
		}
		for (int i = 0; i < nr; i++) {
			uint32_t w = repl[i];
			enum alt_status st = move_word(&w, e->alt + 4u * (unsigned)i, e->alt,
						       e->alt_len, e->site + 4u * (unsigned)i);

			if (st != ALT_OK) {
				fail(res, st, i, repl[i]);
				return st;
			}
			((volatile uint32_t *)words)[i] = w;
		}
	}

	if (cfg->make_writable != NULL && cfg->make_writable(cfg->ctx, (void *)site, e->orig_len)) {
		fail(res, ALT_E_HOOK, -1, 0);
		return ALT_E_HOOK;
	}
	for (int i = 0; i < nr; i++)
		site[i] = ((volatile uint32_t *)words)[i];
	if (cfg->restore != NULL && cfg->restore(cfg->ctx, (void *)site, e->orig_len)) {
		fail(res, ALT_E_HOOK, -1, 0);
		return ALT_E_HOOK;
	}
	if (cfg->sync != NULL)
		cfg->sync(cfg->ctx, (void *)site, e->orig_len);
	else
		alt_sync_icache(cfg->ctx, (void *)site, e->orig_len);
	res->applied++;
	return ALT_OK;
}

static int start(const struct alt_config *cfg, struct alt_result *res)
{
	if (res == NULL)
		return 0;
	res->status = ALT_OK;
	res->entry = 0;
	res->insn = -1;
	res->word = 0;
	res->applied = 0;
	if (cfg == NULL || (cfg->profile != ALT_PROFILE_LINUX_V4_17 &&
			    cfg->profile != ALT_PROFILE_LINUX_V6_1)) {
		res->status = ALT_E_CONFIG;
		return 0;
	}
	return 1;
}

/* ---- from the image's own table ----------------------------------------- */

enum alt_status alt_apply_table(const struct alt_config *cfg, struct alt_instr *begin,
				struct alt_instr *end, struct alt_result *res)
{
	if (!start(cfg, res))
		return res == NULL ? ALT_E_CONFIG : res->status;
	for (struct alt_instr *a = begin; a < end; a++) {
		struct entry e;

		e.site = (uint64_t)(uintptr_t)ALT_ORIG_PTR(a);
		e.alt = (uint64_t)(uintptr_t)ALT_REPL_PTR(a);
		e.cap_raw = a->cap;
		e.orig_len = a->orig_len;
		e.alt_len = a->alt_len;
		e.table_entry = a;
		res->entry = (uint32_t)(a - begin);
		if (apply_entry(cfg, cfg->ncaps, &e, res) != ALT_OK)
			return res->status;
	}
	return ALT_OK;
}

/* ---- from a compact binary manifest (README.md) -------------------------- */

/* Little-endian fields, byte by byte: the blob may have any alignment. */
static uint64_t le(const unsigned char *p, unsigned n)
{
	uint64_t v = 0;

	while (n-- > 0)
		v = (v << 8) | p[n];
	return v;
}

enum alt_status alt_apply_blob(const struct alt_config *cfg, const void *blob, size_t size,
			       uintptr_t bias, struct alt_result *res)
{
	const unsigned char *b = blob;
	uint32_t header_size, entry_size, count, ncaps, version;
	uint64_t table;

	if (!start(cfg, res))
		return res == NULL ? ALT_E_CONFIG : res->status;
	res->status = ALT_E_BLOB;
	if (b == NULL || size < ALT_BLOB_HEADER_SIZE || le(b, 4) != ALT_BLOB_MAGIC)
		return ALT_E_BLOB;
	version = (uint32_t)le(b + 4, 2);
	if (version != 1 && version != ALT_BLOB_VERSION)
		return ALT_E_BLOB;
	header_size = (uint32_t)le(b + 6, 2);
	entry_size = (uint32_t)le(b + 8, 2);
	count = (uint32_t)le(b + 16, 4);
	if (header_size < ALT_BLOB_HEADER_SIZE ||
	    entry_size < (version == 1 ? ALT_BLOB_ENTRY_SIZE_V1 : ALT_BLOB_ENTRY_SIZE) ||
	    header_size > size || (size - header_size) / entry_size < count)
		return ALT_E_BLOB;
	ncaps = (uint32_t)le(b + 12, 4);
	res->status = ALT_E_PROFILE;
	if (le(b + 10, 1) != (uint64_t)cfg->profile)
		return ALT_E_PROFILE;
	if (ncaps == ALT_NCAPS_UNKNOWN)
		ncaps = cfg->ncaps;
	else if (cfg->ncaps != ALT_NCAPS_UNKNOWN && ncaps != cfg->ncaps)
		return ALT_E_PROFILE;
	res->status = ALT_OK;
	table = le(b + 24, 8);

	for (uint32_t i = 0; i < count; i++) {
		const unsigned char *p = b + header_size + (size_t)i * entry_size;
		struct entry e;

		e.site = le(p, 8) + bias;
		e.alt = le(p + 8, 8) + bias;
		e.cap_raw = (uint32_t)le(p + 16, 2);
		e.orig_len = p[18];
		e.alt_len = p[19];
		if (version == 1) {	/* entry i is the table's i-th */
			e.table_entry = table != 0 ?
				(struct alt_instr *)(uintptr_t)(table + bias) + i : NULL;
		} else {		/* its own address: entries may be left out, or nested */
			uint64_t at = le(p + 24, 8);

			e.table_entry = at != 0 ? (struct alt_instr *)(uintptr_t)(at + bias) : NULL;
		}
		res->entry = i;
		if (apply_entry(cfg, ncaps, &e, res) != ALT_OK)
			return res->status;
	}
	return ALT_OK;
}

/* ---- cache maintenance ---------------------------------------------------- */

void alt_sync_icache(void *ctx, void *addr, size_t len)
{
	uint64_t ctr, dline, iline, start = (uint64_t)(uintptr_t)addr, end = start + len, a;

	(void)ctx;
	__asm__ volatile("mrs %0, ctr_el0" : "=r"(ctr));
	dline = (uint64_t)4 << ((ctr >> 16) & 0xf);	/* DminLine: log2 of words */
	iline = (uint64_t)4 << (ctr & 0xf);		/* IminLine */
	for (a = start & ~(dline - 1); a < end; a += dline)
		__asm__ volatile("dc cvau, %0" : : "r"(a) : "memory");
	__asm__ volatile("dsb ish" : : : "memory");
	for (a = start & ~(iline - 1); a < end; a += iline)
		__asm__ volatile("ic ivau, %0" : : "r"(a) : "memory");
	__asm__ volatile("dsb ish\n\tisb" : : : "memory");
}

const char *alt_strerror(enum alt_status status)
{
	switch (status) {
	case ALT_OK:
		return "success";
	case ALT_E_LENGTH:
		return "bad length: orig_len is not a multiple of 4, or 0 in a callback, "
		       "or a static entry's alt_len differs from it";
	case ALT_E_IMMOVABLE:
		return "the replacement holds an instruction that cannot be moved "
		       "(ADR or a literal load)";
	case ALT_E_PCREL_UNKNOWN:
		return "the replacement holds a PC-relative instruction that cannot be "
		       "re-encoded (e.g. FEAT_CMPBR)";
	case ALT_E_RANGE:
		return "a re-encoded branch or ADRP does not reach its target from the site";
	case ALT_E_HOOK:
		return "the make_writable or restore hook failed";
	case ALT_E_BLOB:
		return "not a compact altlink manifest (magic, version or sizes)";
	case ALT_E_PROFILE:
		return "the compact manifest's profile or ncaps differs from the configuration";
	case ALT_E_CONFIG:
		return "no configuration, or an unknown profile";
	case ALT_E_ALIGN:
		return "a site or a replacement is not 4-byte aligned";
	}
	return "unknown status";
}
