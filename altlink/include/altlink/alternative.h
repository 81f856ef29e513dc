/*
 * altlink/alternative.h: AArch64 alternatives (Linux-arm64-style code
 * patching) for C and assembly, gcc and clang, GNU as and clang's integrated
 * assembler.
 *
 *     #include "caps.h"              // generated: ALT_CAP_<NAME>, ALT_NCAPS
 *     #include <altlink/alternative.h>
 *
 * Compile with -I <altlink>/include. The table ABI profile is chosen by one
 * define:
 *
 *   linux-v4.17 (default)        ALTLINK_ABI_LINUX_V61 not defined. A callback
 *                                entry has cap == ALT_NCAPS, so ALT_NCAPS must
 *                                be defined before this header is included.
 *   linux-v6.1                   ALTLINK_ABI_LINUX_V61 defined. A callback
 *                                entry has cap | 0x8000 and runs only when
 *                                its capability is present.
 *
 * C (the strings go into an asm statement):
 *
 *   ALTERNATIVE(oldinstr, newinstr, cap)
 *   ALTERNATIVE(oldinstr, newinstr, cap, enabled)
 *       A static alternative: the site runs oldinstr; a patcher that finds
 *       cap present copies newinstr over it. Both must have the same length
 *       (checked when assembling: ".org" errors). `enabled` is 0 or 1 (for
 *       instance IS_ENABLED(CONFIG_FOO)); when 0 the whole block, oldinstr
 *       included, is left out, as in Linux.
 *   ALTERNATIVE_CB(oldinstr, cb)            linux-v4.17
 *   ALTERNATIVE_CB(oldinstr, cap, cb)       linux-v6.1
 *       A callback alternative: the patcher calls cb (see alt_callback_fn
 *       below), which writes the site's new instructions. cb is named in the
 *       assembly text, so it must have external linkage (not `static`).
 *
 *     int v;
 *     asm volatile(ALTERNATIVE("mov %w0, #0", "mov %w0, #1", ALT_CAP_HAS_CRC)
 *                  : "=r"(v));
 *
 * Assembly (.S files; recognized by __ASSEMBLER__, or Linux's __ASSEMBLY__):
 *
 *   alternative_if_not cap        alternative_if cap
 *       <site: original>              <replacement>
 *   alternative_else              alternative_else
 *       <replacement>                 <site: original>
 *   alternative_endif             alternative_endif
 *
 *   alternative_if cap
 *       <replacement>
 *   alternative_else_nop_endif    (the site is as many NOPs)
 *
 *   alternative_insn insn1, insn2, cap [, enabled]
 *
 *   alternative_cb cb             linux-v4.17
 *   alternative_cb cap, cb        linux-v6.1
 *       <site: original>
 *   alternative_cb_end
 *
 * The table (section .altinstructions, flags "a", 12-byte entries, 4-byte
 * aligned) has the layout of struct alt_instr below. The replacement code
 * goes to .altinstr_replacement (flags "ax") under linux-v4.17, and to
 * subsection 1 of the current section (after the function code, as in Linux
 * 5.8 and later) under linux-v6.1. Link with the fragment
 * <altlink>/ldscripts/alternatives.ld, which keeps both and defines
 * __alt_instructions and __alt_instructions_end.
 *
 * Code that only needs the C types (struct alt_instr, alt_callback_fn), such
 * as a runtime patcher built without a capability table, may define
 * ALTLINK_TYPES_ONLY: it then gets no macros and needs no ALT_NCAPS.
 *
 * Capabilities are named by the generated header: ALT_CAP_<NAME> for each
 * name of the table (ALT_CAP_HAS_CRC), and ALT_NCAPS.
 *
 * What the assembler says (from the checks below):
 *
 *   altlink: replacement longer than the site     newinstr has more bytes than
 *   altlink: replacement shorter than the site    oldinstr (or fewer); GNU as,
 *                                                 and clang in assembly (for C
 *                                                 clang says "invalid .org
 *                                                 offset" at the source line)
 *   altlink: capability X is not defined          X is no ALT_CAP_<NAME> of the
 *                                                 header included (GNU as, in
 *                                                 assembly; in C it says
 *                                                 "non-constant expression")
 *   altlink: capability X is out of range         a number at or above
 *                                                 ALT_NCAPS (the callback
 *                                                 marker), or not defined
 *                                                 (clang, after "expected
 *                                                 absolute expression")
 *
 * The numeric local labels 661 to 664 are used by the macros, as in Linux.
 */
