# `make test-syslog-ng`: a foreground syslog-ng forwarding to logcasterd (tests/syslog-ng/),
# on any machine. `make test` runs these tests only where syslog-ng is the installed system log
# daemon, since Debian's syslog-ng-core and rsyslog conflict. This is the explicit swap:
# tests/syslog-ng/run.sh installs syslog-ng-core when it is missing (apt removes rsyslog), runs
# the tests and afterwards puts back the log daemon the machine had (none stays none). Ends
# with one line, "N passed, N failed".
.PHONY: test-syslog-ng
test-syslog-ng: deps-test
	@$(MAKE) --no-print-directory $(BA)/logcasterd $(BA)/logcaster
	@bash tests/syslog-ng/run.sh $(BA)
