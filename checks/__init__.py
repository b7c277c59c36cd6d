"""Boot a kernel through each x86 entry under QEMU and judge the console."""