/* Two include guards: the types (always), and the macros (unless
 * ALTLINK_TYPES_ONLY), so a types-only inclusion does not hide the macros
 * from a later full one. */
#ifndef ALTLINK_ALTERNATIVE_H
#define ALTLINK_ALTERNATIVE_H

#if defined(__ASSEMBLER__) || defined(__ASSEMBLY__)
#define ALTLINK_IN_ASSEMBLY 1
#endif

/* Layout and markers, usable from C, assembly and the preprocessor. */
#define ALT_ENTRY_SIZE 12
#define ALT_CB_SHIFT 15            /* linux-v6.1: bit 15 marks a callback */
#define ALT_CB_BIT 0x8000
#define ALT_CAPNUM_MASK 0x7fff

#ifdef ALTLINK_ABI_LINUX_V61
/* The cap field of a callback entry that runs when capability cap is present. */
#define ALT_CB_MARKER(cap) (ALT_CB_BIT | (cap))
#define ALT_IS_CALLBACK(capfield) (((capfield) & ALT_CB_BIT) != 0)
#define ALT_CAPNUM(capfield) ((capfield) & ALT_CAPNUM_MASK)
#define ALTLINK_CAP_LIMIT_ ALT_CB_BIT   /* static capabilities are below this */
#else
/* linux-v4.17: a callback has no capability; the argument is ignored. */
#define ALT_CB_MARKER(cap) (ALT_NCAPS)
#define ALT_IS_CALLBACK(capfield) ((capfield) == (ALT_NCAPS))
#define ALT_CAPNUM(capfield) (capfield)
#define ALTLINK_CAP_LIMIT_ (ALT_NCAPS)
#endif

/* ------------------------------------------------------------------------ */
/* C types                                                                  */
/* ------------------------------------------------------------------------ */
#ifndef ALTLINK_IN_ASSEMBLY
#include <stdint.h>

/*
 * One table entry, 12 bytes, no padding. The layout is the ABI (docs/reference.md,
 * section 1; Linux's struct alt_instr); the struct is not declared packed because its
 * natural layout already has no padding, and keeping 4-byte alignment lets
 * the compiler use aligned loads (a runtime with the MMU off faults on
 * unaligned ones).
 */
struct alt_instr {
	int32_t orig_offset;    /* site address - &orig_offset */
	int32_t alt_offset;     /* replacement or callback address - &alt_offset */
	uint16_t cap;           /* capability number, plus the callback marker */
	uint8_t orig_len;       /* bytes at the site */
	uint8_t alt_len;        /* bytes of replacement; 0 for a callback */
};

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(struct alt_instr) == ALT_ENTRY_SIZE, "struct alt_instr is 12 bytes");
_Static_assert(__builtin_offsetof(struct alt_instr, cap) == 8, "cap at offset 8");
_Static_assert(__builtin_offsetof(struct alt_instr, alt_len) == 11, "alt_len at offset 11");
#endif

#define ALT_ORIG_PTR(a) ((void *)((char *)&(a)->orig_offset + (a)->orig_offset))
#define ALT_REPL_PTR(a) ((void *)((char *)&(a)->alt_offset + (a)->alt_offset))

/*
 * A callback: writes nr_inst (= orig_len / 4) instructions at updptr for the
 * site at origptr (writing origptr's own words back means "not patching").
 * Declare one with `alt_callback_fn my_cb;`.
 */
