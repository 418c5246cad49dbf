/*
 * first-line.S: the smallest arm64 guest "kernel" the rxl-timing scenario boots, so
 * that "time to the guest's first console line" measures the toolstacks and not a
 * Linux boot. Its first instructions write one line to the PV console ring and
 * notify dom0; once the console daemon has consumed it, it powers the domain off.
 *
 * Why not Linux with earlycon=xenboot: hvc_xen.c's xenboot earlycon writes through
 * the console_io hypercall (Xen's own console), which Xen's default XSM policy
 * refuses to a domU unless Xen is a debug build (CONFIG_VERBOSE_DEBUG,
 * xen/include/xsm/dummy.h xsm_console_io); Debian's Xen is not.
 *
 * Runs with the MMU off (VA = IPA, Device memory: aligned accesses only), at the
 * address of its Image header below (text_offset 0), position independent.
 * Hypercalls: x16 = number, x0.. = arguments, hvc #0xEA1; x0..x4 may be clobbered.
 * Built by tests/testbed/run.sh with aarch64-linux-gnu-gcc and objcopy -O binary.
 */
	.equ XEN_HYPERCALL_TAG, 0xEA1
	.equ HYPERVISOR_sched_op, 29		/* xen/include/public/xen.h */
	.equ HYPERVISOR_event_channel_op, 32
	.equ HYPERVISOR_hvm_op, 34
	.equ HVMOP_get_param, 1			/* public/hvm/hvm_op.h */
	.equ HVM_PARAM_CONSOLE_PFN, 17		/* public/hvm/params.h */
	.equ HVM_PARAM_CONSOLE_EVTCHN, 18
	.equ EVTCHNOP_send, 4			/* public/event_channel.h */
	.equ SCHEDOP_yield, 0			/* public/sched.h */
	.equ SCHEDOP_shutdown, 2
	.equ SHUTDOWN_poweroff, 0
	.equ SHUTDOWN_crash, 3
	.equ DOMID_SELF, 0x7FF0
	.equ XEN_PAGE_SHIFT, 12
	.equ CONS_OUT, 1024			/* public/io/console.h: out[2048] */
	.equ CONS_OUT_MASK, 2047
	.equ CONS_OUT_CONS, 3080
	.equ CONS_OUT_PROD, 3084
	.equ YIELDS_PER_NOTIFY, 64		/* re-notify until the line is consumed */
	.equ YIELDS_AFTER_CONSUMED, 256		/* let the daemon log it before poweroff */

	.text
	.globl _start
_start:
	/* The arm64 Image header (Documentation/arch/arm64/booting.rst). */
	b	entry				/* code0 */
	.word	0				/* code1 */
	.quad	0				/* text_offset */
	.quad	image_end - _start		/* image_size */
	.quad	0xa				/* flags: LE, 4K pages, anywhere in RAM */
	.quad	0, 0, 0				/* res2..res4 */
	.word	0x644d5241			/* magic "ARM\x64" */
	.word	0				/* res5 */

entry:
	mov	w0, #HVM_PARAM_CONSOLE_PFN
	bl	get_param
	lsl	x20, x0, #XEN_PAGE_SHIFT	/* x20: the console ring */
	mov	w0, #HVM_PARAM_CONSOLE_EVTCHN
	bl	get_param
	adr	x1, send_port
	str	w0, [x1]			/* struct evtchn_send { port } */

	/* Append the line at out_prod, then publish the new out_prod. */
	ldr	w22, [x20, #CONS_OUT_PROD]
	add	x5, x20, #CONS_OUT
	adr	x1, line
	mov	x2, #(line_end - line)
1:	ldrb	w3, [x1], #1
	and	w4, w22, #CONS_OUT_MASK
	strb	w3, [x5, x4]
	add	w22, w22, #1
	subs	x2, x2, #1
	b.ne	1b
	dsb	sy
	str	w22, [x20, #CONS_OUT_PROD]
	dsb	sy

	/* Notify (again every YIELDS_PER_NOTIFY yields: a notification sent before the
	 * daemon bound its end of the channel is lost) until out_cons reaches out_prod. */
notify:
	mov	x0, #EVTCHNOP_send
	adr	x1, send_port
	mov	x16, #HYPERVISOR_event_channel_op
	hvc	#XEN_HYPERCALL_TAG
	mov	x23, #YIELDS_PER_NOTIFY
2:	ldr	w3, [x20, #CONS_OUT_CONS]
	cmp	w3, w22
	b.eq	consumed
	bl	yield
	subs	x23, x23, #1
	b.ne	2b
	b	notify

consumed:
	mov	x23, #YIELDS_AFTER_CONSUMED
3:	bl	yield
	subs	x23, x23, #1
	b.ne	3b
	mov	w0, #SHUTDOWN_poweroff
	b	shutdown

/* get_param: w0 = HVM param index; returns its value in x0 (crashes on error). */
get_param:
	adr	x1, param
	mov	w2, #DOMID_SELF
	strh	w2, [x1]			/* struct xen_hvm_param: domid */
	str	w0, [x1, #4]			/* index */
	mov	x0, #HVMOP_get_param
	mov	x16, #HYPERVISOR_hvm_op
	hvc	#XEN_HYPERCALL_TAG
	cbnz	x0, crash
	adr	x1, param
	ldr	x0, [x1, #8]			/* value */
	ret

yield:
	mov	x0, #SCHEDOP_yield
	mov	x1, #0
	mov	x16, #HYPERVISOR_sched_op
	hvc	#XEN_HYPERCALL_TAG
	ret

crash:
	mov	w0, #SHUTDOWN_crash
shutdown:					/* w0 = reason */
	adr	x1, shutdown_reason
	str	w0, [x1]			/* struct sched_shutdown { reason } */
	mov	x0, #SCHEDOP_shutdown
	mov	x16, #HYPERVISOR_sched_op
	hvc	#XEN_HYPERCALL_TAG
	b	.

line:
	.ascii	"=== RXEN-FIRST-LINE from the guest's first instructions ===\r\n"
line_end:
	.balign	16
param:
	.space	16				/* struct xen_hvm_param */
send_port:
	.word	0
shutdown_reason:
	.word	0
	.balign	16
image_end:
