/*
 * The sample firmware: six alternative sites, patched at start-up by the
 * altlink runtime (altlink/runtime/) for the capabilities named on the
 * command line, and a report of which code each site ran.
 *
 *   site mul        a static alternative in C            HAS_FAST_MUL
 *   site crc        alternative_if/else/endif (sites.S)  HAS_CRC
 *   site call       a replacement that branches out      HAS_LSE
 *   site skip       a replacement that branches inside   HAS_CRC
 *   site adrp       a replacement that uses ADRP + ADD   HAS_FAST_MUL
 *   callback site   a callback alternative in C          (HAS_LSE under linux-v6.1)
 *
 * Usage: fw [--no-patch] [--blob FILE] [--dump] [CAPABILITY...]
 *
 *   qemu-aarch64 fw.elf HAS_CRC HAS_LSE
 *
 *   CAPABILITY   the capabilities the "CPU" has (names from caps.txt)
 *   --no-patch   leave the code as it is (an image patched offline by
 *                `altlink patch` runs this way)
 *   --blob FILE  patch from a compact manifest (`altlink manifest fw.elf
 *                --compact FILE`) instead of the image's own table
 *   --dump       after patching, print the text (__text_start..__text_end)
 *                in hex, to compare with an image patched offline
 *
 * Exit status: 0, 1 when patching failed, 2 for a bad command line.
 */
#include <stddef.h>
#include <stdint.h>

#include "caps.h"			/* generated from caps.txt: first */
#include <altlink/alternative.h>
#include "alt_runtime.h"		/* the runtime: after alternative.h */

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

/* `value` as `digits` hexadecimal digits at `out`; returns the end. */
static char *hex(char *out, uint64_t value, int digits)
{
	for (int i = digits - 1; i >= 0; i--, value >>= 4)
		out[i] = "0123456789abcdef"[value & 0xf];
	return out + digits;
}

static void print_hex(uint64_t value, int digits)
{
	char buf[16];

	sys_write(1, buf, (unsigned long)(hex(buf, value, digits) - buf));
}

