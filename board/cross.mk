# board/cross.mk: shared by the cross boards. Set TRIPLET, QEMU_ARCH,
# SYSROOT_ARCH and SYSROOT_PKGS, then include this file.
#
# The cross gcc already has its own C library in /usr/$(TRIPLET); the sysroot
# under $(O) only adds the libraries' headers and .so files, searched after
# the compiler's own (-isystem, -L, -rpath-link for their DT_NEEDED chains).
comma := ,
empty :=
space := $(empty) $(empty)
CROSS_COMPILE := $(TRIPLET)-
DEB_PKGS += gcc-$(TRIPLET) libc6-dev-$(SYSROOT_ARCH)-cross qemu-user
SYSROOT_LIBDIRS := $(SYSROOT)/usr/lib/$(TRIPLET) $(SYSROOT)/lib/$(TRIPLET)
BOARD_CPPFLAGS += -isystem $(SYSROOT)/usr/include/$(TRIPLET) -isystem $(SYSROOT)/usr/include
BOARD_LDFLAGS += $(addprefix -L,$(SYSROOT_LIBDIRS)) $(addprefix -Wl$(comma)-rpath-link$(comma),$(SYSROOT_LIBDIRS))
# qemu-user: -L finds the target's dynamic loader and libc; -E sets the
# guest's LD_LIBRARY_PATH only, so host tools around it are unaffected.
QEMU := qemu-$(QEMU_ARCH) -L /usr/$(TRIPLET) -E LD_LIBRARY_PATH=$(subst $(space),:,$(SYSROOT_LIBDIRS))