typedef void alt_callback_fn(struct alt_instr *alt, uint32_t *origptr,
			     uint32_t *updptr, int nr_inst);
typedef alt_callback_fn *alternative_cb_t;     /* Linux's name, a pointer */
#endif /* !ALTLINK_IN_ASSEMBLY */
#endif /* ALTLINK_ALTERNATIVE_H: the types */

#if !defined(ALTLINK_TYPES_ONLY) && !defined(ALTLINK_ALTERNATIVE_MACROS_H)
#define ALTLINK_ALTERNATIVE_MACROS_H

#if !defined(ALTLINK_ABI_LINUX_V61) && !defined(ALT_NCAPS)
#error "altlink/alternative.h: ALT_NCAPS is not defined. Under the linux-v4.17 profile a callback entry is marked by cap == ALT_NCAPS: include the capability header generated from your table (e.g. env.AltCaps('caps.h', 'caps.txt')) before <altlink/alternative.h>, or define ALT_NCAPS; define ALTLINK_ABI_LINUX_V61 for the linux-v6.1 profile."
#endif

#define ALTLINK_STR_(x) #x
#define ALTLINK_STR(x) ALTLINK_STR_(x)

#ifndef ALTLINK_IN_ASSEMBLY
/* ------------------------------------------------------------------------ */
/* C: strings for asm statements                                            */
/* ------------------------------------------------------------------------ */

/* One table entry, appended to .altinstructions. */
#define ALTLINK_ENTRY_(orig, alt, cap, orig_len, alt_len)		\
	".pushsection .altinstructions, \"a\"\n"			\
	"\t.balign 4\n"							\
	"\t.word " orig " - .\n"					\
	"\t.word " alt " - .\n"						\
	"\t.hword " cap "\n"						\
	"\t.byte " orig_len "\n"					\
	"\t.byte " alt_len "\n"						\
	".popsection\n"

/*
 * A static entry's capability must be a constant below the callback marker.
 * A name that is not defined fails the ".if" first (GNU as: "non-constant
 * expression"; clang: "expected absolute expression"), then this names it.
 * (The assembly macros below check names first, with GNU as; here, where
 * every line counts against inlining the function, they do not.)
 */
#define ALTLINK_CHECK_CAP_(cap)						\
	".if (" cap ") < 0 || (" cap ") >= (" ALTLINK_STR(ALTLINK_CAP_LIMIT_) ")\n" \
	".error \"altlink: capability " cap " is out of range (0 <= cap < " \
		ALTLINK_STR(ALTLINK_CAP_LIMIT_) "), or not defined\"\n"	\
	".endif\n"

/*
 * The size check: the replacement (663..664) must be exactly as long as the
 * site (661..662). It comes after all four labels are defined, so a one-pass
 * assembler can evaluate it. With GNU as, an ".if" says which way they
 * differ. clang's integrated assembler cannot evaluate that ".if" in an asm
 * statement: there, the two .org lines (Linux's check) move the location
 * counter backwards, an error at the source line, unless the lengths agree.
 */
#ifdef __clang__
#define ALTLINK_ORG_CHECK_(cap)						\
	".org . - (664b - 663b) + (662b - 661b)\n"			\
	".org . - (662b - 661b) + (664b - 663b)\n"
#else
#define ALTLINK_ORG_CHECK_(cap)						\
	".if (664b - 663b) > (662b - 661b)\n"				\
	".error \"altlink: replacement longer than the site (cap " cap ")\"\n" \
	".elseif (664b - 663b) < (662b - 661b)\n"			\
	".error \"altlink: replacement shorter than the site (cap " cap ")\"\n" \
	".endif\n"
#endif

