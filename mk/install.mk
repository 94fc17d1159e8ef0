# install.mk - `make install` and `make uninstall`: the daemon, the client, the client library
# with its pkg-config file, man pages, the client's bash completion, a sample configuration and
# the systemd unit.
#
#   make install                          # under /usr/local, configuration in /usr/local/etc
#   make install PREFIX=/usr              # under /usr, configuration in /etc
#   make install DESTDIR=/tmp/stage PREFIX=/usr    # staged, e.g. for a package
#
# DESTDIR is put before every path written but appears in none of the installed files.

PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
# Where bash-completion looks for completions it loads on demand.
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
# /usr keeps its configuration in /etc; any other prefix in its own etc/.
SYSCONFDIR ?= $(if $(filter /usr /usr/,$(PREFIX)),/etc,$(PREFIX)/etc)
UNITDIR    ?= $(PREFIX)/lib/systemd/system

INSTALL_VERSION := $(shell sed -n 's/^\#define LC_VERSION "\(.*\)"/\1/p' src/core/config.h)

# The .in templates: @NAME@ becomes the installed path. Paths under PREFIX are written
# relative to ${prefix} in the .pc file, so `pkg-config --define-prefix` can move them.
INSTALL_SUBST = -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@SBINDIR@|$(SBINDIR)|g' \
                -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@VERSION@|$(INSTALL_VERSION)|g' \
                -e 's|@LIBDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))|g' \
                -e 's|@INCLUDEDIR@|$(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))|g'

# What install writes, for uninstall (the configuration is handled apart).
INSTALLED_FILES = $(SBINDIR)/logcasterd $(BINDIR)/logcaster \
                  $(MANDIR)/man8/logcasterd.8 $(MANDIR)/man1/logcaster.1 \
                  $(BASHCOMPDIR)/logcaster \
                  $(UNITDIR)/logcaster.service \
                  $(INCLUDEDIR)/logcaster.h $(LIBDIR)/liblogcaster.a $(LIBDIR)/liblogcaster.so.1 \
                  $(LIBDIR)/liblogcaster.so $(LIBDIR)/pkgconfig/logcaster.pc

.PHONY: install uninstall

# The build packages first (only those `make run` needs: scripts/debian-packages.txt), then
# `all` and `lib` (mk/lib.mk: build/rel/liblogcaster.a and .so.1) in a sub-make, so `make -j`
# cannot start compiling before the packages are there.
install: deps
	@$(MAKE) --no-print-directory all lib
	install -D -m 0755 $(B)/logcasterd $(DESTDIR)$(SBINDIR)/logcasterd
	install -D -m 0755 $(B)/logcaster $(DESTDIR)$(BINDIR)/logcaster
	install -D -m 0644 man/logcasterd.8 $(DESTDIR)$(MANDIR)/man8/logcasterd.8
	install -D -m 0644 man/logcaster.1 $(DESTDIR)$(MANDIR)/man1/logcaster.1
	install -D -m 0644 etc/logcaster.bash-completion $(DESTDIR)$(BASHCOMPDIR)/logcaster
	sed $(INSTALL_SUBST) etc/logcaster.service.in > $(B)/logcaster.service
	install -D -m 0644 $(B)/logcaster.service $(DESTDIR)$(UNITDIR)/logcaster.service
	@# An existing configuration is the administrator's: it is never overwritten.
	@if [ -e $(DESTDIR)$(SYSCONFDIR)/logcaster/logcaster.conf ]; then \
	    echo "keeping $(DESTDIR)$(SYSCONFDIR)/logcaster/logcaster.conf"; \
	else \
	    echo "install -D -m 0644 etc/logcaster.conf $(DESTDIR)$(SYSCONFDIR)/logcaster/logcaster.conf"; \
	    install -D -m 0644 etc/logcaster.conf $(DESTDIR)$(SYSCONFDIR)/logcaster/logcaster.conf; \
	fi
	install -D -m 0644 src/lib/logcaster.h $(DESTDIR)$(INCLUDEDIR)/logcaster.h
	install -D -m 0644 $(B)/liblogcaster.a $(DESTDIR)$(LIBDIR)/liblogcaster.a
	install -D -m 0644 $(B)/liblogcaster.so.1 $(DESTDIR)$(LIBDIR)/liblogcaster.so.1
	ln -sfn liblogcaster.so.1 $(DESTDIR)$(LIBDIR)/liblogcaster.so
	sed $(INSTALL_SUBST) mk/logcaster.pc.in > $(B)/logcaster.pc
	install -D -m 0644 $(B)/logcaster.pc $(DESTDIR)$(LIBDIR)/pkgconfig/logcaster.pc

# Removes exactly what install wrote: the configuration only while it is still the sample
# (an edited one stays), and its directory only when that leaves it empty.
uninstall:
	rm -f $(addprefix $(DESTDIR),$(INSTALLED_FILES))
	@if cmp -s etc/logcaster.conf $(DESTDIR)$(SYSCONFDIR)/logcaster/logcaster.conf; then \
	    echo "rm -f $(DESTDIR)$(SYSCONFDIR)/logcaster/logcaster.conf"; \
	    rm -f $(DESTDIR)$(SYSCONFDIR)/logcaster/logcaster.conf; \
	elif [ -e $(DESTDIR)$(SYSCONFDIR)/logcaster/logcaster.conf ]; then \
	    echo "keeping $(DESTDIR)$(SYSCONFDIR)/logcaster/logcaster.conf: it was changed"; \
	fi
	@if [ -d $(DESTDIR)$(SYSCONFDIR)/logcaster ]; then \
	    rmdir --ignore-fail-on-non-empty $(DESTDIR)$(SYSCONFDIR)/logcaster; fi

# The tests install the release build: build it before they run.
TEST_EXTRA += $(B)/logcasterd $(B)/logcaster lib