static void print_number(uint32_t value)
{
	char buf[10];
	int i = sizeof(buf);

	do {
		buf[--i] = (char)('0' + value % 10);
		value /= 10;
	} while (value != 0);
	sys_write(1, buf + i, sizeof(buf) - (unsigned long)i);
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

/* ---- the command line ---------------------------------------------------- */

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

struct options {
	uint64_t caps;			/* bit n: capability n is present */
	int patch;			/* 0 with --no-patch */
	const char *blob;		/* --blob FILE, or NULL: the image's table */
	int dump;			/* --dump */
};

/* Fills `opt` from argv[1..]; 0 on success, -1 after printing an error. */
static int parse_args(int argc, char **argv, struct options *opt)
{
	opt->caps = 0;
	opt->patch = 1;
	opt->blob = NULL;
	opt->dump = 0;
	for (int i = 1; i < argc; i++) {
		unsigned int j = 0;

		if (same(argv[i], "--no-patch")) {
			opt->patch = 0;
			continue;
		}
		if (same(argv[i], "--dump")) {
			opt->dump = 1;
			continue;
		}
		if (same(argv[i], "--blob") && i + 1 < argc) {
			opt->blob = argv[++i];
			continue;
		}
		while (j < sizeof(cap_names) / sizeof(cap_names[0]) && !same(argv[i], cap_names[j].name))
			j++;
		if (j == sizeof(cap_names) / sizeof(cap_names[0])) {
			print(argv[i][0] == '-' ? "fw: unknown option " : "fw: unknown capability ");
			print(argv[i]);
			print("\n");
			return -1;
		}
		opt->caps |= (uint64_t)1 << cap_names[j].cap;
	}
	return 0;
}

/* ---- patching, through the altlink runtime -------------------------------- */

/* From the linker script (fw.ld) and the altlink fragment (alternatives.ld). */
extern char __text_start[], __text_end[];
extern struct alt_instr __alt_instructions[], __alt_instructions_end[];

#define PROT_READ 1
#define PROT_WRITE 2
#define PROT_EXEC 4
#define PAGE_SIZE 4096ul

static unsigned long text_pages(void)
{
	unsigned long size = (unsigned long)(__text_end - __text_start);

	return (size + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1);
}

/*
 * The runtime's hooks around each write of a site. The text stays
 * executable while it is writable: the runtime and the callbacks run from it.
 */
static int text_writable(void *ctx, void *site, size_t len)
{
	(void)ctx;
	(void)site;
	(void)len;
	return sys_mprotect(__text_start, text_pages(), PROT_READ | PROT_WRITE | PROT_EXEC) != 0;
}

static int text_executable(void *ctx, void *site, size_t len)
{
	(void)ctx;
	(void)site;
	(void)len;
	return sys_mprotect(__text_start, text_pages(), PROT_READ | PROT_EXEC) != 0;
}

#define AT_FDCWD (-100)
#define O_RDONLY 0

static unsigned char blob[4096];	/* room for 168 entries */

/* Reads the file at `path` into blob[]; its size, or -1 after printing an error. */
static long read_blob(const char *path)
{
	long fd = sys_openat(AT_FDCWD, path, O_RDONLY, 0);
	long size = 0, n;

	if (fd < 0) {
		print("fw: cannot open ");
		print(path);
		print("\n");
		return -1;
	}
	do {
		n = sys_read((int)fd, blob + size, sizeof(blob) - (unsigned long)size);
		size += n > 0 ? n : 0;
	} while (n > 0 && size < (long)sizeof(blob));
	sys_close((int)fd);
	if (n < 0 || size == (long)sizeof(blob)) {
		print("fw: cannot read ");
		print(path);
		print(n < 0 ? "\n" : ": larger than the buffer\n");
		return -1;
	}
	return size;
}

/*
 * Applies the alternatives for `caps`: from the image's own table, or from
 * the compact manifest at blob_path. 0 on success, -1 after printing why.
 */
static int apply_alternatives(uint64_t caps, const char *blob_path)
{
	struct alt_config cfg = {
		.profile = ALT_PROFILE_DEFAULT,	/* linux-v6.1 with -DALTLINK_ABI_LINUX_V61 */
		.ncaps = ALT_NCAPS,
		.caps = &caps,
		.caps_bits = 64,
		.make_writable = text_writable,
		.restore = text_executable,
		.sync = NULL,			/* the runtime's own cache maintenance */
	};
	struct alt_result res;

	if (blob_path == NULL) {
		alt_apply_table(&cfg, __alt_instructions, __alt_instructions_end, &res);
	} else {
		long size = read_blob(blob_path);

		if (size < 0)
			return -1;
		alt_apply_blob(&cfg, blob, (size_t)size, 0, &res);	/* linked where it runs */
	}
	if (res.status == ALT_OK)
		return 0;
	print("fw: patching failed at entry ");
	print_number(res.entry);
	if (res.insn >= 0) {
		print(", instruction ");
		print_number((uint32_t)res.insn);
		print(" (0x");
		print_hex(res.word, 8);
		print(")");
	}
	print(": ");
	print(alt_strerror(res.status));
	print("\n");
	return -1;
}

/* --dump: the text as hex, 32 bytes a line, each line after its address. */
static void dump_text(void)
{
	const unsigned char *p = (const unsigned char *)__text_start;
	const unsigned char *end = (const unsigned char *)__text_end;

	print("text ");
	print_hex((uintptr_t)p, 16);
	print("..");
	print_hex((uintptr_t)end, 16);
	print(":\n");
	for (; p < end; p += 32) {
		char line[16 + 1 + 2 * 32 + 1];
		char *out = hex(line, (uintptr_t)p, 16);

		*out++ = ' ';
		for (int i = 0; i < 32 && p + i < end; i++)
			out = hex(out, p[i], 2);
		*out++ = '\n';
		sys_write(1, line, (unsigned long)(out - line));
	}
}

/* ---- main --------------------------------------------------------------- */

int fw_main(int argc, char **argv)
{
	struct options opt;

	if (parse_args(argc, argv, &opt) < 0)
		return 2;

	/* Patch once, before any site runs. */
	if (opt.patch && apply_alternatives(opt.caps, opt.blob) < 0)
		return 1;

	report("site mul", mul_site());
	report("site crc", crc_site());
	report("site call", call_site());
	report("site skip", skip_site());
	print("site adrp: ");
	print(adrp_site());
	print("\n");
	report("callback site", callback_site());

	if (opt.dump)
		dump_text();
	return 0;
}