#ifdef ALTLINK_ABI_LINUX_V61
/* Replacement code in subsection 1 of the current section (Linux 5.8+). */
#define ALTLINK_REPL_BEGIN_ ".subsection 1\n\t.balign 4\n"
#define ALTLINK_REPL_END_(cap) ALTLINK_ORG_CHECK_(cap) ".previous\n"
#else
#define ALTLINK_REPL_BEGIN_ ".pushsection .altinstr_replacement, \"ax\"\n\t.balign 4\n"
#define ALTLINK_REPL_END_(cap) ".popsection\n" ALTLINK_ORG_CHECK_(cap)
#endif

#define ALTLINK_ALTERNATIVE_(oldinstr, newinstr, cap, enabled)		\
	".if " ALTLINK_STR(enabled) "\n"				\
	ALTLINK_CHECK_CAP_(ALTLINK_STR(cap))				\
	"661:\n\t" oldinstr "\n"					\
	"662:\n"							\
	ALTLINK_ENTRY_("661b", "663f", ALTLINK_STR(cap), "662b - 661b", "664f - 663f") \
	ALTLINK_REPL_BEGIN_						\
	"663:\n\t" newinstr "\n"					\
	"664:\n"							\
	ALTLINK_REPL_END_(ALTLINK_STR(cap))				\
	".endif\n"

/*
 * The optional 4th argument `enabled` defaults to 1 (the trailing 0 keeps
 * "..." non-empty, which -Wpedantic wants before C2x).
 */
#define ALTLINK_ALTERNATIVE_CFG_(oldinstr, newinstr, cap, enabled, ...)	\
	ALTLINK_ALTERNATIVE_(oldinstr, newinstr, cap, enabled)
#define ALTERNATIVE(oldinstr, newinstr, ...)				\
	ALTLINK_ALTERNATIVE_CFG_(oldinstr, newinstr, __VA_ARGS__, 1, 0)

#define ALTLINK_ALTERNATIVE_CB_(oldinstr, capfield, cb)		\
	"661:\n\t" oldinstr "\n"					\
	"662:\n"							\
	ALTLINK_ENTRY_("661b", ALTLINK_STR(cb), capfield, "662b - 661b", "0")

#ifdef ALTLINK_ABI_LINUX_V61
#define ALTERNATIVE_CB(oldinstr, cap, cb)				\
	ALTLINK_CHECK_CAP_(ALTLINK_STR(cap))				\
	ALTLINK_ALTERNATIVE_CB_(oldinstr, ALTLINK_STR(ALT_CB_MARKER(cap)), cb)
#else
#define ALTERNATIVE_CB(oldinstr, cb)					\
	ALTLINK_ALTERNATIVE_CB_(oldinstr, ALTLINK_STR(ALT_NCAPS), cb)
#endif

#else /* ALTLINK_IN_ASSEMBLY */
/* ------------------------------------------------------------------------ */
/* Assembly: assembler macros                                               */
/* ------------------------------------------------------------------------ */

	.macro altlink_entry orig, alt, cap, orig_len, alt_len
	.pushsection .altinstructions, "a"
	.balign 4
	.word \orig - .
	.word \alt - .
	.hword \cap
	.byte \orig_len
	.byte \alt_len
	.popsection
	.endm

	/* A capability that is a name must be a defined symbol (see the C
	 * version above); GNU as only. */
	.macro altlink_undef_ cap
	.ifndef \cap
	.error "altlink: capability \cap is not defined (capabilities are ALT_CAP_<NAME>, from the header generated from your table)"
	.set .Laltlink_undef, 1
	.endif
	.endm

	.macro altlink_check_defined cap
	.set .Laltlink_undef, 0
#ifndef __clang__
	.set .Laltlink_first, 1
	.set .Laltlink_name, 0
	.irpc c, \cap
	.if .Laltlink_first
	.set .Laltlink_first, 0
	.irpc d, ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_
	.ifc \c, \d
	.set .Laltlink_name, 1
	.endif
	.endr
	.endif
	.endr
	.if .Laltlink_name
	altlink_undef_ \cap
	.endif
