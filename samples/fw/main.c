/*
 * The sample firmware: six alternative sites, and a report of which code
 * each one ran.
 *
 *   site mul        a static alternative in C            HAS_FAST_MUL
 *   site crc        alternative_if/else/endif (sites.S)  HAS_CRC
 *   site call       a replacement that branches out      HAS_LSE
 *   site skip       a replacement that branches inside   HAS_CRC
 *   site adrp       a replacement that uses ADRP + ADD   HAS_FAST_MUL
 *   callback site   a callback alternative in C          (HAS_LSE under linux-v6.1)
 *
 * Usage: fw [CAPABILITY...], e.g. `qemu-aarch64 fw.elf HAS_CRC HAS_LSE`.
 * Nothing applies the alternatives yet, so every site reports "original".
 */
#include <stdint.h>

#include "caps.h"			/* generated from caps.txt: first */
#include <altlink/alternative.h>

#include "fw.h"

/* ---- output, through sys_write ---------------------------------------- */

static unsigned long length(const char *s)
{
	unsigned long n = 0;

	while (s[n] != '\0')
		n++;
	return n;
}

static void print(const char *s)
{
	sys_write(1, s, length(s));
}

static void report(const char *site, int variant)
{
	print(site);
	print(": ");
	print(variant == 0 ? "original" : variant == 1 ? "patched" : "unexpected");
	print("\n");
}

/* ---- the sites written in C -------------------------------------------- */

/* A static alternative: `mov w, #0` at the site, `mov w, #1` as replacement. */
static int mul_site(void)
{
	int variant;

	asm volatile(ALTERNATIVE("mov %w0, #0", "mov %w0, #1", ALT_CAP_HAS_FAST_MUL)
		     : "=r"(variant));
	return variant;
}

/*
 * The callback of the callback site. A patcher calls it with the site's
 * instructions (origptr) and where to write the new ones (updptr). It turns
 * the site's `movz wN, #0` into `movz wN, #1`, keeping the register the
 * compiler chose. It is named in the site's assembly text, so it must not
 * be static.
 */
#define MOVZ_IMM16_SHIFT 5
#define MOVZ_IMM16_MASK (0xffffu << MOVZ_IMM16_SHIFT)

alt_callback_fn fw_callback;

void fw_callback(struct alt_instr *alt, uint32_t *origptr, uint32_t *updptr, int nr_inst)
{
	(void)alt;
	for (int i = 0; i < nr_inst; i++)
		updptr[i] = (origptr[i] & ~MOVZ_IMM16_MASK) | (1u << MOVZ_IMM16_SHIFT);
}

static int callback_site(void)
{
	int variant;

#ifdef ALTLINK_ABI_LINUX_V61
	/* linux-v6.1: the callback runs only when its capability is present. */
	asm volatile(ALTERNATIVE_CB("mov %w0, #0", ALT_CAP_HAS_LSE, fw_callback)
		     : "=r"(variant));
#else
	/* linux-v4.17: the callback always runs. */
	asm volatile(ALTERNATIVE_CB("mov %w0, #0", fw_callback) : "=r"(variant));
#endif
	return variant;
}

/* ---- capabilities from the command line --------------------------------- */

static const struct {
	const char *name;
	int cap;
} cap_names[] = {
	{ "HAS_FAST_MUL", ALT_CAP_HAS_FAST_MUL },
	{ "HAS_CRC", ALT_CAP_HAS_CRC },
	{ "HAS_LSE", ALT_CAP_HAS_LSE },
};

static int same(const char *a, const char *b)
{
	while (*a != '\0' && *a == *b) {
		a++;
		b++;
	}
	return *a == *b;
}

/* The set of capabilities named in argv[1..], or -1 after printing an error. */
static int64_t caps_from_args(int argc, char **argv)
{
	int64_t caps = 0;

	for (int i = 1; i < argc; i++) {
		unsigned int j = 0;

		while (j < sizeof(cap_names) / sizeof(cap_names[0]) && !same(argv[i], cap_names[j].name))
			j++;
		if (j == sizeof(cap_names) / sizeof(cap_names[0])) {
			print("fw: unknown capability ");
			print(argv[i]);
			print("\n");
			return -1;
		}
		caps |= (int64_t)1 << cap_names[j].cap;
	}
	return caps;
}

/* ---- main --------------------------------------------------------------- */

int fw_main(int argc, char **argv)
{
	int64_t caps = caps_from_args(argc, argv);

	if (caps < 0)
		return 2;

	/*
	 * Patch here: once, before any site runs. A runtime patcher applies the
	 * table between __alt_instructions and __alt_instructions_end (see
	 * altlink/ldscripts/alternatives.ld) for the capabilities in `caps`,
	 * making the text between __text_start and __text_end writable first.
	 * Nothing does yet, so every site runs its original code.
	 */
	(void)caps;

	report("site mul", mul_site());
	report("site crc", crc_site());
	report("site call", call_site());
	report("site skip", skip_site());
	print("site adrp: ");
	print(adrp_site());
	print("\n");
	report("callback site", callback_site());
	return 0;
}
