/*
 * The sample firmware's alternatives in assembly. Each function returns 0
 * when the original code at its site ran and 1 when the replacement did
 * (adrp_site returns the text "original" or "patched").
 */
#include "caps.h"			/* generated from caps.txt: first */
#include <altlink/alternative.h>

	.macro	function name
	.globl	\name
	.type	\name, %function
	.balign	4
\name:
	.endm

	.text

/* The plain form: alternative_if cap / alternative_else / alternative_endif. */
function crc_site
alternative_if ALT_CAP_HAS_CRC
	mov	w0, #1			// replacement
alternative_else
	mov	w0, #0			// original, at the site
alternative_endif
	ret
	.size	crc_site, . - crc_site

/*
 * A replacement that branches out of itself: a patcher re-encodes the `b`
 * so that, run at the site, it still reaches call_patched.
 */
function call_site
alternative_if ALT_CAP_HAS_LSE
	b	call_patched		// a tail call to code outside the replacement
alternative_else
	mov	w0, #0
alternative_endif
	ret
	.size	call_site, . - call_site

function call_patched
	mov	w0, #1
	ret
	.size	call_patched, . - call_patched

/*
 * A replacement that branches inside itself: its code moves as a block, so
 * a patcher copies the `b 1f` unchanged. The target, the end of the
 * replacement, still counts as inside.
 */
function skip_site
alternative_if ALT_CAP_HAS_CRC
	mov	w0, #1
	b	1f			// skips the next instruction
	mov	w0, #2
1:
alternative_else
	mov	w0, #0
	nop
	nop
alternative_endif
	ret
	.size	skip_site, . - skip_site

/*
 * A replacement that loads an address with ADRP (+ ADD :lo12:): a patcher
 * re-encodes the ADRP's page offset for the site's page; the ADD's low 12
 * bits do not depend on where the code runs.
 */
function adrp_site
alternative_if ALT_CAP_HAS_FAST_MUL
	adrp	x0, patched_text
	add	x0, x0, :lo12:patched_text
alternative_else
	adrp	x0, original_text
	add	x0, x0, :lo12:original_text
alternative_endif
	ret
	.size	adrp_site, . - adrp_site

	.section .rodata.sites, "a"
original_text:
	.asciz	"original"
patched_text:
	.asciz	"patched"

	.section .note.GNU-stack, "", %progbits
