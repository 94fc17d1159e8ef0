# `make test-syslog-ng`: a foreground syslog-ng forwarding to logcasterd (tests/syslog-ng/).
# Not part of `make test`: Debian's syslog-ng-core conflicts with the rsyslog that suite uses,
# so tests/syslog-ng/run.sh installs syslog-ng-core, runs the tests and always reinstalls
# rsyslog afterwards. Ends with one line, "N passed, N failed".
.PHONY: test-syslog-ng
test-syslog-ng: deps
	@$(MAKE) --no-print-directory $(BA)/logcasterd $(BA)/logcaster
	@bash tests/syslog-ng/run.sh $(BA)
