/*
 * altlink/runtime/alt_runtime.h: a freestanding runtime that applies an
 * AArch64 alternatives table, with the semantics of altlink's docs/reference.md, section 2
 * (the same as `altlink patch`). C99 or later, gcc or clang, no libc, no
 * global state.
 *
 *     struct alt_config cfg = {
 *         .profile = ALT_PROFILE_DEFAULT,      // from ALTLINK_ABI_LINUX_V61
 *         .ncaps = ALT_NCAPS,                  // from the capability header
 *         .caps = &my_caps, .caps_bits = 64,   // or .has_cap = my_predicate
 *         .make_writable = my_rw, .restore = my_rx,   // NULL: text is writable
 *         .sync = NULL,                        // NULL: alt_sync_icache()
 *     };
 *     struct alt_result res;
 *     if (alt_apply_table(&cfg, __alt_instructions, __alt_instructions_end, &res) != ALT_OK)
 *         ... res.status, res.entry, res.insn, res.word say what and where
 *
 * or, from a compact binary manifest (written by `altlink manifest IMAGE
 * --compact FILE`, layout in README.md next to this file):
 *
 *     alt_apply_blob(&cfg, blob, blob_size, load_bias, &res);
 *
 * Build alt_runtime.c with -I <altlink>/include (for <altlink/alternative.h>)
 * and -I <altlink>/runtime. See README.md.
 */
#ifndef ALTLINK_ALT_RUNTIME_H
#define ALTLINK_ALT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

/*
 * struct alt_instr and alt_callback_fn, types only. A file that also uses the
 * macros includes <altlink/alternative.h> itself, before or after this one:
 * the header guards its types and its macros separately.
 */
#ifdef ALTLINK_TYPES_ONLY
#include <altlink/alternative.h>
#else
#define ALTLINK_TYPES_ONLY
#include <altlink/alternative.h>
#undef ALTLINK_TYPES_ONLY
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The table ABI profile (docs/reference.md, section 1): how a callback entry is marked. */
enum alt_profile {
	ALT_PROFILE_LINUX_V4_17 = 0,	/* callback: cap == ncaps; always runs */
	ALT_PROFILE_LINUX_V6_1 = 1,	/* callback: cap & 0x8000; runs when cap & 0x7fff is active */
};

/* The profile this file is compiled for (-DALTLINK_ABI_LINUX_V61 or not). */
#ifdef ALTLINK_ABI_LINUX_V61
#define ALT_PROFILE_DEFAULT ALT_PROFILE_LINUX_V6_1
#else
#define ALT_PROFILE_DEFAULT ALT_PROFILE_LINUX_V4_17
#endif

/* ncaps when it is not known: no linux-v4.17 entry is then a callback. */
#define ALT_NCAPS_UNKNOWN 0xffffffffu

/*
 * What to apply and how. Every hook gets `ctx`. The hooks are called for
 * each entry that is applied, around the write of its site:
 *
 *   make_writable(ctx, site, len)   before writing; nonzero fails the entry
 *                                   (ALT_E_HOOK). NULL: the text is writable.
 *   restore(ctx, site, len)         after writing; nonzero fails as above.
 *                                   NULL: nothing to restore.
 *   sync(ctx, site, len)            after restore: make the instruction
 *                                   cache coherent for the site. NULL: the
 *                                   default, alt_sync_icache().
 *
 * A callback runs before make_writable, with the site still executable: it
 * writes into a buffer (updptr) that the runtime then copies to the site.
 */
struct alt_config {
	enum alt_profile profile;
	uint32_t ncaps;			/* NCAPS of the capability table */

	/* The active capabilities: has_cap(ctx, cap) when set, else the bitmap. */
	int (*has_cap)(void *ctx, uint32_t cap);
	const uint64_t *caps;		/* bit n of caps[n / 64]: capability n */
	uint32_t caps_bits;		/* bits in caps; capabilities past it are absent */

	int (*make_writable)(void *ctx, void *site, size_t len);
	int (*restore)(void *ctx, void *site, size_t len);
	void (*sync)(void *ctx, void *site, size_t len);
	void *ctx;
};

/* Status codes: 0 success, each error its own code (alt_strerror names it). */
enum alt_status {
	ALT_OK = 0,
	ALT_E_LENGTH = 1,	/* orig_len not a multiple of 4, or 0 in a callback; static alt_len != orig_len */
	ALT_E_IMMOVABLE = 2,	/* ADR or a literal load (LDR, LDRSW, PRFM, SIMD/FP LDR) */
	ALT_E_PCREL_UNKNOWN = 3,	/* PC-relative, not re-encodable: FEAT_CMPBR, unallocated literal */
	ALT_E_RANGE = 4,	/* the re-encoded offset does not fit its field */
	ALT_E_HOOK = 5,		/* make_writable or restore returned nonzero */
	ALT_E_BLOB = 6,		/* the blob is malformed: magic, version, sizes */
	ALT_E_PROFILE = 7,	/* the blob's profile or ncaps differs from the config's */
	ALT_E_CONFIG = 8,	/* a NULL config or result, or an unknown profile */
	ALT_E_ALIGN = 9,	/* a site or a replacement not 4-byte aligned */
};

/*
 * The outcome of one call. On an error, `entry` is the index of the failing
 * entry (table order, from 0), `insn` the instruction of its replacement
 * (or -1 when the error is not about one instruction), `word` that
 * instruction. `applied` counts the entries applied before returning.
 */
struct alt_result {
	enum alt_status status;
	uint32_t entry;
	int32_t insn;
	uint32_t word;
	uint32_t applied;
};

/* Apply the table [begin, end) of the running image (__alt_instructions ..
 * __alt_instructions_end). Returns res->status. */
enum alt_status alt_apply_table(const struct alt_config *cfg, struct alt_instr *begin,
				struct alt_instr *end, struct alt_result *res);

/*
 * Apply a compact binary manifest of `size` bytes (any alignment). Each
 * address in it is a link-time address; `bias` is added to get the running
 * address (0 for an image running where it was linked). The blob's profile
 * must be cfg's, and its ncaps too where both are known (ALT_E_PROFILE); the
 * known one is used.
 */
enum alt_status alt_apply_blob(const struct alt_config *cfg, const void *blob, size_t size,
			       uintptr_t bias, struct alt_result *res);

/* The default cache maintenance: dc cvau, dsb ish, ic ivau, dsb ish, isb
 * over [addr, addr + len), with the line sizes of CTR_EL0. */
void alt_sync_icache(void *ctx, void *addr, size_t len);

/* A one-line description of a status code (a static string). */
const char *alt_strerror(enum alt_status status);

/* The compact binary manifest (README.md): header and entry layout. */
#define ALT_BLOB_MAGIC 0x42544c41u	/* "ALTB" as a little-endian u32 */
#define ALT_BLOB_VERSION 2	/* version 1 (24-byte entries) is read too */
#define ALT_BLOB_HEADER_SIZE 40
#define ALT_BLOB_ENTRY_SIZE 32
#define ALT_BLOB_ENTRY_SIZE_V1 24

#ifdef __cplusplus
}
#endif

#endif /* ALTLINK_ALT_RUNTIME_H */