#endif
	.endm

	/* A static entry's capability must be a defined constant below the
	 * marker. */
	.macro altlink_check_cap cap
	altlink_check_defined \cap
	.if .Laltlink_undef == 0
	.if (\cap) < 0 || (\cap) >= (ALTLINK_CAP_LIMIT_)
#ifdef ALTLINK_ABI_LINUX_V61
	.error "altlink: capability \cap is out of range (0 <= cap < 0x8000), or not defined"
#else
	.error "altlink: capability \cap is out of range (0 <= cap < ALT_NCAPS; ALT_NCAPS marks a callback), or not defined"
#endif
	.endif
	.endif
	.endm

	/* The size check (see the C version above); after all four labels.
	 * swapped: 1 when 661..662 is the replacement (alternative_if). */
	.macro altlink_org_check swapped=0
	.if ((664b - 663b) - (662b - 661b)) * (1 - 2 * (\swapped)) > 0
	.error "altlink: replacement longer than the site"
	.elseif ((664b - 663b) - (662b - 661b)) * (1 - 2 * (\swapped)) < 0
	.error "altlink: replacement shorter than the site"
	.endif
	.org . - (664b - 663b) + (662b - 661b)
	.org . - (662b - 661b) + (664b - 663b)
	.endm

#ifdef ALTLINK_ABI_LINUX_V61
	.macro altlink_repl_begin
	.subsection 1
	.balign 4
	.endm

	.macro altlink_repl_end
	.previous
	.endm
#else
	.macro altlink_repl_begin
	.pushsection .altinstr_replacement, "ax"
	.balign 4
	.endm

	.macro altlink_repl_end
	.popsection
	.endm
#endif

	/* One instruction (or a `;`-separated sequence) each way. */
	.macro alternative_insn insn1, insn2, cap, enabled = 1
	.if \enabled
	altlink_check_cap \cap
661:	\insn1
662:	altlink_entry 661b, 663f, \cap, 662b-661b, 664f-663f
	altlink_repl_begin
663:	\insn2
664:	altlink_repl_end
	altlink_org_check
	.endif
	.endm

	/*
	 * alternative_if_not: the code up to alternative_else is the site, the
	 * code up to alternative_endif its replacement. alternative_if: the other
	 * way round. .Laltlink_mode remembers which, for alternative_else.
	 */
	.macro alternative_if_not cap
	altlink_check_cap \cap
	.set .Laltlink_mode, 0
	altlink_entry 661f, 663f, \cap, 662f-661f, 664f-663f
661:
	.endm

	.macro alternative_if cap
	altlink_check_cap \cap
	.set .Laltlink_mode, 1
	altlink_entry 663f, 661f, \cap, 664f-663f, 662f-661f
	altlink_repl_begin
661:
	.endm

	.macro alternative_else
662:
	.if .Laltlink_mode == 0
	altlink_repl_begin
	.else
	altlink_repl_end
	.endif
663:
	.endm

	.macro alternative_endif
664:
	.if .Laltlink_mode == 0
	altlink_repl_end
	.endif
	altlink_org_check .Laltlink_mode
	.endm

	/* alternative_if's replacement, and a site of as many NOPs. */
	.macro alternative_else_nop_endif
	alternative_else
	.rept (662b - 661b) / 4
	nop
	.endr
	alternative_endif
	.endm

#ifdef ALTLINK_ABI_LINUX_V61
	.macro alternative_cb cap, cb
	altlink_check_cap \cap
	.set .Laltlink_mode, 0
	altlink_entry 661f, \cb, (ALT_CB_BIT|(\cap)), 662f-661f, 0
661:
	.endm
#else
	.macro alternative_cb cb
	.set .Laltlink_mode, 0
	altlink_entry 661f, \cb, (ALT_NCAPS), 662f-661f, 0
661:
	.endm
#endif

	.macro alternative_cb_end
662:
	.endm

#endif /* ALTLINK_IN_ASSEMBLY */
#endif /* the macros */
