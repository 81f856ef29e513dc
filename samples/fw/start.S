/*
 * Entry point and system calls of the sample firmware: no libc.
 *
 * qemu-aarch64 (like Linux) starts a static program at _start with the
 * initial stack holding argc, then argv[0..argc-1], NULL, envp..., auxv.
 */
	.section .text.start, "ax"
	.globl	_start
	.type	_start, %function
_start:
	ldr	x19, [sp]			// argc
	add	x20, sp, #8			// argv

	/* Clear .bss (a loader other than Linux's may not). */
	adrp	x0, __bss_start
	add	x0, x0, :lo12:__bss_start
	adrp	x1, __bss_end
	add	x1, x1, :lo12:__bss_end
1:	cmp	x0, x1
	b.hs	2f
	stp	xzr, xzr, [x0], #16
	b	1b

	/* Our own stack; argv stays on the one we were given. */
2:	adrp	x0, stack_top
	add	sp, x0, :lo12:stack_top
	mov	x29, #0				// end of the frame chain
	mov	x30, #0

	mov	w0, w19
	mov	x1, x20
	bl	fw_main				// int fw_main(int argc, char **argv)
	b	sys_exit			// exit status: fw_main's result
	.size	_start, . - _start

	/*
	 * long name(...): Linux system call `number`, arguments in x0..x5 as
	 * the C calling convention already has them; the result (or -errno)
	 * in x0.
	 */
	.macro	syscall name, number
	.globl	\name
	.type	\name, %function
\name:
	mov	x8, #\number
	svc	#0
	ret
	.size	\name, . - \name
	.endm

	.text
	syscall	sys_openat, 56
	syscall	sys_close, 57
	syscall	sys_read, 63
	syscall	sys_write, 64
	syscall	sys_mprotect, 226

	/* void sys_exit(int status) */
	.globl	sys_exit
	.type	sys_exit, %function
sys_exit:
	mov	x8, #93				// __NR_exit
	svc	#0
	b	.
	.size	sys_exit, . - sys_exit

	.section .bss.stack, "aw", %nobits
	.balign	16
stack:
	.skip	16384
stack_top:

	.section .note.GNU-stack, "", %progbits
